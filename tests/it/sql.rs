//! SQL over the vintages through Flight SQL, with clients nobody here wrote: the ADBC Flight SQL
//! driver from PyPI (its DB-API, `fetch_arrow_table`, pandas), on a random revision stream
//! (corrections, duplicates, missing values, out-of-order backfills) checked against the
//! reference model of the shapes tests and against the Flight views, before and after compaction;
//! `EXPLAIN` shows the series predicate reaching the scan; every Flight SQL RPC is refused
//! without a valid token; grants hide other series' rows; a statement over its limits fails and
//! the service stays up; `vintagelake sql` answers the same.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use arrow_flight::sql::client::FlightSqlServiceClient;
use rand::SeedableRng;
use vintagelake_storage::store::FinancialDataStorage;
use vintagelake_testkit::tools::{pyiceberg_python, run_python};

use crate::shapes::{Lake, Model, day, known_at, model, num, random_arrivals, releases, stored};

/// Asks every question through ADBC and prints the answers as JSON.
const ADBC_CLIENT: &str = r#"
import sys, json
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_flightsql as fs
port, token, one, other, vintage = sys.argv[1:6]
conn = flight_sql.connect(f"grpc://127.0.0.1:{port}", db_kwargs={fs.DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token})
out = {}
def rows(table):
    cols = table.column_names
    d = table.to_pydict()
    return [[(v.isoformat() if hasattr(v, "isoformat") else v) for v in (d[c][i] for c in cols)] for i in range(table.num_rows)]
def ask(name, sql, params=None):
    cur = conn.cursor()
    try:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, parameters=params)
        out[name] = rows(cur.fetch_arrow_table())
    except Exception as e:
        out[name] = {"error": str(e)}
    finally:
        cur.close()

# What a client reads on connect: catalogs, schemas, tables with their columns.
objects = conn.adbc_get_objects(depth="all").read_all().to_pylist()
out["objects"] = {
    c["catalog_name"]: {
        s["db_schema_name"]: {t["table_name"]: [col["column_name"] for col in (t["table_columns"] or [])] for t in s["db_schema_tables"]}
        for s in c["catalog_db_schemas"]
    }
    for c in objects
}
out["table_types"] = sorted(conn.adbc_get_table_types())
out["latest_schema"] = conn.adbc_get_table_schema("latest").names

ask("latest_one", f"SELECT series_id, date, value FROM latest WHERE series_id = '{one}' ORDER BY date")
ask("as_of", f"SELECT series_id, date, value FROM as_of('{vintage}') ORDER BY series_id, date")
ask("first_release", "SELECT series_id, date, value FROM first_release ORDER BY series_id, date")
ask("all_revisions", f"SELECT series_id, date, value, realtime_start, realtime_end FROM all_revisions WHERE series_id IN ('{one}', '{other}') ORDER BY series_id, date, realtime_start")
ask("join", f"SELECT l.series_id, s.title, l.date, l.value FROM latest l JOIN series s ON s.id = l.series_id WHERE s.id = '{other}' ORDER BY l.date")
ask("aggregate", "SELECT series_id, COUNT(*) AS n, COUNT(value) AS known, SUM(value) AS total FROM latest GROUP BY series_id ORDER BY series_id")
ask("prepared", "SELECT series_id, date, value FROM first_release WHERE series_id = ? ORDER BY date", (other,))
ask("prepared_again", "SELECT series_id, date, value FROM first_release WHERE series_id = ? ORDER BY date", (one,))
ask("explain", f"EXPLAIN SELECT * FROM latest WHERE series_id = '{one}'")
# Every column of the view, as the acceptance's `SELECT *` asks it.
cur = conn.cursor()
cur.execute(f"SELECT * FROM latest WHERE series_id = '{one}'")
star = cur.fetch_arrow_table()
out["latest_star"] = {"columns": star.column_names,
                      "rows": rows(star.select(["series_id", "date", "value"]).sort_by([("date", "ascending")]))}
cur.close()
ask("bad_sql", "SELECT date FROM latest WHERE")
ask("no_table", "SELECT * FROM nowhere")
# pandas, through the same driver
cur = conn.cursor()
cur.execute(f"SELECT date, value FROM latest WHERE series_id = '{one}' ORDER BY date")
frame = cur.fetch_df()
out["pandas"] = [[r.date.isoformat(), None if r.value != r.value else r.value] for r in frame.itertuples()]
cur.close()
conn.close()
print(json.dumps(out))
"#;

/// (series, date, value) rows of a view by the reference.
fn latest(m: &Model) -> Vec<Vec<String>> {
    m.iter().map(|((s, d), revs)| vec![s.clone(), day(*d), num(revs.values().next_back().unwrap().0)]).collect()
}

fn as_of(m: &Model, t: i32) -> Vec<Vec<String>> {
    m.iter().filter_map(|((s, d), revs)| known_at(revs, t).map(|(_, v)| vec![s.clone(), day(*d), num(v)])).collect()
}

fn first_release(m: &Model) -> Vec<Vec<String>> {
    m.iter().map(|((s, d), revs)| vec![s.clone(), day(*d), num(releases(revs)[0].1)]).collect()
}

fn all_revisions(m: &Model, series: &[&str]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for ((s, d), revs) in m.iter().filter(|((s, _), _)| series.contains(&s.as_str())) {
        let dates: Vec<i32> = revs.keys().copied().collect();
        for (k, (r, (v, _))) in revs.iter().enumerate() {
            let end = dates.get(k + 1).map_or(vintagelake_storage::scan::OPEN_END.days_since_epoch(), |n| n - 1);
            out.push(vec![s.clone(), day(*d), num(*v), day(*r), day(end)]);
        }
    }
    out
}

/// The JSON rows of an answer, every cell printed as the reference prints it.
fn cells(v: &serde_json::Value, what: &str) -> Vec<Vec<String>> {
    let rows = v.as_array().unwrap_or_else(|| panic!("{what}: {v}"));
    rows.iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| match c {
                    serde_json::Value::Null => num(None),
                    serde_json::Value::Number(n) => num(n.as_f64()),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Asks the ADBC client every question and checks each answer against the reference.
fn check_adbc(out: &serde_json::Value, m: &Model, one: &str, other: &str, vintage: i32, when: &str) {
    let filter = |rows: Vec<Vec<String>>, s: &str| rows.into_iter().filter(|r| r[0] == s).collect::<Vec<_>>();
    assert_eq!(cells(&out["latest_one"], "latest_one"), filter(latest(m), one), "{when}: latest of {one}");
    let star = &out["latest_star"];
    assert_eq!(cells(&star["rows"], "latest_star"), filter(latest(m), one), "{when}: SELECT * of {one}");
    assert_eq!(cells(&out["as_of"], "as_of"), as_of(m, vintage), "{when}: as_of");
    assert_eq!(cells(&out["first_release"], "first_release"), first_release(m), "{when}: first_release");
    assert_eq!(cells(&out["all_revisions"], "all_revisions"), all_revisions(m, &[one, other]), "{when}: all_revisions");
    let joined: Vec<Vec<String>> = filter(latest(m), other)
        .into_iter()
        .map(|r| vec![r[0].clone(), format!("Title of {}", r[0]), r[1].clone(), r[2].clone()])
        .collect();
    assert_eq!(cells(&out["join"], "join"), joined, "{when}: join with series");
    let mut aggregate: BTreeMap<String, (usize, usize, f64)> = BTreeMap::new();
    for r in latest(m) {
        let e = aggregate.entry(r[0].clone()).or_default();
        e.0 += 1;
        if r[2] != num(None) {
            e.1 += 1;
            e.2 += r[2].parse::<f64>().unwrap();
        }
    }
    let want: Vec<Vec<String>> = aggregate
        .into_iter()
        .map(|(s, (n, k, t))| vec![s, num(Some(n as f64)), num(Some(k as f64)), num((k > 0).then_some(t))])
        .collect();
    assert_eq!(cells(&out["aggregate"], "aggregate"), want, "{when}: aggregate across series");
    assert_eq!(cells(&out["prepared"], "prepared"), filter(first_release(m), other), "{when}: prepared");
    assert_eq!(cells(&out["prepared_again"], "prepared_again"), filter(first_release(m), one), "{when}: prepared");
    let pandas: Vec<Vec<String>> =
        cells(&out["pandas"], "pandas").into_iter().map(|r| vec![one.to_owned(), r[0].clone(), r[1].clone()]).collect();
    assert_eq!(pandas, filter(latest(m), one), "{when}: pandas");
}

/// The plan text of an EXPLAIN answer, and the files its scan plans: (planned, in the table).
fn explained(out: &serde_json::Value) -> (String, usize, usize) {
    let plan = cells(&out["explain"], "explain").into_iter().map(|r| r.join(": ")).collect::<Vec<_>>().join("\n");
    let files = plan.split("files=").nth(1).unwrap_or_else(|| panic!("no files in the plan:\n{plan}"));
    let (planned, total) = files.split_once('/').unwrap();
    let total: String = total.chars().take_while(char::is_ascii_digit).collect();
    (plan.clone(), planned.parse().unwrap(), total.parse().unwrap())
}

async fn python() -> std::path::PathBuf {
    tokio::task::spawn_blocking(pyiceberg_python).await.unwrap().expect("python environment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adbc_answers_sql_as_the_reference_and_the_flight_views_before_and_after_compaction() {
    // Small target files: compaction splits closed files by series range, so one series' scan
    // plans few of many files.
    let mut lake = Lake::start_with(&[("FLIGHT_TOKENS", "ops:t-ops")], Some(8 * 1024), "").await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5_91_5a);
    let arrivals = random_arrivals(&mut rng, 60);
    let mut seq = 0i64;
    for chunk in arrivals.chunks(300) {
        lake.store.append_points(&stored(chunk, seq), vec![], "ingest").await.unwrap();
        seq += chunk.len() as i64;
    }
    let ids: BTreeSet<&str> = arrivals.iter().map(|a| a.series.as_str()).collect();
    for id in &ids {
        let record = vintagelake_testkit::fixtures::series_record(id, &format!("Title of {id}"));
        lake.store.write_series(&record).await.unwrap();
    }
    let m = model(&arrivals);
    let (one, other) = ("C007S1", "C031S2");
    let vintage = 18_262 + 200;
    let python = python().await;
    let port = lake.port.to_string();
    let ask = || run_python(&python, ADBC_CLIENT, &[&port, "t-ops", one, other, &day(vintage)]).expect("ADBC client");

    let out: serde_json::Value = serde_json::from_str(ask().trim()).unwrap();
    // Metadata, as a client reads it on connect.
    let tables = &out["objects"]["vintagelake"]["public"];
    for table in ["latest", "first_release", "all_revisions", "data_points", "series"] {
        assert!(tables[table].as_array().is_some_and(|c| !c.is_empty()), "{table} listed with columns: {tables}");
    }
    assert!(tables["all_revisions"].as_array().unwrap().contains(&"realtime_end".into()));
    assert_eq!(out["table_types"], serde_json::json!(["TABLE", "VIEW"]));
    assert_eq!(out["latest_schema"][0], "id");
    check_adbc(&out, &m, one, other, vintage, "uncompacted");
    // SQL errors name what is wrong and where, as INVALID_ARGUMENT.
    let bad = out["bad_sql"]["error"].as_str().expect("bad SQL fails");
    assert!(bad.contains("INVALID_ARGUMENT") || bad.contains("InvalidArgument"), "{bad}");
    assert!(bad.contains("Line: 1, Column"), "the position: {bad}");
    let missing = out["no_table"]["error"].as_str().expect("an unknown table fails");
    assert!(missing.contains("nowhere"), "{missing}");

    // The same rows through a plain Flight ticket (the view the SQL table reads).
    let (columns, flight) = flight_latest(lake.port, one).await;
    assert_eq!(flight, cells(&out["latest_one"], "latest_one"), "SQL and the Flight view agree");
    assert_eq!(out["latest_star"]["columns"], serde_json::json!(columns), "SELECT * has the view's columns");

    lake.run(&["compact", "--once"]);
    lake.query.assert_alive();
    let out: serde_json::Value = serde_json::from_str(ask().trim()).unwrap();
    check_adbc(&out, &m, one, other, vintage, "after compaction");
    let (plan, planned, total) = explained(&out);
    eprintln!("EXPLAIN of one series after compaction:\n{plan}");
    assert!(plan.contains(&format!("series=[{one}]")), "the series predicate reaches the scan:\n{plan}");
    assert!(total > 4, "a multi-file table after compaction: {total} files\n{plan}");
    assert_eq!(planned, 1, "the scan plans 1 of the {total} files:\n{plan}");
    lake.query.assert_alive();
}

/// The latest view of one series through a Flight ticket: its columns, and (series, date, value) rows.
async fn flight_latest(port: u16, series: &str) -> (Vec<String>, Vec<Vec<String>>) {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Float64Type};
    use futures::TryStreamExt;
    let channel = crate::support::flight_channel(port).await;
    let mut client = arrow_flight::FlightClient::new(channel);
    client.add_header("authorization", "Bearer t-ops").unwrap();
    let ticket = vintagelake_query::ticket::TicketV1::for_series(
        &series.parse().unwrap(),
        vintagelake_storage::scan::View::Latest,
    )
    .to_bytes();
    let batches: Vec<arrow::array::RecordBatch> =
        client.do_get(arrow_flight::Ticket::new(ticket)).await.unwrap().try_collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let (ids, dates) = (
            b.column_by_name("series_id").unwrap().as_string::<i32>(),
            b.column_by_name("date").unwrap().as_primitive::<Date32Type>(),
        );
        let values = b.column_by_name("value").unwrap().as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push(vec![
                ids.value(i).to_owned(),
                day(dates.value(i)),
                num(values.is_valid(i).then(|| values.value(i))),
            ]);
        }
    }
    out.sort();
    let columns =
        batches.first().map(|b| b.schema().fields().iter().map(|f| f.name().clone()).collect()).unwrap_or_default();
    (columns, out)
}

/// What a Flight SQL RPC answered: ok, or the gRPC code.
fn outcome<T>(r: Result<T, arrow_flight::error::FlightError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(arrow_flight::error::FlightError::Tonic(status)) => format!("{:?}", status.code()),
        Err(e) => {
            let text = e.to_string();
            for code in ["Unauthenticated", "NotFound", "InvalidArgument", "Unimplemented", "PermissionDenied"] {
                if text.contains(code) {
                    return code.to_owned();
                }
            }
            text
        }
    }
}

/// Every Flight SQL RPC a client can make, each as the client library makes it: ok or the code.
async fn walk_flight_sql(port: u16, token: Option<&str>) -> BTreeMap<&'static str, String> {
    use arrow_flight::sql::{
        CommandGetCatalogs, CommandGetDbSchemas, CommandGetPrimaryKeys, CommandGetTableTypes, CommandGetTables,
        CommandGetXdbcTypeInfo, CommandStatementQuery, ProstMessageExt, SqlInfo,
    };
    use futures::TryStreamExt;
    use prost::Message;
    let channel = crate::support::flight_channel(port).await;
    let mut c = FlightSqlServiceClient::new(channel);
    if let Some(t) = token {
        c.set_token(t.to_owned());
    }
    let mut out = BTreeMap::new();
    // A ticket made by the service (with a valid token) for the DoGet of a statement.
    let statement_ticket = {
        let channel = crate::support::flight_channel(port).await;
        let mut ok = FlightSqlServiceClient::new(channel);
        ok.set_token("t-ops".into());
        let info = ok.execute("SELECT series_id FROM latest".into(), None).await.unwrap();
        info.endpoint[0].ticket.clone().unwrap()
    };
    out.insert("GetFlightInfo(CommandStatementQuery)", outcome(c.execute("SELECT 1".into(), None).await));
    out.insert(
        "DoGet(TicketStatementQuery)",
        outcome(match c.do_get(statement_ticket).await {
            Ok(s) => s.try_collect::<Vec<_>>().await,
            Err(e) => Err(e),
        }),
    );
    out.insert("GetFlightInfo(CommandGetCatalogs)", outcome(c.get_catalogs().await));
    out.insert(
        "GetFlightInfo(CommandGetDbSchemas)",
        outcome(c.get_db_schemas(CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: None }).await),
    );
    let tables = CommandGetTables {
        catalog: None,
        db_schema_filter_pattern: None,
        table_name_filter_pattern: None,
        table_types: vec![],
        include_schema: true,
    };
    out.insert("GetFlightInfo(CommandGetTables)", outcome(c.get_tables(tables.clone()).await));
    out.insert("GetFlightInfo(CommandGetTableTypes)", outcome(c.get_table_types().await));
    out.insert("GetFlightInfo(CommandGetSqlInfo)", outcome(c.get_sql_info(vec![SqlInfo::FlightSqlServerName]).await));
    let keys = CommandGetPrimaryKeys { catalog: None, db_schema: None, table: "latest".into() };
    out.insert("GetFlightInfo(CommandGetPrimaryKeys)", outcome(c.get_primary_keys(keys.clone()).await));
    out.insert(
        "GetFlightInfo(CommandGetXdbcTypeInfo)",
        outcome(c.get_xdbc_type_info(CommandGetXdbcTypeInfo { data_type: None }).await),
    );
    // DoGet of every metadata command (the ticket is the command).
    let commands: Vec<(&'static str, Vec<u8>)> = vec![
        ("DoGet(CommandGetCatalogs)", CommandGetCatalogs {}.as_any().encode_to_vec()),
        (
            "DoGet(CommandGetDbSchemas)",
            CommandGetDbSchemas { catalog: None, db_schema_filter_pattern: None }.as_any().encode_to_vec(),
        ),
        ("DoGet(CommandGetTables)", tables.as_any().encode_to_vec()),
        ("DoGet(CommandGetTableTypes)", CommandGetTableTypes {}.as_any().encode_to_vec()),
        ("DoGet(CommandGetPrimaryKeys)", keys.as_any().encode_to_vec()),
        (
            "DoGet(CommandStatementQuery)",
            CommandStatementQuery { query: "SELECT 1".into(), transaction_id: None }.as_any().encode_to_vec(),
        ),
    ];
    for (name, ticket) in commands {
        let r = match c.do_get(arrow_flight::Ticket::new(ticket)).await {
            Ok(s) => s.try_collect::<Vec<_>>().await,
            Err(e) => Err(e),
        };
        out.insert(name, outcome(r));
    }
    // Prepared statements: create (an action), bind parameters (DoPut), describe, read, close.
    match c.prepare("SELECT date, value FROM latest WHERE series_id = $1".into(), None).await {
        Ok(mut prepared) => {
            out.insert("DoAction(CreatePreparedStatement)", "ok".into());
            let params = arrow::array::RecordBatch::try_from_iter([(
                "$1",
                std::sync::Arc::new(arrow::array::StringArray::from(vec!["C007S1"])) as arrow::array::ArrayRef,
            )])
            .unwrap();
            out.insert("DoPut(CommandPreparedStatementQuery)", outcome(prepared.set_parameters(params)));
            match prepared.execute().await {
                Ok(info) => {
                    out.insert("GetFlightInfo(CommandPreparedStatementQuery)", "ok".into());
                    let ticket = info.endpoint[0].ticket.clone().unwrap();
                    let r = match c.do_get(ticket).await {
                        Ok(s) => s.try_collect::<Vec<_>>().await,
                        Err(e) => Err(e),
                    };
                    out.insert("DoGet(CommandPreparedStatementQuery)", outcome(r));
                }
                Err(e) => {
                    out.insert("GetFlightInfo(CommandPreparedStatementQuery)", outcome::<()>(Err(e)));
                }
            }
            out.insert("DoAction(ClosePreparedStatement)", outcome(prepared.close().await));
        }
        Err(e) => {
            out.insert("DoAction(CreatePreparedStatement)", outcome::<()>(Err(e)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_flight_sql_rpc_needs_a_valid_token_and_grants_hide_other_series() {
    let grants =
        "security:\n  grants:\n    analyst: { series: [\"C007*\"] }\n    ops: { series: [\"*\"], admin: true }\n";
    let mut lake = Lake::start_with(
        &[("FLIGHT_TOKENS", "ops:t-ops,analyst:t-analyst"), ("FLIGHT_USERS", "ana:pw"), ("FLIGHT_TOKEN_TTL", "2s")],
        None,
        grants,
    )
    .await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let arrivals = random_arrivals(&mut rng, 10);
    lake.store.append_points(&stored(&arrivals, 0), vec![], "ingest").await.unwrap();
    for id in arrivals.iter().map(|a| a.series.as_str()).collect::<BTreeSet<_>>() {
        lake.store.write_series(&vintagelake_testkit::fixtures::series_record(id, id)).await.unwrap();
    }

    let valid = walk_flight_sql(lake.port, Some("t-ops")).await;
    assert!(valid.len() >= 20, "every RPC walked: {valid:#?}");
    for (rpc, result) in &valid {
        // The protocol's optional type-info command is not offered, and a statement is not a DoGet
        // ticket (its FlightInfo hands out one); everything else answers.
        let expected =
            if rpc.contains("XdbcTypeInfo") || *rpc == "DoGet(CommandStatementQuery)" { "Unimplemented" } else { "ok" };
        assert_eq!(result, expected, "valid token, {rpc}");
    }
    // A handshake token (user and password, as ADBC's username/password options log in) that
    // has outlived FLIGHT_TOKEN_TTL.
    let expired = {
        let channel = crate::support::flight_channel(lake.port).await;
        let mut c = FlightSqlServiceClient::new(channel);
        let issued = String::from_utf8(c.handshake("ana", "pw").await.unwrap().to_vec()).unwrap();
        assert!(!issued.is_empty(), "the handshake issues a token");
        assert_eq!(outcome(c.get_catalogs().await), "ok", "the handshake token works while it is fresh");
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        issued
    };
    for (label, token) in
        [("no token", None), ("a wrong token", Some("t-wrong")), ("an expired token", Some(expired.as_str()))]
    {
        let refused = walk_flight_sql(lake.port, token).await;
        assert_eq!(
            refused.keys().collect::<Vec<_>>().len(),
            valid.len() - 4,
            "{label}: the prepared steps stop at create"
        );
        for (rpc, result) in &refused {
            assert_eq!(result, "Unauthenticated", "{label}, {rpc}");
        }
    }

    // Grants: the analyst's SQL sees its series only, in every table; others are absent.
    let channel = crate::support::flight_channel(lake.port).await;
    let sql = |token: &'static str, statement: &'static str| {
        let channel = channel.clone();
        async move {
            use futures::TryStreamExt;
            let mut c = FlightSqlServiceClient::new(channel);
            c.set_token(token.into());
            let info = c.execute(statement.into(), None).await.unwrap();
            let batches: Vec<arrow::array::RecordBatch> =
                c.do_get(info.endpoint[0].ticket.clone().unwrap()).await.unwrap().try_collect().await.unwrap();
            let mut names = BTreeSet::new();
            for b in &batches {
                use arrow::array::AsArray;
                names.extend(b.column(0).as_string::<i32>().iter().flatten().map(str::to_owned));
            }
            names
        }
    };
    let everyone: BTreeSet<String> = arrivals.iter().map(|a| a.series.clone()).collect();
    let mine: BTreeSet<String> = everyone.iter().filter(|s| s.starts_with("C007")).cloned().collect();
    assert!(!mine.is_empty() && mine.len() < everyone.len());
    for statement in [
        "SELECT DISTINCT series_id FROM all_revisions",
        "SELECT DISTINCT series_id FROM data_points",
        "SELECT id FROM series",
        "SELECT DISTINCT series_id FROM as_of('2030-01-01')",
    ] {
        assert_eq!(sql("t-ops", statement).await, everyone, "ops: {statement}");
        assert_eq!(sql("t-analyst", statement).await, mine, "analyst: {statement}");
    }
    assert!(
        sql("t-analyst", "SELECT series_id FROM latest WHERE series_id = 'C001S0'").await.is_empty(),
        "another series is absent, not an error"
    );
    // Every statement is in the access audit: who, the SQL, the rows, the outcome.
    let audit = std::fs::read_to_string(lake._dir.path().join("data").join(vintagelake_runtime::audit::AuditLog::FILE))
        .unwrap_or_default();
    let sql_entries: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["detail"]["rpc"] == "sql")
        .collect();
    assert!(
        sql_entries.iter().any(|e| e["actor"] == "analyst" && e["outcome"] == "ok"),
        "the analyst's statements are audited: {sql_entries:?}"
    );
    lake.query.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_statement_over_its_limits_fails_and_the_service_goes_on() {
    let mut lake = Lake::start_with(&[("SQL_MEMORY_LIMIT_MB", "4"), ("SQL_TIMEOUT", "3s")], None, "").await;
    let rows = vintagelake_testkit::fixtures::grid("S", 0..200, 400, 3);
    lake.store.append_points(&rows, vec![], "backfill").await.unwrap();
    let run = |statement: &str| {
        Command::new(env!("CARGO_BIN_EXE_vintagelake"))
            .args(["sql", statement, "--format", "csv", "--flight-url", &format!("http://127.0.0.1:{}", lake.port)])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A sort of every revision's text needs far more than 4 MiB.
    let big = run(
        "SELECT series_id || CAST(date AS VARCHAR) || CAST(value AS VARCHAR) AS k FROM all_revisions ORDER BY k DESC",
    );
    let err = String::from_utf8_lossy(&big.stderr);
    assert!(!big.status.success(), "over the memory limit fails");
    assert!(err.to_lowercase().contains("resources exhausted"), "{err}");
    // A cross join that would run for minutes ends at the deadline.
    let slow = run("SELECT COUNT(*) FROM data_points a, data_points b WHERE a.value + b.value < -1e9");
    let err = String::from_utf8_lossy(&slow.stderr);
    assert!(!slow.status.success(), "over the time limit fails");
    assert!(err.contains("longer than its limit of 3s"), "{err}");
    lake.query.assert_alive();
    // The service answers the next statement, through `vintagelake sql` in every format.
    let ok = run(
        "SELECT series_id, COUNT(*) AS n FROM latest WHERE series_id IN ('S00001', 'S00002') GROUP BY series_id ORDER BY series_id",
    );
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "series_id,n\nS00001,400\nS00002,400\n");
    // An interactive session: statements from standard input, an error does not end it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vintagelake"))
        .args(["sql", "--format", "json", "--flight-url", &format!("http://127.0.0.1:{}", lake.port)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(
                b"SELECT COUNT(*) AS n FROM latest\n  WHERE series_id = 'S00003';\nSELECT nonsense FROM;\nSELECT 'a;b' AS s;\n",
            )
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout, "[{\"n\":400}]\n[{\"s\":\"a;b\"}]\n", "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"), "the bad statement is reported");
    assert!(!out.status.success(), "a session with a failed statement exits non-zero");
}
