//! Where a running `serve` / `demo` can be reached, recorded in its data directory
//! (`DATA_DIR/endpoints.json`) so that `produce` and `get` run on the same data directory find
//! its broker and Flight service when nothing else is configured. Written atomically at start,
//! removed at a clean stop; a file whose process is gone is ignored.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const FILE: &str = "endpoints.json";

/// The addresses of a running `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The process serving them.
    pub pid: u32,
    pub kafka_bootstrap_servers: String,
    pub flight_url: String,
    pub http_url: String,
}

fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

impl Endpoints {
    /// Records them (write to a temporary file, then rename: a reader never sees half a file).
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(data_dir)?;
        let tmp = data_dir.join(format!(".{FILE}.{}", self.pid));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("endpoints serialise"))?;
        std::fs::rename(&tmp, path(data_dir))
    }

    /// The endpoints of a `serve` running on `data_dir`, if one recorded them and its process is
    /// still alive.
    pub fn running(data_dir: &Path) -> Option<Endpoints> {
        let bytes = std::fs::read(path(data_dir)).ok()?;
        let found: Endpoints = serde_json::from_slice(&bytes).ok()?;
        Path::new(&format!("/proc/{}", found.pid)).exists().then_some(found)
    }

    /// Removes the record if it is this process's (a later `serve` may have replaced it).
    pub fn remove_own(data_dir: &Path) {
        let own = std::fs::read(path(data_dir))
            .ok()
            .and_then(|b| serde_json::from_slice::<Endpoints>(&b).ok())
            .is_some_and(|e| e.pid == std::process::id());
        if own {
            let _ = std::fs::remove_file(path(data_dir));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_endpoints_are_found_while_their_process_lives() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Endpoints::running(dir.path()), None);
        let mine = Endpoints {
            pid: std::process::id(),
            kafka_bootstrap_servers: "127.0.0.1:9092".into(),
            flight_url: "http://127.0.0.1:8080".into(),
            http_url: "http://127.0.0.1:9090".into(),
        };
        mine.write(dir.path()).unwrap();
        assert_eq!(Endpoints::running(dir.path()), Some(mine.clone()));
        // A record left by a process that is gone is ignored, and not ours to remove.
        let gone = Endpoints { pid: u32::MAX - 1, ..mine.clone() };
        gone.write(dir.path()).unwrap();
        assert_eq!(Endpoints::running(dir.path()), None);
        Endpoints::remove_own(dir.path());
        assert!(dir.path().join(FILE).exists());
        mine.write(dir.path()).unwrap();
        Endpoints::remove_own(dir.path());
        assert!(!dir.path().join(FILE).exists());
    }
}
