//! Which filters of a statement the view's query takes: `series_id` equal to or in constants, and
//! `date` compared with constant dates. What is taken narrows the query (and so the files its scan
//! plans); DataFusion still applies every filter to the rows (the pushdown is reported inexact),
//! so a form read more widely than written costs reading, never a wrong answer.

use std::collections::BTreeSet;

use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, expr::InList};
use datafusion::scalar::ScalarValue;
use vintagelake_schemas::Date;
use vintagelake_schemas::arrow::col;

/// The constraints taken from a scan's filters (all of them hold: they are ANDed).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Pushed {
    /// `None`: any series.
    pub series: Option<BTreeSet<String>>,
    /// Inclusive bounds on `date`, days since the epoch.
    pub start: Option<i32>,
    pub end: Option<i32>,
}

impl Pushed {
    /// Whether no row can pass (disjoint series sets, an empty date range).
    pub fn nothing(&self) -> bool {
        self.series.as_ref().is_some_and(BTreeSet::is_empty)
            || matches!((self.start, self.end), (Some(s), Some(e)) if s > e)
    }
}

/// Whether the query can take `filter`.
pub(crate) fn supported(filter: &Expr) -> bool {
    series_set(filter).is_some() || date_range(filter).is_some()
}

/// The constraints of every filter the query can take.
pub(crate) fn collect(filters: &[Expr]) -> Pushed {
    let mut pushed = Pushed::default();
    for filter in filters {
        if let Some(set) = series_set(filter) {
            pushed.series = Some(match pushed.series.take() {
                Some(have) => have.intersection(&set).cloned().collect(),
                None => set,
            });
        } else if let Some((start, end)) = date_range(filter) {
            pushed.start = max_opt(pushed.start, start);
            pushed.end = min_opt(pushed.end, end);
        }
    }
    pushed
}

fn max_opt(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn min_opt(a: Option<i32>, b: Option<i32>) -> Option<i32> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is_column(expr: &Expr, name: &str) -> bool {
    matches!(strip_casts(expr), Expr::Column(c) if c.name == name)
}

fn strip_casts(expr: &Expr) -> &Expr {
    match expr {
        Expr::Cast(c) => strip_casts(&c.expr),
        Expr::TryCast(c) => strip_casts(&c.expr),
        other => other,
    }
}

fn string_literal(expr: &Expr) -> Option<String> {
    match strip_casts(expr) {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

fn date_literal(expr: &Expr) -> Option<i32> {
    match expr {
        Expr::Literal(ScalarValue::Date32(Some(d)), _) => Some(*d),
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)),
            _,
        ) => Date::parse_iso(s).map(|d| d.days_since_epoch()),
        Expr::Cast(c) => date_literal(&c.expr),
        _ => None,
    }
}

/// The series a filter admits, when it names them: `series_id = 'X'`, `series_id IN (…)`, and
/// ORs of those.
fn series_set(filter: &Expr) -> Option<BTreeSet<String>> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            let value = if is_column(left, col::SERIES_ID) {
                string_literal(right)
            } else if is_column(right, col::SERIES_ID) {
                string_literal(left)
            } else {
                None
            }?;
            Some(BTreeSet::from([value]))
        }
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut set = series_set(left)?;
            set.extend(series_set(right)?);
            Some(set)
        }
        Expr::InList(InList { expr, list, negated: false }) if is_column(expr, col::SERIES_ID) => {
            list.iter().map(string_literal).collect()
        }
        _ => None,
    }
}

/// The inclusive `date` bounds a filter sets: comparisons with a constant date, `BETWEEN`.
fn date_range(filter: &Expr) -> Option<(Option<i32>, Option<i32>)> {
    match filter {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_column(left, col::DATE) {
                (*op, date_literal(right)?)
            } else if is_column(right, col::DATE) {
                (op.swap()?, date_literal(left)?)
            } else {
                return None;
            };
            match op {
                Operator::Eq => Some((Some(value), Some(value))),
                Operator::GtEq => Some((Some(value), None)),
                Operator::Gt => Some((Some(value.checked_add(1)?), None)),
                Operator::LtEq => Some((None, Some(value))),
                Operator::Lt => Some((None, Some(value.checked_sub(1)?))),
                _ => None,
            }
        }
        Expr::Between(Between { expr, negated: false, low, high }) if is_column(expr, col::DATE) => {
            Some((Some(date_literal(low)?), Some(date_literal(high)?)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::{col as c, lit};

    use super::*;

    fn day(s: &str) -> i32 {
        Date::parse_iso(s).unwrap().days_since_epoch()
    }

    #[test]
    fn series_and_date_filters_narrow_the_query() {
        let filters = vec![
            c("series_id").eq(lit("GDP")).or(c("series_id").eq(lit("UNRATE"))),
            c("series_id").in_list(vec![lit("GDP"), lit("CPI")], false),
            c("date").gt_eq(lit(ScalarValue::Date32(Some(day("2020-01-01"))))),
            lit(ScalarValue::Date32(Some(day("2020-12-31")))).gt(c("date")),
        ];
        assert!(filters.iter().all(supported));
        let pushed = collect(&filters);
        assert_eq!(pushed.series, Some(BTreeSet::from(["GDP".to_owned()])));
        assert_eq!((pushed.start, pushed.end), (Some(day("2020-01-01")), Some(day("2020-12-30"))));
        assert!(!pushed.nothing());
    }

    #[test]
    fn other_filters_are_left_to_the_engine() {
        for filter in [
            c("series_id").not_eq(lit("GDP")),
            c("series_id").in_list(vec![lit("GDP")], true),
            c("series_id").eq(lit("GDP")).or(c("value").gt(lit(1.0))),
            c("series_id").like(lit("GDP%")),
            c("value").gt(lit(1.0)),
            c("revision_date").lt(lit(ScalarValue::Date32(Some(0)))),
        ] {
            assert!(!supported(&filter), "{filter}");
        }
        assert_eq!(collect(&[c("value").gt(lit(1.0))]), Pushed::default());
    }

    #[test]
    fn contradictions_read_nothing() {
        let disjoint = collect(&[c("series_id").eq(lit("A")), c("series_id").eq(lit("B"))]);
        assert!(disjoint.nothing());
        let empty = collect(&[
            c("date").gt(lit(ScalarValue::Date32(Some(10)))),
            c("date").lt(lit(ScalarValue::Date32(Some(11)))),
        ]);
        assert!(empty.nothing());
    }
}
