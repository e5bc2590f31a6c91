//! External tools the project provisions for itself (cached per user): the pyiceberg
//! environment that tests and benchmarks use to read our tables with an engine nobody here wrote.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The pinned pyiceberg: the SQL catalog (SQLite), the pyarrow reader, and pyiceberg-core (its
/// partition transforms, which appends to a partitioned table need).
pub const PYICEBERG_REQUIREMENT: &str = "pyiceberg[sql-sqlite,pyarrow,pyiceberg-core]==0.12.0";
/// Extra packages for checks and comparisons (S3 server for the archive tier, pandas, the ADBC
/// Flight SQL driver).
pub const PY_EXTRA_REQUIREMENTS: &[&str] = &[
    "moto[server]==5.2.5",
    "pandas==3.1.1",
    "duckdb==2.0.1",
    "confluent-kafka==2.16.1",
    "adbc-driver-manager==1.13.0",
    "adbc-driver-flightsql==1.13.0",
];

pub use vintagelake_runtime::cache::{cache_dir, system_python};

/// Path of a Python interpreter with pyiceberg installed, creating the virtual environment on
/// first use. Blocking; safe to call from many tests and processes at once (a file lock
/// serialises the install, a marker file records a complete one).
pub fn pyiceberg_python() -> io::Result<PathBuf> {
    let mut requirements = vec![PYICEBERG_REQUIREMENT];
    requirements.extend_from_slice(PY_EXTRA_REQUIREMENTS);
    python_env("pyiceberg-0.12.0", &requirements)
}

/// Python that opens our warehouse (`warehouse`, a data directory set before it) with pyiceberg
/// as `t` and makes the `data_points` table's live Parquet files a DuckDB view `dp` on `con`:
/// how benchmarks put DuckDB's SQL over the same files we read. Prepend it to a script.
pub const DUCKDB_OVER_DATA_POINTS: &str = r#"
import duckdb
from pyiceberg.catalog.sql import SqlCatalog
cat = SqlCatalog("vintagelake", uri=f"sqlite:///{warehouse}/catalog.sqlite", warehouse=f"file://{warehouse}/warehouse")
t = cat.load_table("econ.data_points")
files = [task.file.file_path.removeprefix("file://") for task in t.scan().plan_files()]
con = duckdb.connect()
listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
con.execute(f"CREATE VIEW dp AS SELECT * FROM read_parquet([{listed}])")
"#;

/// DuckDB with its own Iceberg reader, installed offline from PyPI (`duckdb-extension-iceberg`,
/// `duckdb-extension-avro`; a script loads the `.duckdb_extension` files with
/// `allow_unsigned_extensions`). The extensions are built for DuckDB 1.5.5, hence their own
/// environment.
pub fn duckdb_iceberg_python() -> io::Result<PathBuf> {
    python_env(
        "duckdb-iceberg-1.5.5",
        &["duckdb==1.5.5", "duckdb-extension-iceberg==1.5.5", "duckdb-extension-avro==1.5.5"],
    )
}

/// Python that opens DuckDB as `con` with its Iceberg and Avro extensions loaded from the
/// [`duckdb_iceberg_python`] environment (offline, unsigned). Prepend it to a script.
pub const DUCKDB_ICEBERG_PRELUDE: &str = r#"
import sys, glob, os, duckdb
import duckdb_extension_avro, duckdb_extension_iceberg
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute("SET enable_progress_bar = false")
for pkg in (duckdb_extension_avro, duckdb_extension_iceberg):
    for f in glob.glob(os.path.join(os.path.dirname(pkg.__file__), "**", "*.duckdb_extension"), recursive=True):
        con.execute(f"LOAD '{f}'")
"#;

/// A cached virtual environment with `requirements` installed; returns its interpreter.
pub fn python_env(name: &str, requirements: &[&str]) -> io::Result<PathBuf> {
    let root = cache_dir();
    std::fs::create_dir_all(&root)?;
    let venv = root.join(format!("venv-{name}"));
    let python = venv.join("bin").join("python");
    let marker = venv.join(".vintagelake-complete");
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    let lock = File::create(root.join(format!("venv-{name}.lock")))?;
    lock.lock()?;
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv)?;
    }
    run(Command::new(system_python()).args(["-m", "venv"]).arg(&venv), "create the virtual environment")?;
    run(
        Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
            .args(requirements),
        &format!("pip install {}", requirements.join(" ")),
    )?;
    std::fs::write(&marker, wanted)?;
    Ok(python)
}

fn run(cmd: &mut Command, what: &str) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "could not {what} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Runs a Python script with the pyiceberg interpreter and returns its standard output; a
/// non-zero exit is an error carrying standard error.
pub fn run_python(python: &Path, script: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(python).arg("-c").arg(script).args(args).stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "python script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(io::Error::other)
}

/// A real S3-compatible server on loopback (moto's server mode) with one bucket, stopped on drop.
#[derive(Debug)]
pub struct S3Server {
    child: std::process::Child,
    endpoint: String,
    bucket: String,
    /// The CA that signed the server's certificate, when it serves HTTPS.
    ca_file: Option<PathBuf>,
}

/// Static credentials the test server accepts.
pub const S3_TEST_KEY: &str = "vintagelake-test";
pub const S3_TEST_SECRET: &str = "vintagelake-test-secret";

impl S3Server {
    /// Starts the server on a free port and creates `bucket`. Blocking.
    pub fn start(bucket: &str) -> io::Result<Self> {
        Self::start_with(bucket, None)
    }

    /// The same over HTTPS: `tls` = (certificate, key, the CA that signed the certificate).
    pub fn start_tls(bucket: &str, cert: &Path, key: &Path, ca: &Path) -> io::Result<Self> {
        Self::start_with(bucket, Some((cert, key, ca)))
    }

    fn start_with(bucket: &str, tls: Option<(&Path, &Path, &Path)>) -> io::Result<Self> {
        let python = pyiceberg_python()?;
        let bin = python.with_file_name("moto_server");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut command = Command::new(&bin);
        command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((cert, key, _)) = tls {
            command.arg("-c").arg(cert).arg("-k").arg(key);
        }
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut server = Self {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            bucket: bucket.to_owned(),
            ca_file: tls.map(|(_, _, ca)| ca.to_owned()),
        };
        let script = r#"
import sys, time, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[3],
                  aws_secret_access_key=sys.argv[4], region_name="us-east-1", verify=sys.argv[5] or None)
for _ in range(150):
    try:
        s3.create_bucket(Bucket=sys.argv[2]); break
    except Exception as e:
        last = e; time.sleep(0.1)
else:
    raise SystemExit(f"S3 server did not start: {last}")
"#;
        let verify = server.verify();
        if let Err(e) = run_python(&python, script, &[&server.endpoint, bucket, S3_TEST_KEY, S3_TEST_SECRET, &verify]) {
            let _ = server.child.kill();
            return Err(e);
        }
        Ok(server)
    }

    /// A tier named `name` in this server's bucket under `prefix`, with the test credentials.
    pub fn tier(&self, name: &str, prefix: &str) -> vintagelake_storage::io::TierSpec {
        vintagelake_storage::io::TierSpec {
            name: vintagelake_storage::config::TierName::new(name),
            target: vintagelake_storage::io::TierTarget::S3 {
                bucket: self.bucket.clone(),
                prefix: prefix.to_owned(),
                endpoint: Some(self.endpoint.clone()),
                region: Some("us-east-1".into()),
                access_key_id: Some(S3_TEST_KEY.into()),
                secret_access_key: Some(S3_TEST_SECRET.into()),
                ca_file: self.ca_file.clone(),
                server_side_encryption: None,
                sse_kms_key_id: None,
            },
            zstd_level: None,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The CA file boto3 verifies the server with (empty: the default).
    fn verify(&self) -> String {
        self.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
    }

    /// Lists the keys in the bucket (through boto3, an independent client).
    pub fn list_keys(&self) -> io::Result<Vec<String>> {
        Ok(self.objects()?.into_iter().map(|(key, _)| key).collect())
    }

    /// Every object in the bucket with its server-side encryption as the server reports it
    /// (`None`: stored unencrypted), through boto3.
    pub fn objects(&self) -> io::Result<Vec<(String, Option<String>)>> {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[3],
                  aws_secret_access_key=sys.argv[4], region_name="us-east-1", verify=sys.argv[5] or None)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        head = s3.head_object(Bucket=sys.argv[2], Key=o["Key"])
        print(o["Key"] + "\t" + head.get("ServerSideEncryption", ""))
"#;
        let verify = self.verify();
        let out = run_python(
            &pyiceberg_python()?,
            script,
            &[&self.endpoint, &self.bucket, S3_TEST_KEY, S3_TEST_SECRET, &verify],
        )?;
        Ok(out
            .lines()
            .map(|l| {
                let (key, sse) = l.split_once('\t').unwrap_or((l, ""));
                (key.to_owned(), (!sse.is_empty()).then(|| sse.to_owned()))
            })
            .collect())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates for TLS tests, made with the `openssl` command in a directory of their own: a CA
/// (`ca.pem`) and a server certificate for 127.0.0.1 / localhost signed by it (`server.pem`,
/// `server.key`). [`TestCerts::another_ca`] makes a CA that signed nothing.
#[derive(Debug)]
pub struct TestCerts {
    pub dir: tempfile::TempDir,
}

impl TestCerts {
    pub fn new() -> io::Result<Self> {
        let certs = Self { dir: tempfile::Builder::new().prefix("vintagelake-tls").tempdir()? };
        certs.make_ca("ca")?;
        certs.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ])?;
        std::fs::write(
            certs.dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )?;
        certs.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ])?;
        Ok(certs)
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.path().join("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// A CA certificate that signed nothing here (`<name>.pem`).
    pub fn another_ca(&self, name: &str) -> io::Result<PathBuf> {
        self.make_ca(name)?;
        Ok(self.dir.path().join(format!("{name}.pem")))
    }

    fn make_ca(&self, name: &str) -> io::Result<()> {
        let (key, pem, subject) =
            (format!("{name}.key"), format!("{name}.pem"), format!("/CN=vintagelake test {name}"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])
    }

    fn openssl(&self, args: &[&str]) -> io::Result<()> {
        let out = Command::new("openssl").args(args).current_dir(self.dir.path()).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr))))
        }
    }
}
