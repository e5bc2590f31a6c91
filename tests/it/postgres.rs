//! A real PostgreSQL server for tests (Debian's `postgresql` package): a fresh cluster in a temp
//! directory on a free loopback port, stopped when dropped. As root the server runs as the
//! `postgres` user (it refuses root). `deploy/local/test.sh` installs the package where missing.
//!
//! [`FaultyProxy`] sits between a client and that server and loses the replies of chosen catalog
//! swaps: the UPDATE reaches the server and commits, then the connection is closed before the
//! reply gets back — what a dropped network connection does to a commit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::free_port;

/// The directory of the newest installed PostgreSQL's binaries.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_root: bool,
}

impl Postgres {
    /// Starts a new cluster; panics (naming what to install) when PostgreSQL is not there.
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// A cluster that accepts TCP connections over TLS only, with `certs`' server certificate.
    pub fn start_tls(certs: &vintagelake_testkit::tools::TestCerts) -> Postgres {
        Self::start_with(Some((&certs.server_cert(), &certs.server_key())))
    }

    fn start_with(tls: Option<(&std::path::Path, &std::path::Path)>) -> Postgres {
        let bin = bin_dir().expect(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `apt-get install postgresql`, \
             or run deploy/local/test.sh, which installs it",
        );
        let dir = tempfile::Builder::new().prefix("vintagelake-pg").tempdir().unwrap();
        let as_root = is_root();
        if as_root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(dir.path()).status().unwrap();
            assert!(ok.success(), "chown of the cluster directory to postgres");
        }
        let pg = Postgres { port: free_port(), dir, bin, as_root };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "vintagelake", "-A", "trust", "-E", "UTF8", "--no-sync"],
        );
        let mut opts = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off -c max_connections=200",
            pg.port,
            pg.dir.path().display()
        );
        if let Some((cert_file, key_file)) = tls {
            // The key where the server (as `postgres`) may read it, private as it insists.
            let (cert, key) = (pg.dir.path().join("server.pem"), pg.dir.path().join("server.key"));
            std::fs::copy(cert_file, &cert).unwrap();
            std::fs::copy(key_file, &key).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            if pg.as_root {
                let ok = Command::new("chown").args(["postgres:postgres"]).arg(&cert).arg(&key).status().unwrap();
                assert!(ok.success());
            }
            // TCP connections must use TLS: no `host` line, only `hostssl`.
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
                .unwrap();
            opts.push_str(&format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display()));
        }
        let log = pg.dir.path().join("server.log");
        pg.run("pg_ctl", &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "start"]);
        pg.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "vintagelake",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE catalog",
            ],
        );
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let out = if self.as_root {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).current_dir("/").output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("running {}: {e}", exe.display()));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `postgres://…` for the catalog database at `port` (the server's, or a proxy's).
    pub fn url_via(port: u16) -> String {
        format!("postgres://vintagelake@127.0.0.1:{port}/catalog?sslmode=disable")
    }

    pub fn url(&self) -> String {
        Self::url_via(self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let exe = self.bin.join("pg_ctl");
        let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_root {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&exe).args(args).current_dir("/").output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}

/// The Postgres catalog over TLS with a CA of the deployment's own: the server is verified
/// (`sslmode=verify-full`, `sslrootcert`), every catalog operation and commit works over it, a
/// plain connection is refused by the server, and a server the configured CA did not sign is
/// refused by us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_catalog_over_tls_verifies_the_server_with_a_custom_ca() {
    use vintagelake_storage::catalog::{Warehouse, WarehouseConfig};
    use vintagelake_storage::store::IcebergStore;
    use vintagelake_testkit::fixtures::{check_views, write_fixture};

    let certs = vintagelake_testkit::tools::TestCerts::new().expect("openssl makes the test certificates");
    let pg = Postgres::start_tls(&certs);
    let url = |params: &str| format!("postgres://vintagelake@127.0.0.1:{}/catalog?{params}", pg.port);
    let ca = certs.ca();
    let dir = tempfile::tempdir().unwrap();
    let verified = url(&format!("sslmode=verify-full&sslrootcert={}", ca.display()));
    let wh = Warehouse::open(WarehouseConfig::new(dir.path().join("a")).with_catalog_url(&verified)).await.unwrap();
    let store = IcebergStore::new(wh.clone());
    write_fixture(&store).await;
    check_views(&store, "Postgres catalog over TLS").await;

    // File read counts (access-aware tiering) live in the same database: added up, carried to a
    // moved file's new location, halved.
    use vintagelake_storage::catalog::TableKind;
    for path in ["s3://a/one.parquet", "s3://a/one.parquet", "s3://a/two.parquet"] {
        wh.record_read(TableKind::DataPoints, path);
    }
    wh.flush_reads().await.unwrap();
    wh.record_read(TableKind::DataPoints, "s3://a/one.parquet");
    wh.flush_reads().await.unwrap();
    wh.carry_reads(TableKind::DataPoints, "s3://a/one.parquet", "s3://b/one.parquet").await.unwrap();
    let counts = wh.file_reads(TableKind::DataPoints).await.unwrap();
    assert_eq!(counts.get("s3://b/one.parquet"), Some(&3), "{counts:?}");
    assert_eq!(counts.get("s3://a/two.parquet"), Some(&1), "{counts:?}");
    wh.decay_reads(TableKind::DataPoints).await.unwrap();
    let counts = wh.file_reads(TableKind::DataPoints).await.unwrap();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("s3://b/one.parquet".to_owned(), 1)],
        "halved; none left forgotten"
    );

    // The server takes no plain connection.
    let plain = Warehouse::open(WarehouseConfig::new(dir.path().join("b")).with_catalog_url(url("sslmode=disable")))
        .await
        .unwrap_err()
        .to_string();
    assert!(plain.contains("pg_hba.conf") && plain.contains("no encryption"), "{plain}");
    // A CA that did not sign the server's certificate: we refuse the server.
    let other = url(&format!("sslmode=verify-full&sslrootcert={}", certs.another_ca("other").unwrap().display()));
    let refused = Warehouse::open(WarehouseConfig::new(dir.path().join("c")).with_catalog_url(&other))
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.to_lowercase().contains("certificate") || refused.contains("UnknownIssuer"), "{refused}");
}

/// What the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub swaps_seen: AtomicU64,
    pub replies_lost: AtomicU64,
    pub outages: AtomicU64,
    pub refused: AtomicU64,
}

/// A TCP proxy to PostgreSQL that loses the replies of catalog swaps on purpose.
pub struct FaultyProxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
    armed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Fault plan: every `lose_every`-th swap loses its reply; every `outage_every`-th lost reply is
/// followed by an outage of `outage` (every connection cut and refused), so the re-read after the
/// lost reply cannot reach the catalog either.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub lose_every: u64,
    pub outage_every: u64,
    pub outage: Duration,
}

impl FaultyProxy {
    /// Starts forwarding to `127.0.0.1:target`; faults start once [`Self::arm`] is called.
    pub async fn start(target: u16, faults: Faults) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(ProxyStats::default());
        let armed = Arc::new(AtomicBool::new(false));
        let down_until = Arc::new(std::sync::Mutex::new(None::<Instant>));
        let (s, a) = (stats.clone(), armed.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                if down_until.lock().unwrap().is_some_and(|t| Instant::now() < t) {
                    s.refused.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                let conn = Conn { stats: s.clone(), armed: a.clone(), down_until: down_until.clone(), faults };
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await {
                        conn.pump(client, server).await;
                    }
                });
            }
        });
        FaultyProxy { port, stats, armed, task }
    }

    pub fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        Postgres::url_via(self.port)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Conn {
    stats: Arc<ProxyStats>,
    armed: Arc<AtomicBool>,
    down_until: Arc<std::sync::Mutex<Option<Instant>>>,
    faults: Faults,
}

impl Conn {
    async fn pump(self, mut client: TcpStream, mut server: TcpStream) {
        let (mut cbuf, mut sbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
        loop {
            tokio::select! {
                n = client.read(&mut cbuf) => {
                    let Ok(n @ 1..) = n else { return };
                    if self.down_until.lock().unwrap().is_some_and(|t| Instant::now() < t) {
                        return; // the outage cuts connections already open too
                    }
                    let chunk = &cbuf[..n];
                    if server.write_all(chunk).await.is_err() {
                        return;
                    }
                    // Only our compare-and-swap binds metadata file names on the way in.
                    if contains(chunk, b".metadata.json") {
                        let seen = self.stats.swaps_seen.fetch_add(1, Ordering::Relaxed) + 1;
                        if self.armed.load(Ordering::SeqCst) && seen.is_multiple_of(self.faults.lose_every) {
                            // Let the server execute and commit it; read its reply and drop it.
                            let _ = tokio::time::timeout(Duration::from_secs(5), until_ready(&mut server, &mut sbuf)).await;
                            let lost = self.stats.replies_lost.fetch_add(1, Ordering::Relaxed) + 1;
                            if lost.is_multiple_of(self.faults.outage_every) {
                                self.stats.outages.fetch_add(1, Ordering::Relaxed);
                                *self.down_until.lock().unwrap() = Some(Instant::now() + self.faults.outage);
                            }
                            return; // both sockets close here, the reply never arrives
                        }
                    }
                }
                n = server.read(&mut sbuf) => {
                    let Ok(n @ 1..) = n else { return };
                    if client.write_all(&sbuf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads the server's reply up to its ReadyForQuery message ('Z', length 5).
async fn until_ready(server: &mut TcpStream, buf: &mut [u8]) {
    let mut seen = Vec::new();
    while let Ok(n @ 1..) = server.read(buf).await {
        seen.extend_from_slice(&buf[..n]);
        if contains(&seen, b"Z\0\0\0\x05") {
            return;
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
