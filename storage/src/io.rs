//! iceberg's `Storage` over object_store, routed by tier: one FileIO reads and writes files in
//! `file://` directories and `s3://` buckets alike, so one table can hold files in several tiers.
//!
//! Unlike the crate's local-filesystem storage, every call goes through object_store, which keeps
//! blocking file I/O off the async worker threads and writes local files atomically (temp + rename).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use iceberg::{Error as IcebergError, ErrorKind};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::config::{TierConfig, TierKind, TierName};
use crate::error::{Result, StorageError};

/// Where one tier keeps its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSpec {
    pub name: TierName,
    pub target: TierTarget,
    /// zstd level of the files this tier holds (`None`: the default for how they were written).
    #[serde(default)]
    pub zstd_level: Option<i32>,
}

/// A directory, or a bucket (and key prefix) on an S3-compatible service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TierTarget {
    Local {
        dir: PathBuf,
    },
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
        /// Static credentials; when absent, the standard `AWS_*` environment variables are used.
        /// Never serialised.
        #[serde(skip_serializing, default)]
        access_key_id: Option<String>,
        #[serde(skip_serializing, default)]
        secret_access_key: Option<String>,
        /// CA certificates (PEM file) to trust for the endpoint, besides the system's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_file: Option<PathBuf>,
        /// Server-side encryption of written objects (`AES256`, `aws:kms`, `aws:kms:dsse`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_side_encryption: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sse_kms_key_id: Option<String>,
    },
}

impl TierSpec {
    pub fn local(name: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        Self { name: TierName::new(name), target: TierTarget::Local { dir: dir.into() }, zstd_level: None }
    }

    /// This tier with its files compressed at zstd `level`.
    pub fn with_zstd_level(mut self, level: i32) -> Self {
        self.zstd_level = Some(level);
        self
    }

    /// From the config file's tier entry; relative directories are taken from the working directory.
    pub fn from_config(t: &TierConfig) -> Result<Self> {
        let invalid = |(field, reason): (&str, String)| StorageError::Tier {
            tier: t.name.clone(),
            reason: format!("{field}: {reason}"),
        };
        t.validate().map_err(invalid)?;
        let target = match (t.kind, &t.bucket, &t.path) {
            (TierKind::S3, Some(bucket), _) => TierTarget::S3 {
                bucket: bucket.clone(),
                prefix: t.prefix.clone().unwrap_or_default().trim_matches('/').to_owned(),
                endpoint: t.endpoint.clone(),
                region: t.region.clone(),
                access_key_id: t.access_key_id.clone(),
                secret_access_key: t.secret_access_key.clone(),
                ca_file: t.ca_file.clone(),
                server_side_encryption: t.server_side_encryption.clone(),
                sse_kms_key_id: t.sse_kms_key_id.clone(),
            },
            (_, _, Some(dir)) if t.kind.is_local() => TierTarget::Local { dir: absolute(dir)? },
            _ => return Err(invalid(("type", "validated tiers have what their type needs".into()))),
        };
        Ok(Self { name: t.name.clone(), target, zstd_level: t.zstd_level })
    }

    /// The URL prefix of every file in this tier (`file:///dir` or `s3://bucket/prefix`).
    pub fn base_url(&self) -> String {
        match &self.target {
            TierTarget::Local { dir } => format!("file://{}", dir.display()).trim_end_matches('/').to_owned(),
            TierTarget::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            TierTarget::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// Makes a path absolute without requiring it to exist.
pub fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(std::path::absolute(p)?)
}

/// Resolves a file location to the object store and key that hold it.
#[derive(Debug)]
pub struct TierRouter {
    tiers: Vec<RoutedTier>,
    local: Arc<dyn ObjectStore>,
    s3: HashMap<String, Arc<dyn ObjectStore>>,
}

#[derive(Debug)]
struct RoutedTier {
    spec: TierSpec,
    base: String,
}

impl TierRouter {
    /// Builds the object stores. S3 credentials come from the standard `AWS_*` environment
    /// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`).
    pub fn new(specs: &[TierSpec]) -> Result<Self> {
        let mut s3: HashMap<String, Arc<dyn ObjectStore>> = HashMap::new();
        let mut tiers = Vec::new();
        for spec in specs {
            if let TierTarget::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                ca_file,
                server_side_encryption,
                sse_kms_key_id,
                ..
            } = &spec.target
                && !s3.contains_key(bucket)
            {
                let failed = |reason: String| StorageError::Tier { tier: spec.name.clone(), reason };
                let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(ca) = ca_file {
                    let pem = std::fs::read(ca).map_err(|e| failed(format!("ca_file {}: {e}", ca.display())))?;
                    let certs = object_store::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| failed(format!("ca_file {}: {e}", ca.display())))?;
                    let mut options = object_store::ClientOptions::new();
                    for cert in certs {
                        options = options.with_root_certificate(cert);
                    }
                    b = b.with_client_options(options);
                }
                if let Some(sse) = server_side_encryption {
                    let key =
                        "aws_server_side_encryption".parse().map_err(|e: object_store::Error| failed(e.to_string()))?;
                    b = b.with_config(key, sse);
                    if let Some(kms) = sse_kms_key_id {
                        let key =
                            "aws_sse_kms_key_id".parse().map_err(|e: object_store::Error| failed(e.to_string()))?;
                        b = b.with_config(key, kms);
                    }
                }
                if let (Some(key), Some(secret)) = (access_key_id, secret_access_key) {
                    b = b.with_access_key_id(key).with_secret_access_key(secret);
                }
                if let Some(e) = endpoint {
                    let url = if e.contains("://") { e.clone() } else { format!("https://{e}") };
                    b = b.with_allow_http(url.starts_with("http://")).with_endpoint(url);
                }
                let region = region.clone().or_else(|| std::env::var("AWS_REGION").ok());
                b = b.with_region(region.unwrap_or_else(|| "us-east-1".into()));
                let store =
                    b.build().map_err(|e| StorageError::Tier { tier: spec.name.clone(), reason: e.to_string() })?;
                s3.insert(bucket.clone(), Arc::new(store));
            }
            tiers.push(RoutedTier { base: spec.base_url(), spec: spec.clone() });
        }
        // Longest base first, so nested tier directories resolve to the innermost tier.
        tiers.sort_by_key(|t| std::cmp::Reverse(t.base.len()));
        Ok(Self { tiers, local: Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)), s3 })
    }

    /// The object store and key for a location (`file:///…`, `/…` or `s3://bucket/…`).
    pub fn resolve(&self, location: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        if let Some(rest) = location.strip_prefix("s3://").or_else(|| location.strip_prefix("s3a://")) {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            let store =
                self.s3.get(bucket).ok_or_else(|| StorageError::UnknownLocation { path: location.to_owned() })?;
            return Ok((store.clone(), parse_key(key, location)?));
        }
        let path = location.strip_prefix("file://").or_else(|| location.strip_prefix("file:")).unwrap_or(location);
        if !path.starts_with('/') {
            return Err(StorageError::UnknownLocation { path: location.to_owned() });
        }
        Ok((self.local.clone(), parse_key(path.trim_start_matches('/'), location)?))
    }

    /// The tier whose base URL holds this location.
    pub fn tier_of(&self, location: &str) -> Option<&TierName> {
        let normal = normalize_location(location);
        self.tiers
            .iter()
            .find(|t| normal.strip_prefix(&t.base).is_some_and(|rest| rest.starts_with('/')))
            .map(|t| &t.spec.name)
    }

    pub fn tier(&self, name: &TierName) -> Option<&TierSpec> {
        self.tiers.iter().find(|t| &t.spec.name == name).map(|t| &t.spec)
    }

    pub fn tiers(&self) -> impl Iterator<Item = &TierSpec> {
        self.tiers.iter().map(|t| &t.spec)
    }
}

/// `/a/b` and `file:/a/b` → `file:///a/b`; other schemes unchanged.
pub fn normalize_location(location: &str) -> String {
    if location.starts_with('/') {
        format!("file://{location}")
    } else if let Some(rest) = location.strip_prefix("file:").filter(|r| !r.starts_with("//")) {
        format!("file://{rest}")
    } else {
        location.to_owned()
    }
}

fn parse_key(key: &str, location: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key)
        .map_err(|e| StorageError::InvalidData(format!("location {location} is not a valid object key: {e}")))
}

fn to_iceberg(op: &'static str, path: &str, e: impl std::error::Error + Send + Sync + 'static) -> IcebergError {
    IcebergError::new(ErrorKind::Unexpected, format!("{op} {path} failed")).with_context("path", path).with_source(e)
}

fn storage_to_iceberg(e: StorageError) -> IcebergError {
    IcebergError::new(ErrorKind::DataInvalid, e.to_string())
}

/// The iceberg `Storage` implementation: resolves every path through a [`TierRouter`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TieredStorage {
    specs: Vec<TierSpec>,
    #[serde(skip)]
    router: Arc<OnceLock<Arc<TierRouter>>>,
}

impl TieredStorage {
    pub fn new(router: Arc<TierRouter>) -> Self {
        let specs = router.tiers().cloned().collect();
        let cell = OnceLock::new();
        let _ = cell.set(router);
        Self { specs, router: Arc::new(cell) }
    }

    fn router(&self) -> iceberg::Result<Arc<TierRouter>> {
        if let Some(r) = self.router.get() {
            return Ok(r.clone());
        }
        // Only reached after deserialisation: rebuild the stores from the tier specs.
        let r = Arc::new(TierRouter::new(&self.specs).map_err(storage_to_iceberg)?);
        Ok(self.router.get_or_init(|| r).clone())
    }

    fn resolve(&self, path: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        self.router()?.resolve(path).map_err(storage_to_iceberg)
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for TieredStorage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.resolve(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(to_iceberg("stat", path, e)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.resolve(path)?;
        let meta = store.head(&key).await.map_err(|e| to_iceberg("stat", path, e))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.resolve(path)?;
        let get = store.get(&key).await.map_err(|e| to_iceberg("read", path, e))?;
        get.bytes().await.map_err(|e| to_iceberg("read", path, e))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.resolve(path)?;
        Ok(Box::new(ObjectRead { store, key, path: path.to_owned() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.resolve(path)?;
        store.put(&key, bs.into()).await.map_err(|e| to_iceberg("write", path, e))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.resolve(path)?;
        Ok(Box::new(ObjectWrite { inner: Some(BufWriter::new(store, key)), path: path.to_owned() }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.resolve(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(to_iceberg("delete", path, e)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.resolve(path)?;
        let locations = store.list(Some(&key)).map(|m| m.map(|m| m.location)).boxed();
        let mut deleted = store.delete_stream(locations);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(to_iceberg("delete", path, e)),
            }
        }
        Ok(())
    }

    async fn delete_stream(&self, mut paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        while let Some(p) = paths.next().await {
            self.delete(&p).await?;
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_owned()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_owned()))
    }
}

struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    path: String,
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| to_iceberg("read", &self.path, e))
    }
}

struct ObjectWrite {
    inner: Option<BufWriter>,
    path: String,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        let w = self.inner.as_mut().ok_or_else(|| IcebergError::new(ErrorKind::Unexpected, "write after close"))?;
        w.put(bs).await.map_err(|e| to_iceberg("write", &self.path, e))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        let mut w = self.inner.take().ok_or_else(|| IcebergError::new(ErrorKind::Unexpected, "closed twice"))?;
        w.shutdown().await.map_err(|e| to_iceberg("close", &self.path, e))
    }
}

/// Hands the catalog a [`TieredStorage`] whatever properties it passes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TieredStorageFactory {
    storage: TieredStorage,
}

impl TieredStorageFactory {
    pub fn new(router: Arc<TierRouter>) -> Self {
        Self { storage: TieredStorage::new(router) }
    }
}

#[typetag::serde]
impl StorageFactory for TieredStorageFactory {
    fn build(&self, _config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(self.storage.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_to_the_innermost_tier() {
        let router = TierRouter::new(&[
            TierSpec::local("hot", "/data/hot"),
            TierSpec::local("warm", "/data/warm"),
            TierSpec {
                name: TierName::new("archive"),
                target: TierTarget::S3 {
                    bucket: "econ-archive".into(),
                    prefix: "v1".into(),
                    endpoint: Some("http://127.0.0.1:9".into()),
                    region: None,
                    access_key_id: None,
                    secret_access_key: None,
                    ca_file: None,
                    server_side_encryption: None,
                    sse_kms_key_id: None,
                },
                zstd_level: None,
            },
        ])
        .unwrap();
        assert_eq!(router.tier_of("file:///data/hot/t/data/a.parquet").map(TierName::as_str), Some("hot"));
        assert_eq!(router.tier_of("/data/warm/x.parquet").map(TierName::as_str), Some("warm"));
        assert_eq!(router.tier_of("file:///data/hotter/x.parquet"), None, "prefix must end at a separator");
        assert_eq!(router.tier_of("s3://econ-archive/v1/t/x.parquet").map(TierName::as_str), Some("archive"));
        let (_, key) = router.resolve("file:///data/hot/t/a.parquet").unwrap();
        assert_eq!(key.as_ref(), "data/hot/t/a.parquet");
        let (_, key) = router.resolve("s3://econ-archive/v1/t/a.parquet").unwrap();
        assert_eq!(key.as_ref(), "v1/t/a.parquet");
        assert!(matches!(router.resolve("s3://other-bucket/x"), Err(StorageError::UnknownLocation { .. })));
        assert!(matches!(router.resolve("relative/path"), Err(StorageError::UnknownLocation { .. })));
    }

    #[tokio::test]
    async fn local_files_write_read_range_delete() {
        let dir = tempfile::tempdir().unwrap();
        let storage = TieredStorage::new(Arc::new(TierRouter::new(&[TierSpec::local("hot", dir.path())]).unwrap()));
        let path = format!("file://{}/a/b/file.bin", dir.path().display());
        assert!(!storage.exists(&path).await.unwrap());
        let mut w = storage.writer(&path).await.unwrap();
        w.write(Bytes::from_static(b"hello ")).await.unwrap();
        w.write(Bytes::from_static(b"world")).await.unwrap();
        w.close().await.unwrap();
        assert!(storage.exists(&path).await.unwrap());
        assert_eq!(storage.metadata(&path).await.unwrap().size, 11);
        assert_eq!(storage.reader(&path).await.unwrap().read(6..11).await.unwrap(), Bytes::from_static(b"world"));
        assert_eq!(storage.read(&path).await.unwrap(), Bytes::from_static(b"hello world"));
        storage.delete(&path).await.unwrap();
        storage.delete(&path).await.unwrap();
        assert!(!storage.exists(&path).await.unwrap());
        let missing = storage.read(&path).await.unwrap_err();
        assert!(missing.to_string().contains("file.bin"), "{missing}");
    }
}
