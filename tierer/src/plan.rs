//! What a tiering run should do, decided from file statistics alone (no data is read to plan).
//!
//! A data file's age is the time since the newest `realtime_end` it holds (its upper bound in the
//! manifest): the moment its youngest row was superseded. Files holding current rows (no
//! `realtime_end`) have no age and stay in the first tier. Automatic moves only go colder; a
//! manual pin brings a series' files to (or keeps them in) the pinned tier.

use std::collections::BTreeMap;

use serde::Serialize;
use vintagelake_schemas::Date;
use vintagelake_storage::config::{RetentionPolicy, TierName};

/// A tier and how old data may get in it before it moves on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TierRule {
    pub name: TierName,
    /// Data at least this old (days since superseded) moves to the next tier; `None`: never.
    pub max_age_days: Option<u32>,
}

/// The policy a run applies.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// Hottest first.
    pub tiers: Vec<TierRule>,
    /// Files at least this old are removed from the table; `None`: never.
    pub delete_after_days: Option<u32>,
    /// Keep original releases when deleting (the file is rewritten with them only).
    pub keep_originals: bool,
    /// Access-aware tiering ([`vintagelake_storage::access`]): a file read at least this often
    /// (its decayed read count) stays in its tier when its age says colder; 0: off.
    pub keep_reads: u64,
    /// A file in the third tier or colder read at least this often moves one tier warmer; 0: off.
    /// At least twice `keep_reads` (counts halve every run): a promoted file is not sent back by
    /// the next run.
    pub promote_reads: u64,
}

impl Policy {
    /// The seed's policy over a tier list: the first four tiers take `hot/warm/cold/archive_data_days`
    /// as their age limit unless a tier sets its own `max_age_days`; the last tier keeps what it has.
    pub fn new(policy: &RetentionPolicy, tiers: &[(TierName, Option<u32>)], keep_originals: bool) -> Self {
        let defaults = [policy.hot_data_days, policy.warm_data_days, policy.cold_data_days, policy.archive_data_days];
        let last = tiers.len().saturating_sub(1);
        let tiers = tiers
            .iter()
            .enumerate()
            .map(|(i, (name, own))| TierRule {
                name: name.clone(),
                max_age_days: if i == last { None } else { own.or(defaults.get(i).copied()) },
            })
            .collect();
        Self {
            tiers,
            delete_after_days: (policy.delete_after_days > 0).then_some(policy.delete_after_days),
            keep_originals,
            keep_reads: 0,
            promote_reads: 0,
        }
    }

    fn index(&self, tier: &TierName) -> Option<usize> {
        self.tiers.iter().position(|t| &t.name == tier)
    }

    /// The tier data of `age_days` belongs in, and the rule that says so.
    pub fn tier_for_age(&self, age_days: i64) -> (usize, String) {
        let mut rule = String::new();
        for (i, t) in self.tiers.iter().enumerate() {
            match t.max_age_days {
                Some(max) if age_days >= i64::from(max) => {
                    rule = format!("{} keeps data for {max} days; this is {age_days} days old", t.name);
                }
                _ => return (i, rule),
            }
        }
        (self.tiers.len() - 1, rule)
    }
}

/// What the manifests say about one live data file.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub path: String,
    pub tier: Option<TierName>,
    pub records: u64,
    pub size_bytes: u64,
    /// Newest `realtime_end` in the file; `None` when it holds current rows (or has no statistics).
    pub newest_realtime_end: Option<Date>,
    /// Smallest and largest series id in the file.
    pub series: Option<(String, String)>,
    /// Every row is an original release (the `is_original_release` lower bound is true).
    pub all_original: bool,
    /// How often the file was read (decayed count; 0 when access-aware tiering is off).
    pub reads: u64,
}

/// A file left in its tier although its age says colder, because it is read often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    pub path: String,
    pub tier: TierName,
    pub age_days: i64,
    pub reads: u64,
    pub rule: String,
}

/// One planned action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Action {
    Move {
        path: String,
        from: TierName,
        to: TierName,
        age_days: Option<i64>,
        bytes: u64,
        rows: u64,
        rule: String,
    },
    /// `tier`: where the original releases it keeps are written (the tier their age asks for).
    Delete {
        path: String,
        tier: TierName,
        age_days: i64,
        bytes: u64,
        rows: u64,
        keep_originals: bool,
        rule: String,
    },
}

impl Action {
    pub fn path(&self) -> &str {
        match self {
            Action::Move { path, .. } | Action::Delete { path, .. } => path,
        }
    }

    pub fn bytes(&self) -> u64 {
        match self {
            Action::Move { bytes, .. } | Action::Delete { bytes, .. } => *bytes,
        }
    }

    pub fn rule(&self) -> &str {
        match self {
            Action::Move { rule, .. } | Action::Delete { rule, .. } => rule,
        }
    }
}

/// Series pinned to a tier by an operator (series id → tier).
pub type Pins = BTreeMap<String, TierName>;

/// The actions that bring every file where the policy (and the pins) want it, as of `today`.
pub fn plan(policy: &Policy, files: &[FileFacts], pins: &Pins, today: Date) -> Vec<Action> {
    plan_with_reads(policy, files, pins, today).0
}

/// [`plan`], and the files its read counts kept from moving colder.
pub fn plan_with_reads(policy: &Policy, files: &[FileFacts], pins: &Pins, today: Date) -> (Vec<Action>, Vec<Kept>) {
    let mut actions = Vec::new();
    let mut kept = Vec::new();
    for f in files {
        // A file in a tier the policy does not know (removed from the config) is left alone.
        let Some(tier) = f.tier.clone() else { continue };
        let Some(current) = policy.index(&tier) else { continue };
        let age = f.newest_realtime_end.map(|end| i64::from(today.days_since_epoch() - end.days_since_epoch()));
        // The warmest tier any pinned series in the file asks for.
        let pinned = f
            .series
            .as_ref()
            .and_then(|(lo, hi)| pins.range(lo.clone()..=hi.clone()).filter_map(|(_, t)| policy.index(t)).min());
        let (wanted, rule) = match (pinned, age) {
            (Some(p), _) => (p, format!("pinned to {}", policy.tiers[p].name)),
            (None, Some(age)) => {
                let (i, rule) = policy.tier_for_age(age);
                let by_age = i.max(current);
                if by_age > current && policy.keep_reads > 0 && f.reads >= policy.keep_reads {
                    kept.push(Kept {
                        path: f.path.clone(),
                        tier: tier.clone(),
                        age_days: age,
                        reads: f.reads,
                        rule: format!(
                            "read {} times (keep_reads={}): stays in {tier} although {rule}",
                            f.reads, policy.keep_reads
                        ),
                    });
                    (current, String::new())
                } else if by_age == current
                    && current >= 2
                    && policy.promote_reads > 0
                    && f.reads >= policy.promote_reads
                {
                    let to = &policy.tiers[current - 1].name;
                    (
                        current - 1,
                        format!(
                            "read {} times (promote_reads={}): back from {tier} to {to}",
                            f.reads, policy.promote_reads
                        ),
                    )
                } else {
                    (by_age, rule)
                }
            }
            (None, None) => (current, String::new()),
        };
        // A file of original releases only is what deletion keeps: nothing left to delete.
        let deletable = !(policy.keep_originals && f.all_original);
        if let (Some(age), Some(limit), None, true) = (age, policy.delete_after_days, pinned, deletable)
            && age >= i64::from(limit)
        {
            actions.push(Action::Delete {
                path: f.path.clone(),
                tier: policy.tiers[wanted].name.clone(),
                age_days: age,
                bytes: f.size_bytes,
                rows: f.records,
                keep_originals: policy.keep_originals,
                rule: format!("delete_after_days={limit}"),
            });
            continue;
        }
        if wanted != current {
            actions.push(Action::Move {
                path: f.path.clone(),
                from: tier,
                to: policy.tiers[wanted].name.clone(),
                age_days: age,
                bytes: f.size_bytes,
                rows: f.records,
                rule,
            });
        }
    }
    (actions, kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TierName {
        s.parse().unwrap()
    }

    fn policy() -> Policy {
        let retention = RetentionPolicy {
            hot_data_days: 30,
            warm_data_days: 365,
            cold_data_days: 3650,
            archive_data_days: 36_500,
            delete_after_days: 5000,
        };
        let tiers = [(name("hot"), None), (name("warm"), None), (name("cold"), None), (name("archive"), None)];
        Policy::new(&retention, &tiers, true)
    }

    fn file(path: &str, tier: &str, end: Option<i32>, series: (&str, &str)) -> FileFacts {
        FileFacts {
            path: path.into(),
            tier: Some(name(tier)),
            records: 10,
            size_bytes: 100,
            newest_realtime_end: end.map(Date::from_days_since_epoch),
            series: Some((series.0.into(), series.1.into())),
            all_original: false,
            reads: 0,
        }
    }

    fn targets(actions: &[Action]) -> Vec<(String, String)> {
        actions
            .iter()
            .map(|a| match a {
                Action::Move { path, to, .. } => (path.clone(), to.as_str().to_owned()),
                Action::Delete { path, .. } => (path.clone(), "deleted".to_owned()),
            })
            .collect()
    }

    #[test]
    fn ages_pick_the_tier_and_moves_only_go_colder() {
        let today = 20_000;
        let files = [
            file("current", "hot", None, ("A", "Z")),
            file("young", "hot", Some(today - 29), ("A", "Z")),
            file("month", "hot", Some(today - 30), ("A", "Z")),
            file("year", "hot", Some(today - 365), ("A", "Z")),
            file("decade", "warm", Some(today - 3650), ("A", "Z")),
            file("old", "hot", Some(today - 4999), ("A", "Z")),
            file("ancient", "cold", Some(today - 5000), ("A", "Z")),
            // Moved to cold by hand: the policy does not bring it back.
            file("manual", "cold", Some(today - 40), ("A", "Z")),
            // What deletion kept: original releases only, nothing more to delete; it still ages.
            FileFacts { all_original: true, ..file("kept", "cold", Some(today - 6000), ("A", "Z")) },
        ];
        let actions = plan(&policy(), &files, &Pins::new(), Date::from_days_since_epoch(today));
        assert_eq!(
            targets(&actions),
            [
                ("month", "warm"),
                ("year", "cold"),
                ("decade", "archive"),
                ("old", "archive"),
                ("ancient", "deleted"),
                ("kept", "archive")
            ]
            .map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
        let Action::Delete { keep_originals, rule, .. } = &actions[4] else { panic!() };
        assert!(*keep_originals);
        assert_eq!(rule, "delete_after_days=5000");
    }

    #[test]
    fn a_pin_keeps_or_brings_a_series_files_to_its_tier_and_blocks_deletion() {
        let today = 20_000;
        let files = [
            file("gdp-old", "cold", Some(today - 4000), ("GDP", "GDP")),
            file("mixed", "hot", Some(today - 400), ("CPI", "FOO")),
            file("gdp-ancient", "archive", Some(today - 6000), ("FOO", "HOUST")),
            file("other", "hot", Some(today - 400), ("PAYEMS", "PAYEMS")),
        ];
        let pins = Pins::from([("GDP".to_owned(), name("hot")), ("DGS10".to_owned(), name("warm"))]);
        let actions = plan(&policy(), &files, &pins, Date::from_days_since_epoch(today));
        assert_eq!(
            targets(&actions),
            [("gdp-old", "hot"), ("mixed", "warm"), ("gdp-ancient", "hot"), ("other", "cold")]
                .map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
    }

    #[test]
    fn tiers_set_their_own_limits_and_the_last_tier_keeps_everything() {
        let retention = RetentionPolicy { delete_after_days: 0, ..RetentionPolicy::default() };
        let policy = Policy::new(&retention, &[(name("fast"), Some(7)), (name("slow"), Some(1))], false);
        assert_eq!(policy.tiers[1].max_age_days, None, "the last tier keeps what it has");
        let today = 20_000;
        let files =
            [file("a", "fast", Some(today - 6), ("A", "A")), file("b", "fast", Some(today - 100_000), ("A", "A"))];
        let actions = plan(&policy, &files, &Pins::new(), Date::from_days_since_epoch(today));
        assert_eq!(targets(&actions), [("b".to_owned(), "slow".to_owned())], "no deletion when delete_after_days = 0");
    }

    #[test]
    fn reads_keep_a_file_warm_and_bring_a_cold_one_back_with_hysteresis() {
        let reading = Policy { keep_reads: 20, promote_reads: 50, ..policy() };
        let today = 20_000;
        let read = |path: &str, tier: &str, age: i32, reads: u64| FileFacts {
            reads,
            ..file(path, tier, Some(today - age), ("A", "Z"))
        };
        let files = [
            read("popular", "warm", 400, 25),      // cold by age, read often: stays warm
            read("quiet", "warm", 400, 19),        // below keep_reads: moves by age
            read("revived", "cold", 400, 60),      // cold, read very often: back to warm
            read("lukewarm", "cold", 400, 49),     // between the thresholds: stays where it is
            read("archived", "archive", 4000, 60), // one tier warmer per run
            read("fresh", "hot", 10, 1000),        // already where its age says: nothing to do
        ];
        let (actions, kept) = plan_with_reads(&reading, &files, &Pins::new(), Date::from_days_since_epoch(today));
        assert_eq!(
            targets(&actions),
            [("quiet", "cold"), ("revived", "warm"), ("archived", "cold")].map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
        assert_eq!(kept.iter().map(|k| k.path.as_str()).collect::<Vec<_>>(), ["popular"]);
        assert!(kept[0].rule.starts_with("read 25 times (keep_reads=20): stays in warm although"), "{}", kept[0].rule);
        let Action::Move { rule, .. } = &actions[1] else { panic!() };
        assert_eq!(rule, "read 60 times (promote_reads=50): back from cold to warm");
        // Off by default: ages alone decide.
        let (actions, kept) = plan_with_reads(&policy(), &files, &Pins::new(), Date::from_days_since_epoch(today));
        assert!(kept.is_empty());
        assert_eq!(
            targets(&actions),
            [("popular", "cold"), ("quiet", "cold")].map(|(p, t)| (p.to_owned(), t.to_owned()))
        );
    }
}
