//! Realistic synthetic revision streams for demos, tests and load generation: monthly and
//! quarterly series, 1–5 vintages per date, occasional corrections and values published as
//! missing. Deterministic for a given seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vintagelake_schemas::{DataPointRevision, Date, SeriesId};

/// A series of the synthetic dataset.
#[derive(Debug, Clone)]
pub struct SyntheticSeries {
    pub id: SeriesId,
    pub title: String,
    pub frequency: &'static str,
    pub units: &'static str,
}

/// The series used for `n` revisions: about one series per 400 revisions (so dates stay within
/// 1990 to the 2020s), 4 to 5 000 series.
pub fn series_for(n: usize) -> Vec<SyntheticSeries> {
    let count = (n / 400).clamp(4, 5_000);
    (0..count)
        .map(|i| {
            let quarterly = i % 2 == 0;
            let (kind, frequency, units) = if quarterly {
                ("GDP", "Quarterly", "Billions of Chained 2017 Dollars")
            } else {
                ("CPI", "Monthly", "Index 1982-1984=100")
            };
            SyntheticSeries {
                id: format!("SYN.{kind}.{i:03}").parse().expect("valid id"),
                title: format!("Synthetic {kind} series {i}"),
                frequency,
                units,
            }
        })
        .collect()
}

fn add_months(d: Date, months: i32) -> Date {
    use chrono::{Datelike, NaiveDate};
    let n = d.to_naive();
    let total = n.year() * 12 + n.month0() as i32 + months;
    Date::from(NaiveDate::from_ymd_opt(total.div_euclid(12), total.rem_euclid(12) as u32 + 1, 1).expect("valid month"))
}

/// Exactly `n` revisions, ordered as an agency would publish them (by revision date; within a
/// series a correction follows what it corrects).
pub fn revisions(n: usize, seed: u64) -> Vec<DataPointRevision> {
    let mut rng = StdRng::seed_from_u64(seed);
    let series = series_for(n);
    let per_series = n.div_ceil(series.len());
    let mut out = Vec::with_capacity(n + series.len() * 5);
    for s in &series {
        let quarterly = s.frequency == "Quarterly";
        let step = if quarterly { 3 } else { 1 };
        let mut level: f64 = if quarterly { 20_000.0 } else { 250.0 } * rng.random_range(0.5..1.5);
        let mut date = Date::parse_iso("1990-01-01").expect("valid date");
        let mut produced = 0;
        while produced < per_series {
            level *= 1.0 + rng.random_range(-0.01..0.02);
            let vintages = rng.random_range(1..=5usize);
            let mut revision = add_months(date, step + 1);
            let mut value = level;
            for v in 0..vintages {
                if produced >= per_series {
                    break;
                }
                let missing = rng.random_bool(0.02);
                let published = if missing { None } else { Some((value * 1000.0).round() / 1000.0) };
                out.push(DataPointRevision {
                    series_id: s.id.clone(),
                    date,
                    revision_date: revision,
                    value: published,
                    is_original_release: v == 0,
                    id: None,
                    created_at: None,
                    updated_at: None,
                    status: None,
                    comment: None,
                });
                produced += 1;
                if rng.random_bool(0.01) && produced < per_series {
                    // A correction: the same vintage re-published with another value.
                    out.push(DataPointRevision {
                        value: Some(((value * 1.001) * 1000.0).round() / 1000.0),
                        ..out.last().expect("just pushed").clone()
                    });
                    produced += 1;
                }
                value *= 1.0 + rng.random_range(-0.005..0.005);
                revision = add_months(revision, rng.random_range(1..=3));
            }
            date = add_months(date, step);
        }
    }
    // Publication order across series; stable, so corrections stay after what they correct.
    out.sort_by_key(|r| r.revision_date);
    out.truncate(n);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_n_deterministic_and_realistic() {
        let a = revisions(10_000, 7);
        assert_eq!(a.len(), 10_000);
        assert_eq!(a, revisions(10_000, 7));
        assert!(a.iter().any(|r| r.value.is_none()), "some values published as missing");
        assert!(a.windows(2).all(|w| w[0].revision_date <= w[1].revision_date));
        let mut keys = std::collections::HashMap::new();
        for r in &a {
            *keys.entry((r.series_id.clone(), r.date, r.revision_date)).or_insert(0) += 1;
        }
        assert!(keys.values().any(|&c| c > 1), "some corrections");
        let mut per_date = std::collections::HashMap::new();
        for r in &a {
            *per_date.entry((r.series_id.clone(), r.date)).or_insert(0) += 1;
        }
        assert!(per_date.values().any(|&c| c >= 3), "several vintages per date");
        assert!(
            a.iter().any(|r| r.series_id.as_str().contains(".GDP."))
                && a.iter().any(|r| r.series_id.as_str().contains(".CPI."))
        );
    }
}
