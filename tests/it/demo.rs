//! The README's first command: `vintagelake demo` on the embedded default shows a real answer.

use std::process::{Command, Stdio};

use crate::support::free_port;

#[test]
fn demo_runs_the_pipeline_and_prints_an_answer_fetched_over_flight() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
        .args(["demo", "--exit", "--revisions", "3000"])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("FLIGHT_SERVER_PORT", free_port().to_string())
        .env("HTTP_PORT", free_port().to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stderr.contains("starting a local Kafka-protocol broker"), "{stderr}");
    assert!(stderr.contains("published 3000 synthetic revisions of 7 series"), "{stderr}");
    assert!(stderr.contains("ingest committed them"), "{stderr}");
    // As it comes, `demo` logs warnings only: its own progress and the answer are what one reads.
    assert!(!stderr.contains(" INFO ") && !stderr.contains(" DEBUG "), "demo logs only warnings by default:\n{stderr}");
    let header = stdout.lines().find(|l| l.contains("latest values vs. as known on")).expect("the answer");
    assert!(header.contains("fetched over Arrow Flight"));
    let rows: Vec<&str> =
        stdout.lines().filter(|l| l.len() > 10 && l.as_bytes()[4] == b'-' && l.as_bytes()[7] == b'-').collect();
    assert_eq!(rows.len(), 8, "{stdout}");
    assert!(
        rows.iter().any(|r| r.contains("not yet published")),
        "the earlier vintage lacks the latest dates:\n{stdout}"
    );
    assert!(dir.path().join("data/catalog.sqlite").exists(), "embedded default: ./data with a SQLite catalog");

    // The output the README quotes is what a run prints (numbers, ports and timings aside; the
    // value rows are checked above; `--exit` skips the Ctrl-C hint).
    let normal = |l: &str| -> String {
        let mut out = String::new();
        for c in l.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
            if c.is_ascii_digit() {
                if !out.ends_with('N') {
                    out.push('N');
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    let printed: Vec<String> = stdout.lines().chain(stderr.lines()).map(normal).collect();
    let readme = include_str!("../../README.md");
    let quoted = readme.split("```text\n").nth(1).and_then(|b| b.split("```").next()).expect("README quotes a run");
    for line in quoted.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(|c: char| c.is_ascii_digit())) {
        if line.contains("stop with Ctrl-C") {
            continue;
        }
        assert!(
            printed.contains(&normal(line)),
            "README quotes a line the demo does not print: {line}\n{stdout}\n{stderr}"
        );
    }
}
