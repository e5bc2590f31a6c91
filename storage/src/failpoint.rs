//! Fail points for crash tests: `VINTAGELAKE_FAILPOINTS=name[,name…]` makes the process abort
//! (no destructors, no cleanup — as a `kill -9` would) when it reaches a named point;
//! `name@N` aborts on the N-th time it is reached. Unset in production; reading it costs one
//! environment lookup per process.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Environment variable listing the armed fail points.
pub const ENV: &str = "VINTAGELAKE_FAILPOINTS";

/// Armed points: name → the hit that aborts (1 = the first).
fn parse(spec: &str) -> HashMap<String, u64> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once('@') {
            Some((name, n)) => (name.to_owned(), n.parse().unwrap_or(1)),
            None => (s.to_owned(), 1),
        })
        .collect()
}

/// Aborts the process if `name` is armed (and this is the hit it is armed for).
pub fn hit(name: &str) {
    static ARMED: OnceLock<HashMap<String, u64>> = OnceLock::new();
    static HITS: OnceLock<Mutex<HashMap<String, u64>>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var(ENV).map(|v| parse(&v)).unwrap_or_default());
    let Some(&at) = armed.get(name) else { return };
    let mut hits = HITS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    let n = hits.entry(name.to_owned()).or_default();
    *n += 1;
    if *n >= at {
        eprintln!("fail point {name} reached (hit {n}): aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_arm_on_the_first_or_the_nth_hit() {
        let p = parse(" a, b@3 ,,c@x");
        assert_eq!(p["a"], 1);
        assert_eq!(p["b"], 3);
        assert_eq!(p["c"], 1, "an unreadable count arms the first hit");
        assert_eq!(p.len(), 3);
    }
}
