//! `vintagelake bench e2e` runs the whole pipeline under a (small) load and reports every measure
//! it promises. Only that the report is complete and consistent is checked here: the numbers
//! themselves are benchmark results (docs/BENCHMARKS.md), never asserted.

use std::process::{Command, Stdio};

use vintagelake_kafka::broker::Broker;

/// The number after `label` in `line` (e.g. "p50 12.3 ms" → 12.3).
fn number_after(line: &str, label: &str) -> f64 {
    let rest = line.split(label).nth(1).unwrap_or_else(|| panic!("{label:?} in {line:?}"));
    let n = rest.trim_start().split(|c: char| !(c.is_ascii_digit() || c == '.')).next().unwrap();
    n.parse().unwrap_or_else(|e| panic!("a number after {label:?} in {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_e2e_reports_throughput_latency_freshness_memory_and_reads() {
    let broker = Broker::from_env_or_local().await.expect("a Kafka-protocol broker");
    let bootstrap = broker.bootstrap_servers().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(["bench", "e2e", "--revisions", "20000", "--rows-per-message", "500"])
            .args(["--clients", "1,4", "--requests-per-client", "10", "--min-probes", "3"])
            .args(["--trickle-rate", "200", "--trickle-seconds", "2"])
            .args(["--replica-kill-seconds", "6", "--replica-kill-rate", "300"])
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("COMMIT_INTERVAL", "200ms")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed:\n{stdout}\n{stderr}");
    let line = |prefix: &str| -> String {
        stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix:?} in:\n{stdout}")).to_owned()
    };
    assert!(stdout.contains("20000 revisions in 50 ipc messages"), "{stdout}");
    assert!(number_after(&line("| ingest start → first commit"), "throughput) |") > 0.0);
    assert!(number_after(&line("| sustained ingest"), "s, **") > 0.0);
    let commits = line("| commit latency");
    assert!(number_after(&commits, "(") >= 1.0, "{commits}");
    assert!(number_after(&commits, "p99") >= number_after(&commits, "p50"), "{commits}");
    let fresh = line("| freshness");
    assert!(number_after(&fresh, "(") >= 3.0, "{fresh}");
    assert!(number_after(&fresh, "p50") > 0.0, "{fresh}");
    let trickle = line("| freshness under a trickle of 200 revisions/s for 2 s");
    assert!(number_after(&trickle, "s (") >= 1.0, "{trickle}");
    assert!(number_after(&trickle, "p99") >= number_after(&trickle, "p50"), "{trickle}");
    assert!(number_after(&line("| ingest peak RSS"), "RSS |") > 0.0);
    for clients in ["1 concurrent", "4 concurrent"] {
        let reads = line(&format!("| one series, latest view, {clients}"));
        assert!(number_after(&reads, "p50") > 0.0, "{reads}");
        assert!(number_after(&reads, "p99") >= number_after(&reads, "p50"), "{reads}");
    }
    // Both replicas owned partitions; the survivor's went on, the dead one's were taken over.
    let kill = line("| a replica killed during a load of 300 revisions/s (6 s)");
    assert!(number_after(&kill, "without a commit | **") > 0.0, "{kill}");
    assert!(number_after(&kill, "committed again after") > 0.0, "{kill}");
    // Every revision of the load is readable at the end (corrections replace what they correct).
    let full = line("| full table, every revision");
    let rows = number_after(&full, "(");
    assert!((19_000.0..=20_100.0).contains(&rows), "{full}");
    // The side by side ran in the same invocation (it fails the command if DuckDB's latest view
    // disagrees with ours) and reports ratios.
    let drain = line("| drain the topic into Iceberg");
    assert!(number_after(&drain, "rev/s |") > 0.0, "{drain}");
    let ratio: f64 = drain.trim_end_matches(" |").rsplit("| ").next().unwrap().parse().unwrap();
    assert!(ratio > 0.0 && ratio.is_finite(), "{drain}");
    line("| one series, latest view, p50 (vs DuckDB");
    line("| full table, every revision (ours");
}
