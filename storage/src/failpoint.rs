//! Fail points for crash tests: `VINTAGELAKE_FAILPOINTS=name[,name…]` makes the process abort
//! (no destructors, no cleanup — as a `kill -9` would) when it reaches a named point. Unset in
//! production; reading it costs one environment lookup per process.

use std::sync::OnceLock;

/// Environment variable listing the armed fail points.
pub const ENV: &str = "VINTAGELAKE_FAILPOINTS";

/// Aborts the process if `name` is armed.
pub fn hit(name: &str) {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var(ENV)
            .map(|v| v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default()
    });
    if armed.iter().any(|a| a == name) {
        eprintln!("fail point {name} reached: aborting");
        std::process::abort();
    }
}
