//! Where the tools a process provisions for itself live (the local broker, Python environments
//! for checks and benchmarks), and the interpreter that creates them.

use std::path::PathBuf;

/// Where provisioned tools live: `VINTAGELAKE_CACHE_DIR`, else `$XDG_CACHE_HOME/vintagelake`,
/// else `~/.cache/vintagelake`. Shared across checkouts so CI and developers download once.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VINTAGELAKE_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("vintagelake");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("vintagelake")
}

/// The interpreter used to create virtual environments (`PYTHON`, default `python3`).
pub fn system_python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned())
}
