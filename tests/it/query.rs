//! The Flight service end to end: `vintagelake query` as a child process, pyarrow.flight (a client
//! nobody here wrote) and arrow-flight's client over TCP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use vintagelake_schemas::{EconomicSeries, SeriesId, Timestamp};
use vintagelake_storage::catalog::Warehouse;
use vintagelake_storage::store::{FinancialDataStorage, IcebergStore};
use vintagelake_testkit::fixtures::*;
use vintagelake_testkit::tools::{pyiceberg_python, run_python};

use crate::support::*;

fn series(id: &str, title: &str) -> EconomicSeries {
    EconomicSeries {
        id: id.parse::<SeriesId>().unwrap(),
        source_id: "fred".into(),
        external_id: id.into(),
        title: title.into(),
        description: None,
        units: Some("Billions".into()),
        frequency: "Quarterly".into(),
        seasonal_adjustment: None,
        start_date: None,
        end_date: None,
        is_active: true,
        created_at: Timestamp::from_nanos(0),
        updated_at: Timestamp::from_nanos(0),
        notes: None,
        release: None,
        last_updated: None,
    }
}

async fn fixture(dir: &std::path::Path) -> Arc<Warehouse> {
    let wh = open(dir).await;
    let store = IcebergStore::new(wh.clone());
    write_fixture(&store).await;
    store.write_series(&series("GDPC1", "Real Gross Domestic Product")).await.unwrap();
    store.write_series(&series("UNRATE", "Unemployment Rate")).await.unwrap();
    wh
}

fn query_daemon(dir: &std::path::Path, extra: &[(&str, &str)]) -> (Daemon, u16) {
    let port = free_port();
    let mut env = BTreeMap::from([
        ("DATA_DIR".to_owned(), dir.display().to_string()),
        ("FLIGHT_SERVER_PORT".to_owned(), port.to_string()),
        ("FLIGHT_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("HEALTH_CHECK_INTERVAL".to_owned(), "1s".to_owned()),
    ]);
    for (k, v) in extra {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    (Daemon::spawn(&["query"], dir, &env), port)
}

async fn wait_ready(d: &mut Daemon) {
    wait_for(Duration::from_secs(60), "query service ready", || {
        d.assert_alive();
        let get = d.get("/ready");
        async move { get.await.is_some_and(|(c, _)| c == 200) }
    })
    .await;
}

async fn python() -> std::path::PathBuf {
    tokio::task::spawn_blocking(pyiceberg_python).await.unwrap().expect("python environment")
}

/// (series, date, value, realtime_start, realtime_end) rows from the script's JSON.
fn json_rows(v: &serde_json::Value) -> Vec<Row> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            let s = |i: usize| r[i].as_str().unwrap().to_owned();
            (s(0), s(1), r[2].as_f64(), s(3), s(4))
        })
        .collect()
}

const PYARROW_CLIENT: &str = r#"
import sys, json
import pyarrow.flight as fl
port, token, warehouse = sys.argv[1], sys.argv[2], sys.argv[3]
opts = fl.FlightCallOptions(headers=[(b"authorization", ("Bearer " + token).encode())]) if token else fl.FlightCallOptions()
c = fl.connect(f"grpc://127.0.0.1:{port}")
def rows(t):
    d = t.to_pydict()
    return [[d["series_id"][i], d["date"][i].isoformat(), d["value"][i], d["realtime_start"][i].isoformat(), d["realtime_end"][i].isoformat()] for i in range(t.num_rows)]
out = {"flights": [], "views": {}}
for f in c.list_flights(options=opts):
    out["flights"].append({"ticket": json.loads(f.endpoints[0].ticket.ticket), "meta": json.loads(f.app_metadata)})
tickets = {
    "latest": {"version": 1, "view": "latest", "series": ["GDPC1"]},
    "first_release": {"version": 1, "view": "first_release", "series": ["GDPC1"]},
    "all_revisions": {"version": 1, "view": "all_revisions", "series": ["GDPC1"]},
}
for d in ["2023-04-26", "2023-04-27", "2023-09-01", "2023-10-26", "2024-06-01"]:
    tickets["as_of " + d] = {"version": 1, "view": "as_of", "as_of": d, "series": ["GDPC1"]}
for name, t in tickets.items():
    info = c.get_flight_info(fl.FlightDescriptor.for_command(json.dumps(t)), options=opts)
    table = c.do_get(info.endpoints[0].ticket, options=opts).read_all()
    again = c.get_flight_info(fl.FlightDescriptor.for_command(json.dumps(t)), options=opts)
    out["views"][name] = {"total_records": info.total_records, "total_records_after": again.total_records, "rows": rows(table)}
schema = c.get_schema(fl.FlightDescriptor.for_command(json.dumps(tickets["latest"])), options=opts).schema
out["schema"] = schema.names
audit = list(c.do_action(fl.Action("audit", json.dumps({"action": "move"}).encode()), options=opts))
out["audit"] = json.loads(audit[0].body.to_pybytes())
if warehouse == "-":
    print(json.dumps(out))
    sys.exit(0)

# The same questions through pyiceberg + pandas, straight from the table.
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri="sqlite:///" + warehouse + "/catalog.sqlite", warehouse="file://" + warehouse + "/warehouse")
df = cat.load_table("econ.data_points").scan(row_filter="series_id == 'GDPC1'").to_pandas()
df = df.sort_values(["series_id", "date", "revision_date", "ingest_seq"]).drop_duplicates(["series_id", "date", "revision_date"], keep="last")
def answer(frame):
    last = frame.groupby(["series_id", "date"]).tail(1).sort_values(["series_id", "date"])
    return [[r.series_id, r.date.isoformat(), None if r.value != r.value else r.value] for r in last.itertuples()]
import datetime
out["pandas_latest"] = answer(df)
out["pandas_as_of_2023-10-26"] = answer(df[df.revision_date <= datetime.date(2023, 10, 26)])
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyarrow_flight_reads_every_view_and_pandas_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let wh = fixture(dir.path()).await;
    // Two lifecycle actions in the audit trail; the client asks for the moves only.
    use vintagelake_runtime::audit::AuditEntry;
    wh.audit().append(&AuditEntry::new("compactor", "compact").snapshot(Some(1))).unwrap();
    let moved = AuditEntry::new("tierer", "move").rule("warm keeps data for 365 days").files(vec!["f.parquet".into()]);
    wh.audit().append(&moved).unwrap();
    let (mut q, port) = query_daemon(dir.path(), &[]);
    wait_ready(&mut q).await;
    let python = python().await;
    let out = run_python(&python, PYARROW_CLIENT, &[&port.to_string(), "", dir.path().to_str().unwrap()])
        .expect("pyarrow client");
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();

    let flights = out["flights"].as_array().unwrap();
    let ids: Vec<&str> = flights.iter().map(|f| f["meta"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["GDPC1", "UNRATE"]);
    assert_eq!(flights[0]["meta"]["title"], "Real Gross Domestic Product");
    assert_eq!(flights[0]["ticket"]["series"][0], "GDPC1");

    let view = |name: &str| json_rows(&out["views"][name]["rows"]);
    assert_eq!(view("latest"), expected_latest());
    assert_eq!(view("first_release"), expected_first_release());
    assert_eq!(view("all_revisions"), expected_all_revisions());
    for (date, expected) in expected_as_of() {
        assert_eq!(view(&format!("as_of {date}")), expected, "as_of {date}");
    }
    // get_flight_info does not run the query: the count is unknown (-1) until the answer is
    // cached, then exact.
    assert_eq!(out["views"]["latest"]["total_records"], -1);
    assert_eq!(out["views"]["latest"]["total_records_after"], 5);
    // The seed's data point, the real-time period, then wire version 2's status and comment.
    let names: Vec<&str> = out["schema"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[8..], ["realtime_start", "realtime_end", "status", "comment"]);
    // do_action("audit") serves the lifecycle audit trail, filtered.
    let entries = out["audit"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{}", out["audit"]);
    assert_eq!(serde_json::from_value::<AuditEntry>(entries[0].clone()).unwrap(), moved);

    // pandas over pyiceberg's scan gives the same values.
    let pandas = |key: &str| -> Vec<(String, String, Option<f64>)> {
        out[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into(), r[2].as_f64()))
            .collect()
    };
    let ours =
        |rows: Vec<Row>| -> Vec<(String, String, Option<f64>)> { rows.into_iter().map(|r| (r.0, r.1, r.2)).collect() };
    assert_eq!(pandas("pandas_latest"), ours(expected_latest()));
    assert_eq!(pandas("pandas_as_of_2023-10-26"), ours(expected_as_of()[3].1.clone()));
    assert!(q.terminate(Duration::from_secs(20)).success());
}

/// The same Flight API over a V1 store (`STORAGE_TYPE=parquet`): every view, the series
/// listing, the schema, and time travel by log version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pyarrow_flight_reads_every_view_from_a_v1_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = vintagelake_v1::ParquetStore::open(dir.path().join("parquet")).await.unwrap();
    write_fixture(&store).await;
    store.write_series(&series("GDPC1", "Real Gross Domestic Product")).await.unwrap();
    store.write_series(&series("UNRATE", "Unemployment Rate")).await.unwrap();
    let (mut q, port) = query_daemon(dir.path(), &[("STORAGE_TYPE", "parquet")]);
    wait_ready(&mut q).await;
    let python = python().await;
    let out = run_python(&python, PYARROW_CLIENT, &[&port.to_string(), "", "-"]).expect("pyarrow client");
    let out: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let ids: Vec<&str> = out["flights"].as_array().unwrap().iter().map(|f| f["meta"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["GDPC1", "UNRATE"]);
    let view = |name: &str| json_rows(&out["views"][name]["rows"]);
    assert_eq!(view("latest"), expected_latest());
    assert_eq!(view("first_release"), expected_first_release());
    assert_eq!(view("all_revisions"), expected_all_revisions());
    for (date, expected) in expected_as_of() {
        assert_eq!(view(&format!("as_of {date}")), expected, "as_of {date}");
    }
    assert_eq!(out["views"]["latest"]["total_records_after"], 5);
    // The seed's data point, the real-time period, then wire version 2's status and comment.
    let names: Vec<&str> = out["schema"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names.len(), 12);
    assert_eq!(names[8..], ["realtime_start", "realtime_end", "status", "comment"]);

    // Time travel by log version: the first commit held only the first vintage's rows.
    use arrow_flight::{FlightClient, Ticket};
    use futures::TryStreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_storage::scan::View;
    let channel = flight_channel(port).await;
    let mut client = FlightClient::new(channel);
    let all = TicketV1::for_series(&"GDPC1".parse().unwrap(), View::AllRevisions);
    let mut fetch = async |t: TicketV1| -> Vec<Row> {
        let batches: Vec<arrow::array::RecordBatch> =
            client.do_get(Ticket::new(t.to_bytes())).await.unwrap().try_collect().await.unwrap();
        batches.iter().flat_map(rows).collect()
    };
    let then = fetch(TicketV1 { snapshot_id: Some(1), ..all.clone() }).await;
    let now = fetch(all).await;
    assert_eq!(now, expected_all_revisions());
    assert!(!then.is_empty() && then.len() < now.len(), "version 1: {} rows, now {}", then.len(), now.len());
    assert!(q.terminate(Duration::from_secs(20)).success());
}

const AUTH_PROBE: &str = r#"
import sys, json
import pyarrow.flight as fl
url, token, user, password = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kw = {"tls_root_certs": open(sys.argv[5], "rb").read()} if len(sys.argv) > 5 else {}
c = fl.connect(url, **kw)
ticket = json.dumps({"version": 1, "view": "latest", "series": ["GDPC1"]}).encode()
calls = {
    "list_flights": lambda o: list(c.list_flights(options=o)),
    "get_flight_info": lambda o: c.get_flight_info(fl.FlightDescriptor.for_command(ticket), options=o),
    "get_schema": lambda o: c.get_schema(fl.FlightDescriptor.for_command(ticket), options=o),
    "do_get": lambda o: c.do_get(fl.Ticket(ticket), options=o).read_all(),
    "do_action": lambda o: list(c.do_action(fl.Action("health", b""), options=o)),
    "list_actions": lambda o: list(c.list_actions(options=o)),
}
def probe(opts):
    res = {}
    for name, call in calls.items():
        try:
            call(opts); res[name] = "ok"
        except fl.FlightUnauthenticatedError:
            res[name] = "unauthenticated"
        except Exception as e:
            # pyarrow's get_schema raises a plain OSError for gRPC UNAUTHENTICATED; the status is
            # in its message.
            unauth = "Flight returned unauthenticated error" in str(e)
            res[name] = "unauthenticated" if unauth else type(e).__name__ + ": " + str(e)
    return res
bearer = lambda t: fl.FlightCallOptions(headers=[(b"authorization", b"Bearer " + t.encode())])
out = {"none": probe(fl.FlightCallOptions()), "wrong": probe(bearer("not-the-token")), "valid": probe(bearer(token))}
header = c.authenticate_basic_token(user.encode(), password.encode())
out["basic"] = probe(fl.FlightCallOptions(headers=[header]))
try:
    c.authenticate_basic_token(user.encode(), b"wrong-password"); out["bad_basic"] = "accepted"
except fl.FlightUnauthenticatedError:
    out["bad_basic"] = "unauthenticated"
print(json.dumps(out))
"#;

fn assert_auth(out: &serde_json::Value) {
    for case in ["none", "wrong"] {
        for (rpc, result) in out[case].as_object().unwrap() {
            assert_eq!(result, "unauthenticated", "{case} token, {rpc}");
        }
    }
    for case in ["valid", "basic"] {
        for (rpc, result) in out[case].as_object().unwrap() {
            assert_eq!(result, "ok", "{case} token, {rpc}");
        }
    }
    assert_eq!(out["bad_basic"], "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_rpc_needs_a_valid_token() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).await;
    let (mut q, port) = query_daemon(dir.path(), &[("FLIGHT_TOKENS", "tok-123"), ("FLIGHT_USERS", "ana:pw")]);
    wait_ready(&mut q).await;
    let python = python().await;
    let url = format!("grpc://127.0.0.1:{port}");
    let out = run_python(&python, AUTH_PROBE, &[&url, "tok-123", "ana", "pw"]).expect("auth probe");
    assert_auth(&serde_json::from_str(out.trim()).unwrap());
    let (_, metrics) = q.get("/metrics").await.unwrap();
    assert!(metrics.contains("vintagelake_query_auth_failures_total"), "auth failures are counted");
}

/// Tokens are revoked without a restart: a changed tokens file is read again within seconds,
/// and SIGHUP reads it at once (here with its modification time put back, so only the signal
/// can have caused the reload). Handshake tokens expire after FLIGHT_TOKEN_TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_reload_from_their_file_and_handshake_tokens_expire() {
    use arrow_flight::{FlightClient, Ticket};
    use futures::TryStreamExt;
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).await;
    let file = dir.path().join("tokens.txt");
    std::fs::write(&file, "# one per line\nalpha\n").unwrap();
    let (mut q, port) = query_daemon(
        dir.path(),
        &[("FLIGHT_TOKENS_FILE", file.to_str().unwrap()), ("FLIGHT_USERS", "ana:pw"), ("FLIGHT_TOKEN_TTL", "2s")],
    );
    wait_ready(&mut q).await;
    let channel = flight_channel(port).await;
    let ticket = vintagelake_query::ticket::TicketV1::for_series(
        &"GDPC1".parse().unwrap(),
        vintagelake_storage::scan::View::Latest,
    )
    .to_bytes();
    let read = |token: String| {
        let mut client = FlightClient::new(channel.clone());
        let ticket = ticket.clone();
        async move {
            client.add_header("authorization", &format!("Bearer {token}")).unwrap();
            match client.do_get(Ticket::new(ticket)).await {
                Ok(s) => s.try_collect::<Vec<_>>().await.map(|_| ()).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    assert_eq!(read("alpha".into()).await, Ok(()));
    assert!(read("beta".into()).await.is_err());
    // The file changes: alpha is revoked, beta accepted, no restart.
    std::fs::write(&file, "beta\n").unwrap();
    wait_for(Duration::from_secs(20), "the changed tokens file in effect", || {
        let (a, b) = (read("alpha".into()), read("beta".into()));
        async move { a.await.is_err() && b.await.is_ok() }
    })
    .await;
    // SIGHUP: the file is read now, even when its modification time says nothing changed.
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "gamma\n").unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(before).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &q.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    wait_for(Duration::from_secs(20), "SIGHUP reloaded the tokens", || {
        let (b, g) = (read("beta".into()), read("gamma".into()));
        async move { b.await.is_err() && g.await.is_ok() }
    })
    .await;
    q.assert_alive();
    // A handshake token works until its TTL (2 s here), then needs a new handshake.
    let mut client = FlightClient::new(channel.clone());
    let basic = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "ana:pw");
    client.add_header("authorization", &format!("Basic {basic}")).unwrap();
    let issued = String::from_utf8(client.handshake(Vec::new()).await.unwrap().to_vec()).unwrap();
    assert_eq!(read(issued.clone()).await, Ok(()));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let expired = read(issued).await.unwrap_err();
    assert!(expired.contains("expired"), "{expired}");
    let log = q.log_text();
    assert!(log.contains("Flight tokens reloaded") && log.contains("SIGHUP"), "{log}");
}

/// Grants from the config file: a principal reads only the series its grant names (the others'
/// rows are absent, not an error), sees only them in `list_flights`, gets no counts that would
/// tell about the rest, and runs admin actions only with an admin grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grants_decide_which_series_and_actions_each_token_reaches() {
    use arrow_flight::{Action, Criteria, FlightClient, FlightDescriptor, Ticket};
    use futures::TryStreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_storage::scan::View;
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).await;
    let config = dir.path().join("grants.yaml");
    std::fs::write(
        &config,
        "security:\n  grants:\n    analyst: { series: [\"GDP*\"] }\n    ops: { series: [\"*\"], admin: true }\n",
    )
    .unwrap();
    let (mut q, port) = query_daemon(
        dir.path(),
        &[
            ("FLIGHT_TOKENS", "analyst:t-analyst,ops:t-ops,nobody:t-nobody"),
            ("VINTAGELAKE_CONFIG", config.to_str().unwrap()),
        ],
    );
    wait_ready(&mut q).await;
    let channel = flight_channel(port).await;
    let client = |token: &str| {
        let mut c = FlightClient::new(channel.clone());
        c.add_header("authorization", &format!("Bearer {token}")).unwrap();
        c
    };
    let all = TicketV1 { series: vec![], ..TicketV1::for_series(&"GDPC1".parse().unwrap(), View::AllRevisions) };
    let unrate = TicketV1::for_series(&"UNRATE".parse().unwrap(), View::AllRevisions);
    async fn series_read(c: &mut FlightClient, t: &TicketV1) -> std::collections::BTreeSet<String> {
        let batches: Vec<arrow::array::RecordBatch> =
            c.do_get(Ticket::new(t.to_bytes())).await.unwrap().try_collect().await.unwrap();
        batches.iter().flat_map(|b| rows(b).into_iter().map(|r| r.0)).collect()
    }
    let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<std::collections::BTreeSet<_>>();
    let (mut analyst, mut ops, mut nobody) = (client("t-analyst"), client("t-ops"), client("t-nobody"));
    assert_eq!(series_read(&mut ops, &all).await, names(&["GDPC1", "UNRATE"]));
    assert_eq!(series_read(&mut analyst, &all).await, names(&["GDPC1"]), "only the granted series");
    assert!(series_read(&mut analyst, &unrate).await.is_empty(), "absent, not an error");
    assert!(series_read(&mut nobody, &all).await.is_empty(), "a principal with no grant reads nothing");
    let listed = |token: &str| {
        let mut c = client(token);
        async move {
            let infos: Vec<arrow_flight::FlightInfo> =
                c.list_flights(Criteria::default().expression).await.unwrap().try_collect().await.unwrap();
            infos.len()
        }
    };
    assert_eq!((listed("t-ops").await, listed("t-analyst").await, listed("t-nobody").await), (2, 1, 0));
    // Counts are withheld from a partial reader even when the answer is cached.
    let gdp = TicketV1::for_series(&"GDPC1".parse().unwrap(), View::AllRevisions);
    assert_eq!(series_read(&mut ops, &gdp).await, names(&["GDPC1"])); // now cached
    let descriptor = FlightDescriptor::new_cmd(gdp.to_bytes());
    assert!(ops.get_flight_info(descriptor.clone()).await.unwrap().total_records > 0);
    assert_eq!(analyst.get_flight_info(descriptor).await.unwrap().total_records, -1);
    let refresh = |token: &str| {
        let mut c = client(token);
        async move { c.do_action(Action::new("refresh", "")).await.map(|_| ()).map_err(|e| e.to_string()) }
    };
    assert_eq!(refresh("t-ops").await, Ok(()));
    let denied = refresh("t-analyst").await.unwrap_err();
    assert!(denied.contains("PermissionDenied") || denied.contains("permission denied"), "{denied}");
    // Every data access is in the audit trail: who, the ticket, rows, bytes, outcome; a refused
    // one too. An admin reads them with the audit action.
    assert!(client("t-wrong").do_get(Ticket::new(all.to_bytes())).await.is_err());
    let reads = || {
        let mut c = client("t-ops");
        async move {
            let body: Vec<bytes::Bytes> =
                c.do_action(Action::new("audit", r#"{"action":"read"}"#)).await.unwrap().try_collect().await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body[0]).unwrap();
            v["entries"].as_array().cloned().unwrap_or_default()
        }
    };
    wait_for(Duration::from_secs(20), "the access audit written", || {
        let r = reads();
        async move { r.await.iter().any(|e| e["actor"] == "unauthenticated") }
    })
    .await;
    let entries = reads().await;
    let by = |actor: &str| entries.iter().filter(|e| e["actor"] == actor).cloned().collect::<Vec<_>>();
    let analyst_all = by("analyst")
        .into_iter()
        .find(|e| e["detail"]["request"]["series"].is_null() && e["detail"]["rpc"] == "do_get")
        .expect("the analyst's whole-table read is recorded");
    assert_eq!(analyst_all["outcome"], "ok");
    assert!(analyst_all["rows"].as_u64().unwrap() > 0 && analyst_all["bytes"].as_u64().unwrap() > 0, "{analyst_all}");
    assert_eq!(
        by("nobody").iter().filter(|e| e["detail"]["rpc"] == "do_get").map(|e| e["rows"].as_u64()).collect::<Vec<_>>(),
        vec![Some(0)]
    );
    let refused = &by("unauthenticated")[0];
    assert!(refused["outcome"].as_str().unwrap().starts_with("denied"), "{refused}");
    q.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_round_trip_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    fixture(dir.path()).await;
    // A test CA and a server certificate it signs (rustls refuses a CA used as the server's own).
    let p = |name: &str| dir.path().join(name);
    let (ca, ca_key, cert, key, csr, ext) =
        (p("ca.pem"), p("ca.key"), p("cert.pem"), p("key.pem"), p("leaf.csr"), p("ext.cnf"));
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n").unwrap();
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("openssl").args(args).output().expect("openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let s = |x: &'static str| std::ffi::OsStr::new(x);
    openssl(&[
        s("req"),
        s("-x509"),
        s("-newkey"),
        s("rsa:2048"),
        s("-nodes"),
        s("-days"),
        s("2"),
        s("-subj"),
        s("/CN=vintagelake test CA"),
        s("-keyout"),
        ca_key.as_os_str(),
        s("-out"),
        ca.as_os_str(),
    ]);
    openssl(&[
        s("req"),
        s("-newkey"),
        s("rsa:2048"),
        s("-nodes"),
        s("-subj"),
        s("/CN=localhost"),
        s("-keyout"),
        key.as_os_str(),
        s("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        s("x509"),
        s("-req"),
        s("-in"),
        csr.as_os_str(),
        s("-CA"),
        ca.as_os_str(),
        s("-CAkey"),
        ca_key.as_os_str(),
        s("-CAcreateserial"),
        s("-days"),
        s("2"),
        s("-extfile"),
        ext.as_os_str(),
        s("-out"),
        cert.as_os_str(),
    ]);
    let (mut q, port) = query_daemon(
        dir.path(),
        &[
            ("FLIGHT_TLS_CERT", cert.to_str().unwrap()),
            ("FLIGHT_TLS_KEY", key.to_str().unwrap()),
            ("FLIGHT_TOKENS", "tok-123"),
            ("FLIGHT_USERS", "ana:pw"),
        ],
    );
    wait_ready(&mut q).await;
    let python = python().await;
    let url = format!("grpc+tls://127.0.0.1:{port}");
    let out =
        run_python(&python, AUTH_PROBE, &[&url, "tok-123", "ana", "pw", ca.to_str().unwrap()]).expect("TLS probe");
    assert_auth(&serde_json::from_str(out.trim()).unwrap());

    // Our own client over TLS too.
    let get = std::process::Command::new(env!("CARGO_BIN_EXE_vintagelake"))
        .args(["get", "GDPC1", "--format", "csv", "--flight-url", &format!("https://127.0.0.1:{port}")])
        .args(["--token", "tok-123", "--tls-ca", ca.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(get.status.success(), "{}", String::from_utf8_lossy(&get.stderr));
    let csv = String::from_utf8(get.stdout).unwrap();
    assert_eq!(csv.lines().count(), 1 + expected_latest().len(), "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains("2022-10-01"));
    // Plain text to a TLS port fails.
    let plain = std::process::Command::new(env!("CARGO_BIN_EXE_vintagelake"))
        .args(["get", "GDPC1", "--flight-url", &format!("http://127.0.0.1:{port}"), "--token", "tok-123"])
        .output()
        .unwrap();
    assert!(!plain.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_reads_during_rewrites_stay_consistent() {
    use arrow_flight::{FlightClient, Ticket};
    use futures::TryStreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_storage::catalog::TableKind;
    use vintagelake_storage::commit::CommitKind;
    use vintagelake_storage::files::{live_files, read_data_files};
    use vintagelake_storage::scan::View;

    let dir = tempfile::tempdir().unwrap();
    let wh = fixture(dir.path()).await;
    let (mut q, port) = query_daemon(dir.path(), &[("CACHE_SIZE_MB", "0")]);
    wait_ready(&mut q).await;
    let channel = flight_channel(port).await;

    // A writer merges and re-splits the table's files over and over while the readers run.
    let store = Arc::new(IcebergStore::new(wh.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rewriter = {
        let (store, stop, wh) = (store.clone(), stop.clone(), wh.clone());
        tokio::spawn(async move {
            let mut rewrites = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let table = wh.load(TableKind::DataPoints).await.unwrap();
                let paths: Vec<String> =
                    live_files(&wh, &table, None).await.unwrap().into_iter().map(|f| f.path).collect();
                let rows = read_data_files(&wh, &paths, 4).await.unwrap();
                store
                    .rewrite(TableKind::DataPoints, paths, &rows, CommitKind::Replace, "compaction", BTreeMap::new())
                    .await
                    .unwrap();
                rewrites += 1;
            }
            rewrites
        })
    };
    let tickets: Vec<(Vec<u8>, Vec<Row>)> = vec![
        (TicketV1::for_series(&"GDPC1".parse().unwrap(), View::Latest).to_bytes(), expected_latest()),
        (TicketV1::for_series(&"GDPC1".parse().unwrap(), View::AllRevisions).to_bytes(), expected_all_revisions()),
        (TicketV1::for_series(&"GDPC1".parse().unwrap(), View::FirstRelease).to_bytes(), expected_first_release()),
    ];
    let tickets = Arc::new(tickets);
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..1_000 {
        let (channel, tickets) = (channel.clone(), tickets.clone());
        readers.spawn(async move {
            let (ticket, expected) = &tickets[i % tickets.len()];
            let mut client = FlightClient::new(channel);
            let batches: Vec<arrow::array::RecordBatch> =
                client.do_get(Ticket::new(ticket.clone())).await?.try_collect().await?;
            let got: Vec<Row> = batches.iter().flat_map(rows).collect();
            Ok::<bool, arrow_flight::error::FlightError>(&got == expected)
        });
    }
    let mut consistent = 0;
    while let Some(r) = readers.join_next().await {
        assert!(
            r.unwrap().expect("no reader error (no missing file, no mixed snapshot)"),
            "a reader saw an inconsistent answer"
        );
        consistent += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rewrites = rewriter.await.unwrap();
    assert_eq!(consistent, 1_000);
    assert!(rewrites >= 2, "the table was rewritten while reading ({rewrites} rewrites)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_series_of_a_5_million_row_table_reads_few_files() {
    use arrow_flight::{Action, FlightClient, Ticket};
    use futures::TryStreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_storage::scan::View;

    const SERIES: usize = 1_000;
    const DATES: usize = 5_000;
    const PER_COMMIT: usize = 20; // series per file, like a table compaction has sorted
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    for chunk in 0..SERIES / PER_COMMIT {
        let rows = grid("S", chunk * PER_COMMIT..(chunk + 1) * PER_COMMIT, DATES, 1);
        store.append_points(&rows, vec![], "backfill").await.unwrap();
    }
    assert_eq!(total_records(&wh).await, (SERIES * DATES) as u64);

    let (mut q, port) = query_daemon(dir.path(), &[]);
    wait_ready(&mut q).await;
    let channel = flight_channel(port).await;
    let mut client = FlightClient::new(channel);
    let ticket = TicketV1::for_series(&"S00517".parse().unwrap(), View::Latest).to_bytes();
    let explain: Vec<bytes::Bytes> =
        client.do_action(Action::new("explain", ticket.clone())).await.unwrap().try_collect().await.unwrap();
    let explain: serde_json::Value = serde_json::from_slice(&explain[0]).unwrap();
    let (total, planned) = (explain["files_total"].as_u64().unwrap(), explain["files_planned"].as_u64().unwrap());
    eprintln!("5M rows: the scan for one series plans {planned} of {total} data files ({})", explain["predicate"]);
    assert_eq!(total, (SERIES / PER_COMMIT) as u64);
    assert_eq!(planned, 1, "series_id pruning by file statistics");
    let batches: Vec<arrow::array::RecordBatch> =
        client.do_get(Ticket::new(ticket)).await.unwrap().try_collect().await.unwrap();
    let got = batches.iter().flat_map(rows).collect::<Vec<_>>();
    assert_eq!(got.len(), DATES);
    assert!(got.iter().all(|r| r.0 == "S00517"), "only that series");
    assert!(batches.len() > 1, "streamed in BATCH_SIZE batches, all of them");
}

/// A 10^7-row answer streams through the service in bounded memory: the service's peak resident
/// memory (`VmHWM`) stays within the bound its configuration sets (`Limits::memory_bound`: caches,
/// streams × groups × `STREAM_CHUNK_ROWS`), which is a fraction of the answer's own size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_million_row_answer_streams_within_the_memory_bound() {
    use arrow::array::AsArray;
    use arrow_flight::{FlightClient, Ticket};
    use futures::StreamExt;
    use vintagelake_query::ticket::TicketV1;
    use vintagelake_storage::scan::View;

    const SERIES: usize = 2_000;
    const DATES: usize = 2_500;
    const REVISIONS: usize = 2;
    const PER_COMMIT: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let wh = open(dir.path()).await;
    let store = IcebergStore::new(wh.clone());
    for chunk in 0..SERIES / PER_COMMIT {
        let rows = grid("M", chunk * PER_COMMIT..(chunk + 1) * PER_COMMIT, DATES, REVISIONS);
        store.append_points(&rows, vec![], "backfill").await.unwrap();
    }
    let total = SERIES * DATES * REVISIONS;
    assert_eq!(total_records(&wh).await, total as u64);

    let limits =
        vintagelake_query::Limits { cache_bytes: 16 << 20, batch_size: 8192, chunk_rows: 65_536, max_streams: 1 };
    let hot_bytes = 64 << 20;
    let bound = limits.memory_bound(hot_bytes);
    let (mut q, port) = query_daemon(
        dir.path(),
        &[
            ("CACHE_SIZE_MB", "16"),
            ("HOT_CACHE_MB", "64"),
            ("BATCH_SIZE", "8192"),
            ("STREAM_CHUNK_ROWS", "65536"),
            ("MAX_STREAMS", "1"),
        ],
    );
    wait_ready(&mut q).await;
    let channel = flight_channel(port).await;
    let mut client = FlightClient::new(channel);
    let all = TicketV1 { series: Vec::new(), ..TicketV1::for_series(&"M00000".parse().unwrap(), View::AllRevisions) };
    // Streamed and counted, never held: every row, by series then date.
    let mut stream = client.do_get(Ticket::new(all.to_bytes())).await.unwrap();
    let (mut streamed, mut batches, mut last) = (0usize, 0usize, (String::new(), i32::MIN));
    while let Some(batch) = stream.next().await {
        let batch = batch.unwrap();
        let ids = batch.column_by_name("series_id").unwrap().as_string::<i32>();
        let dates = batch.column_by_name("date").unwrap().as_primitive::<arrow::datatypes::Date32Type>();
        for i in 0..batch.num_rows() {
            let key = (ids.value(i), dates.value(i));
            assert!((last.0.as_str(), last.1) <= key, "rows out of order at {key:?}");
            if last.0 != key.0 {
                last.0 = key.0.to_owned();
            }
            last.1 = key.1;
        }
        streamed += batch.num_rows();
        batches += 1;
    }
    assert_eq!(streamed, total, "every revision of the table");
    assert!(batches >= total / 8192, "{batches} batches");
    let status = std::fs::read_to_string(format!("/proc/{}/status", q.child.id())).unwrap();
    let peak_kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    let peak = peak_kib << 10;
    // The answer decoded is about 100 bytes a row: ~1 GB for 10^7 rows.
    eprintln!(
        "streamed {streamed} rows in {batches} batches; query service peak RSS {} MiB, bound {} MiB",
        peak >> 20,
        bound >> 20
    );
    assert!(bound < total * 100 / 2, "the bound ({} MiB) is well below the answer's size", bound >> 20);
    assert!(peak <= bound, "peak RSS {} MiB exceeds the configured bound {} MiB", peak >> 20, bound >> 20);
}
