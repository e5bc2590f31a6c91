//! What each principal (a named token, a user) may read and do. Grants come from the config
//! file's `security.grants` section:
//!
//! ```yaml
//! security:
//!   grants:
//!     analyst: { series: ["GDP*", "UNRATE"] }   # these series only, no admin actions
//!     ops:     { series: ["*"], admin: true }    # everything, and refresh / audit / explain
//! ```
//!
//! Without the section every principal reads everything and runs every action (as before
//! grants existed). With it, a principal it does not name reads nothing. Rows of series a
//! principal may not read are absent from every answer (never an error that would reveal they
//! exist).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use serde::Deserialize;
use vintagelake_schemas::arrow::col;

/// One principal's grant, as the config file states it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Series id patterns: `*` any run of characters, `?` one character; `GDP*` is a prefix.
    #[serde(default)]
    pub series: Vec<String>,
    /// May run the admin actions (refresh, audit, explain).
    #[serde(default)]
    pub admin: bool,
}

/// Every principal's grant; `None`: no grants configured, everyone may do everything.
#[derive(Debug, Clone, Default)]
pub struct Grants(Option<Arc<BTreeMap<String, Grant>>>);

/// What one request's principal may read.
#[derive(Debug, Clone)]
pub enum Access {
    All { admin: bool },
    Some { patterns: Vec<String>, admin: bool },
}

impl Grants {
    pub fn new(grants: Option<BTreeMap<String, Grant>>) -> Self {
        Self(grants.map(Arc::new))
    }

    /// Whether grants are configured at all.
    pub fn configured(&self) -> bool {
        self.0.is_some()
    }

    /// The access of `principal` (the name a token or user authenticated as).
    pub fn access(&self, principal: &str) -> Access {
        let Some(map) = &self.0 else { return Access::All { admin: true } };
        match map.get(principal) {
            Some(g) if g.series.iter().any(|p| p == "*") => Access::All { admin: g.admin },
            Some(g) => Access::Some { patterns: g.series.clone(), admin: g.admin },
            None => Access::Some { patterns: Vec::new(), admin: false },
        }
    }
}

impl Access {
    pub fn admin(&self) -> bool {
        match self {
            Access::All { admin } | Access::Some { admin, .. } => *admin,
        }
    }

    pub fn everything(&self) -> bool {
        matches!(self, Access::All { .. })
    }

    /// May this principal read `series`?
    pub fn reads(&self, series: &str) -> bool {
        match self {
            Access::All { .. } => true,
            Access::Some { patterns, .. } => patterns.iter().any(|p| glob(p, series)),
        }
    }

    /// The rows of `batch` (any answer: it has a `series_id` column) this principal may read.
    pub fn filter(&self, batch: RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
        if self.everything() {
            return Ok(batch);
        }
        let Some(ids) = batch.column_by_name(col::SERIES_ID) else {
            return Ok(RecordBatch::new_empty(batch.schema()));
        };
        let ids = ids.as_string::<i32>();
        let keep: BooleanArray = (0..ids.len()).map(|i| Some(ids.is_valid(i) && self.reads(ids.value(i)))).collect();
        arrow::compute::filter_record_batch(&batch, &keep)
    }
}

/// `*` matches any run of characters (none included), `?` exactly one; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Iterative matching with one backtrack point (the last `*`).
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_documented() {
        assert!(glob("GDP*", "GDPC1") && glob("GDP*", "GDP") && !glob("GDP*", "XGDP"));
        assert!(glob("*", "") && glob("*", "anything") && glob("A?C", "ABC") && !glob("A?C", "AC"));
        assert!(glob("*.GDP.*", "SYN.GDP.000") && !glob("*.GDP.*", "SYN.CPI.000"));
        assert!(glob("UNRATE", "UNRATE") && !glob("UNRATE", "UNRATE2"));
    }

    #[test]
    fn grants_decide_access_and_unlisted_principals_read_nothing() {
        assert!(Grants::default().access("anyone").everything() && Grants::default().access("x").admin());
        let grants = Grants::new(Some(BTreeMap::from([
            ("analyst".to_owned(), Grant { series: vec!["GDP*".into(), "UNRATE".into()], admin: false }),
            ("ops".to_owned(), Grant { series: vec!["*".into()], admin: true }),
        ])));
        let analyst = grants.access("analyst");
        assert!(analyst.reads("GDPC1") && analyst.reads("UNRATE") && !analyst.reads("CPI") && !analyst.admin());
        assert!(grants.access("ops").everything() && grants.access("ops").admin());
        let stranger = grants.access("stranger");
        assert!(!stranger.reads("GDPC1") && !stranger.admin());
    }
}
