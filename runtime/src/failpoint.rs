//! Fail points for fault tests: `VINTAGELAKE_FAILPOINTS=name[,name…]` makes the process abort
//! (no destructors, no cleanup — as a `kill -9` would) when it reaches a named point;
//! `name@N` aborts on the N-th time it is reached. `name%P` and `name#N` do not abort: the point
//! reports an injected fault (see [`fails`]) on P percent of its hits, chosen at random, or on
//! every N-th hit, so the code around it takes its error path. Unset in production; reading it costs one environment lookup per
//! process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use rand::Rng;

/// Environment variable listing the armed fail points.
pub const ENV: &str = "VINTAGELAKE_FAILPOINTS";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arm {
    /// Abort on this hit (1 = the first).
    AbortAt(u64),
    /// Report a fault on this share of hits (0–100 percent).
    FailPercent(f64),
    /// Report a fault on every N-th hit.
    FailEvery(u64),
}

/// Armed points: name → how.
fn parse(spec: &str) -> HashMap<String, Arm> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some((name, n)) = s.split_once('#') {
                return (name.to_owned(), Arm::FailEvery(n.parse::<u64>().unwrap_or(1).max(1)));
            }
            if let Some((name, p)) = s.split_once('%') {
                return (name.to_owned(), Arm::FailPercent(p.parse::<f64>().unwrap_or(100.0).clamp(0.0, 100.0)));
            }
            match s.split_once('@') {
                Some((name, n)) => (name.to_owned(), Arm::AbortAt(n.parse().unwrap_or(1))),
                None => (s.to_owned(), Arm::AbortAt(1)),
            }
        })
        .collect()
}

fn armed(name: &str) -> Option<Arm> {
    static ARMED: OnceLock<HashMap<String, Arm>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(ENV).map(|v| parse(&v)).unwrap_or_default()).get(name).copied()
}

/// Counts a hit of `name`; returns the count (1 = the first).
fn count(name: &str) -> u64 {
    static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let mut hits = HITS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let n = hits.entry(name.to_owned()).or_default();
    *n += 1;
    *n
}

/// Aborts the process if `name` is armed to abort (and this is the hit it is armed for).
pub fn hit(name: &str) {
    let Some(Arm::AbortAt(at)) = armed(name) else { return };
    let n = count(name);
    if n >= at {
        eprintln!("fail point {name} reached (hit {n}): aborting");
        std::process::abort();
    }
}

/// True when `name` is armed with `%P` or `#N` and this hit is a fault: the caller fails as the
/// real fault would.
pub fn fails(name: &str) -> bool {
    let fail = match armed(name) {
        Some(Arm::FailPercent(p)) => rand::rng().random_bool(p / 100.0),
        Some(Arm::FailEvery(n)) => count(name).is_multiple_of(n),
        _ => false,
    };
    if fail {
        tracing::warn!(point = name, "fail point: injecting a fault");
    }
    fail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_arm_on_the_first_or_the_nth_hit_or_a_share_of_hits() {
        let p = parse(" a, b@3 ,,c@x, d%30, e%x, f#3");
        assert_eq!(p["a"], Arm::AbortAt(1));
        assert_eq!(p["b"], Arm::AbortAt(3));
        assert_eq!(p["c"], Arm::AbortAt(1), "an unreadable count arms the first hit");
        assert_eq!(p["d"], Arm::FailPercent(30.0));
        assert_eq!(p["e"], Arm::FailPercent(100.0), "an unreadable share fails every hit");
        assert_eq!(p["f"], Arm::FailEvery(3));
        assert_eq!(p.len(), 6);
    }
}
