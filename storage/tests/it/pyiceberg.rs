//! The pyiceberg fixture provisions a working pyiceberg with its SQLite catalog.

use vintagelake_storage::tools::{pyiceberg_python, run_python};

#[test]
fn pyiceberg_fixture_gives_a_working_sql_catalog() {
    let python = pyiceberg_python().expect("pyiceberg environment");
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
import sys, pyiceberg, pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
warehouse = sys.argv[1]
cat = SqlCatalog("check", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
cat.create_namespace("ns")
t = cat.create_table("ns.t", schema=pa.schema([("x", pa.int64())]))
t.append(pa.table({"x": [1, 2, 3]}))
print(pyiceberg.__version__, len(cat.load_table("ns.t").scan().to_arrow()))
"#;
    let out = run_python(&python, script, &[dir.path().to_str().unwrap()]).expect("script runs");
    assert_eq!(out.trim(), "0.12.0 3");
}
