//! The command line: subcommands, options with their env vars, config precedence, validation.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn vintagelake(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vintagelake"));
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("binary runs");
    if let Some(bytes) = stdin {
        child.stdin.take().unwrap().write_all(bytes).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let out = vintagelake(dir.path(), &["--help"], &[], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for sub in ["serve", "ingest", "compact", "tier", "query", "produce", "get", "admin"] {
        assert!(help.lines().any(|l| l.trim_start().starts_with(&format!("{sub} "))), "{sub} missing from:\n{help}");
    }
}

#[test]
fn every_ingest_option_shows_its_env_var() {
    let dir = tempfile::tempdir().unwrap();
    let out = vintagelake(dir.path(), &["ingest", "--help"], &[], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    // Options are listed one per entry: the flag line, then its (wrapped) description.
    let entries: Vec<String> =
        help.split("\n      --").skip(1).map(|e| e.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert!(entries.len() >= 20, "expected the shared and ingest options, got {}", entries.len());
    for e in &entries {
        assert!(e.contains("[env: "), "option without env var: --{e}");
    }
    for var in [
        "DATA_DIR",
        "STORAGE_TYPE",
        "FLIGHT_SERVER_PORT",
        "CACHE_SIZE_MB",
        "BATCH_SIZE",
        "MAX_CONCURRENT_OPERATIONS",
        "METRICS_ENABLED",
        "HEALTH_CHECK_INTERVAL",
        "KAFKA_BOOTSTRAP_SERVERS",
        "COMMIT_INTERVAL",
        "COMMIT_MAX_ROWS",
    ] {
        assert!(help.contains(&format!("[env: {var}=")), "{var} missing");
    }
}

#[test]
fn validate_message_names_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[u8], &str, &str)] = &[
        (
            br#"{"version":1,"series_id":"GDPC1","date":"2024-13-01","revision_date":"2024-04-25","value":1}"#,
            "date",
            "bad_date",
        ),
        (
            br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":"high"}"#,
            "value",
            "not_a_number",
        ),
        (
            br#"{"version":9,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":1}"#,
            "version",
            "unknown_version",
        ),
        (br#"{"version":1,"date":"2024-01-01","revision_date":"2024-04-25","value":1}"#, "series_id", "missing_field"),
        (b"{\"version\":1,\"series_id\":\"\xff\"}", "$", "invalid_utf8"),
    ];
    for (msg, field, reason) in cases {
        let out = vintagelake(dir.path(), &["admin", "validate-message"], &[], Some(msg));
        assert!(!out.status.success(), "accepted {}", text(msg));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON verdict");
        assert_eq!(v["valid"], false);
        assert_eq!(v["field"], *field);
        assert_eq!(v["reason"], *reason);
        let shown = if *field == "$" { "message" } else { *field };
        assert!(text(&out.stderr).contains(shown), "{}", text(&out.stderr));
    }
    let good =
        br#"{"version":1,"series_id":"GDPC1","date":"2024-01-01","revision_date":"2024-04-25","value":22768.866}"#;
    let out = vintagelake(dir.path(), &["admin", "validate-message"], &[], Some(good));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["records"][0]["value"], 22768.866);

    let file = dir.path().join("series.json");
    std::fs::write(&file, br#"{"version":1,"id":"GDPC1","source_id":"fred","title":"Real GDP"}"#).unwrap();
    let out =
        vintagelake(dir.path(), &["admin", "validate-message", "--kind", "series", file.to_str().unwrap()], &[], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["field"].as_str(), v["reason"].as_str()), (Some("frequency"), Some("missing_field")));
}

#[test]
fn settings_layer_flags_over_env_over_file_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/storage.yaml"),
        "storage:\n  data_dir: /srv/econ\n  performance:\n    batch_size: 500\n    max_concurrent: 7\n  \
         cache:\n    size_mb: 64\n  tiers:\n    - {name: hot, type: nvme, path: /srv/hot, max_age_days: 30}\n\
         server:\n  http_port: 4000\n  flight_port: 4001\n",
    )
    .unwrap();
    let out = vintagelake(
        dir.path(),
        &["admin", "config", "--http-port", "6000"],
        &[("HTTP_PORT", "5000"), ("BATCH_SIZE", "900"), ("FLIGHT_SERVER_PORT", "5001")],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["http_port"], 6000, "flag beats env and file");
    assert_eq!(c["flight_server_port"], 5001, "env beats file");
    assert_eq!(c["batch_size"], 900, "env beats file");
    assert_eq!(c["max_concurrent_operations"], 7, "file beats default");
    assert_eq!(c["cache_size_mb"], 64, "file beats default");
    assert_eq!(c["data_dir"], "/srv/econ");
    assert_eq!(c["catalog_url"], "sqlite:///srv/econ/catalog.sqlite");
    assert_eq!(c["metrics_enabled"], true, "default");
    assert_eq!(c["tiers"][0]["name"], "hot");
}

#[test]
fn an_invalid_config_file_fails_at_start_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "storage:\n  performance:\n    batch_size: many\n").unwrap();
    for sub in ["ingest", "compact", "tier", "query", "serve"] {
        let out = vintagelake(dir.path(), &[sub, "--config", bad.to_str().unwrap()], &[], None);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains("storage.performance.batch_size"), "{sub}: {err}");
    }
    let out = vintagelake(dir.path(), &["ingest", "--config", "missing.yaml"], &[], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.yaml"), "{}", text(&out.stderr));
    let out = vintagelake(dir.path(), &["ingest"], &[("BATCH_SIZE", "0")], None);
    assert_eq!(out.status.code(), Some(2), "clap rejects a zero batch size");
    assert!(text(&out.stderr).contains("--batch-size"), "{}", text(&out.stderr));
}

/// Safe by default: Flight and HTTP listen on this machine only; another address with no
/// authentication is refused at start, naming the setting, unless anonymity is asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_refuses_to_serve_other_machines_anonymously_unless_told_to() {
    use crate::support::{Daemon, free_port, wait_for};
    let dir = tempfile::tempdir().unwrap();
    let out = vintagelake(dir.path(), &["query", "--flight-host", "0.0.0.0", "--http-port", "0"], &[], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("FLIGHT_HOST 0.0.0.0") && err.contains("--allow-anonymous"), "{err}");
    let help = text(&vintagelake(dir.path(), &["query", "--help"], &[], None).stdout);
    assert!(help.contains("[default: 127.0.0.1]"), "{help}");
    // With a token, or on purpose without one, it serves every interface.
    for extra in [("FLIGHT_TOKENS", "s3cret"), ("ALLOW_ANONYMOUS", "true")] {
        let env = std::collections::BTreeMap::from([
            ("FLIGHT_HOST".to_owned(), "0.0.0.0".to_owned()),
            ("FLIGHT_SERVER_PORT".to_owned(), free_port().to_string()),
            ("DATA_DIR".to_owned(), dir.path().join("data").display().to_string()),
            (extra.0.to_owned(), extra.1.to_owned()),
        ]);
        let mut q = Daemon::spawn(&["query"], dir.path(), &env);
        wait_for(Duration::from_secs(60), "query ready on 0.0.0.0", || {
            q.assert_alive();
            let get = q.get("/ready");
            async move { get.await.is_some_and(|(c, _)| c == 200) }
        })
        .await;
        assert!(q.terminate(Duration::from_secs(30)).success(), "{}", q.log_text());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_verify_reports_a_damaged_data_file_and_exits_1() {
    use vintagelake_storage::catalog::TableKind;
    use vintagelake_storage::store::IcebergStore;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = IcebergStore::new(crate::support::open(&data).await);
    let rows = vintagelake_testkit::fixtures::revision_stream("V", 0..4, 10, 2);
    for chunk in rows.chunks(30) {
        store.append_points(chunk, vec![], "test").await.unwrap();
    }
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(["admin", "verify", "--data-dir", data.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let clean = verify();
    let text = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert!(clean.status.success(), "{text}");
    assert!(text.contains(&format!("{} rows checked, 0 problems", rows.len())), "{text}");

    let wh = store.warehouse();
    let table = wh.load(TableKind::DataPoints).await.unwrap();
    let victim = vintagelake_storage::files::live_files(wh, &table, None).await.unwrap()[2].path.clone();
    let local = victim.trim_start_matches("file://");
    let bytes = std::fs::read(local).unwrap();
    std::fs::write(local, &bytes[..bytes.len() - 100]).unwrap();
    let damaged = verify();
    let text = String::from_utf8_lossy(&damaged.stdout).into_owned();
    assert_eq!(damaged.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("DAMAGED data          {victim}")), "{text}");
}

/// Encryption at rest through the binary: bad key settings fail at start naming the setting;
/// with keys, the compactor re-encrypts a plaintext table under the current key, `admin verify`
/// reads it back with the keys, and without them says the files are encrypted (not damaged).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_keys_are_checked_at_start_and_the_compactor_encrypts_an_existing_table() {
    use vintagelake_storage::catalog::TableKind;
    use vintagelake_storage::store::IcebergStore;
    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODw==";
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys");
    std::fs::write(&keys_file, format!("# master keys\n{K1}\n")).unwrap();
    let keys_path = keys_file.to_str().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    for (env, says) in [
        (vec![("ENCRYPTION_KEYS", "k1:AAECAw==")], "ENCRYPTION_KEYS: key \"k1\": 4 bytes"),
        (vec![("ENCRYPTION_KEYS_FILE", "/nonexistent/keys")], "ENCRYPTION_KEYS_FILE: /nonexistent/keys"),
        (vec![("ENCRYPTION_KEYS_FILE", keys_path), ("ENCRYPTION_KEY_ID", "k9")], "\"k9\" is not among the keys (k1)"),
        (vec![("ENCRYPTION_KEYS_FILE", keys_path), ("ENCRYPTION_KEYS", K1)], "both set"),
        (vec![("ENCRYPTION_KEY_ID", "k1")], "ENCRYPTION_KEY_ID: set, but no keys"),
        (vec![("ENCRYPTION_KEYS", K1), ("STORAGE_TYPE", "parquet")], "STORAGE_TYPE=parquet (V1) would write plaintext"),
    ] {
        let mut env = env;
        env.extend([("DATA_DIR", data_dir), ("HTTP_PORT", "0"), ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")]);
        let sub: &[&str] =
            if env.iter().any(|(k, _)| *k == "STORAGE_TYPE") { &["ingest"] } else { &["compact", "--once"] };
        let out = vintagelake(dir.path(), sub, &env, None);
        assert!(!out.status.success(), "{env:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{env:?}: {err}");
        assert!(!err.contains("AAECAwQFBgcICQoLDA0ODw"), "a key never reaches the log: {err}");
    }

    let store = IcebergStore::new(crate::support::open(&data).await);
    let rows = vintagelake_testkit::fixtures::revision_stream("X", 0..3, 10, 2);
    for chunk in rows.chunks(20) {
        store.append_points(chunk, vec![], "test").await.unwrap();
    }
    let keys = |f: &[vintagelake_storage::files::LiveFile]| {
        f.iter()
            .map(|f| vintagelake_storage::files::master_key(&f.data_file))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let wh = store.warehouse();
    let live =
        vintagelake_storage::files::live_files(wh, &wh.load(TableKind::DataPoints).await.unwrap(), None).await.unwrap();
    assert_eq!(keys(&live), [None].into(), "plaintext before");
    let env = [("DATA_DIR", data_dir), ("ENCRYPTION_KEYS_FILE", keys_path), ("HTTP_PORT", "0")];
    let out = vintagelake(dir.path(), &["compact", "--once"], &env, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let live =
        vintagelake_storage::files::live_files(wh, &wh.load(TableKind::DataPoints).await.unwrap(), None).await.unwrap();
    assert_eq!(keys(&live), [Some("k1".to_owned())].into(), "every live file under k1 after the run");
    let series =
        vintagelake_storage::files::live_files(wh, &wh.load(TableKind::Series).await.unwrap(), None).await.unwrap();
    assert!(keys(&series).iter().all(|k| k.as_deref() == Some("k1")));

    let verify = vintagelake(dir.path(), &["admin", "verify"], &env, None);
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    assert!(text(&verify.stdout).contains(" 0 problems"), "{}", text(&verify.stdout));
    let without = vintagelake(dir.path(), &["admin", "verify"], &[("DATA_DIR", data_dir)], None);
    assert!(!without.status.success());
    let said = text(&without.stdout);
    assert!(said.contains("encrypted") && said.contains("ENCRYPTION_KEYS_FILE"), "{said}");
}
