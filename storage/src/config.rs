//! The storage core's configuration: the tier list and the retention policy, each with the one
//! check its values must pass (errors name the field). The application's YAML file that carries
//! them is the binary's (`src/config/file.rs`).

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Name of a storage tier (`hot`, `warm`, `cold`, `archive`, …).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct TierName(String);

impl TierName {
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tier name from a command line: letters, digits, `-` and `_`.
impl std::str::FromStr for TierName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("{s:?} is not a tier name (letters, digits, - and _)"));
        }
        Ok(Self(s.to_owned()))
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One tier of the seed's tier list.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    pub name: TierName,
    #[serde(rename = "type")]
    pub kind: TierKind,
    /// Directory, for local tiers.
    pub path: Option<PathBuf>,
    /// S3 endpoint (host[:port] or URL), for `s3` tiers; absent means AWS.
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: Option<String>,
    /// Static S3 credentials (prefer the `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Data older than this (days since superseded) moves to the next tier.
    pub max_age_days: Option<u32>,
    /// s3 tiers: a PEM file of CA certificates to trust for the endpoint's TLS (a private CA),
    /// besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// s3 tiers: server-side encryption of every object written, `AES256` (SSE-S3), `aws:kms`
    /// (SSE-KMS) or `aws:kms:dsse`.
    #[serde(default)]
    pub server_side_encryption: Option<String>,
    /// s3 tiers with `aws:kms` encryption: the KMS key id (default: the bucket's AWS-managed key).
    #[serde(default)]
    pub sse_kms_key_id: Option<String>,
    /// zstd level (1–22) of the files written into this tier, and of files moved into it (a move
    /// re-encodes when the tiers' levels differ). Default: 3 (ingest's own appends: 1).
    #[serde(default)]
    pub zstd_level: Option<i32>,
}

/// zstd levels a tier may ask for.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

/// Values of a tier's `server_side_encryption`.
pub const SERVER_SIDE_ENCRYPTIONS: &[&str] = &["AES256", "aws:kms", "aws:kms:dsse"];

/// The medium behind a tier: the seed's `nvme`/`ssd`/`hdd` are local directories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TierKind {
    Nvme,
    Ssd,
    Hdd,
    Local,
    S3,
}

impl TierKind {
    pub fn is_local(self) -> bool {
        !matches!(self, TierKind::S3)
    }
}

/// The seed's `RetentionPolicy`: ages in days since a revision was superseded.
/// `delete_after_days: 0` means superseded data is never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    pub hot_data_days: u32,
    pub warm_data_days: u32,
    pub cold_data_days: u32,
    pub archive_data_days: u32,
    pub delete_after_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            hot_data_days: 30,
            warm_data_days: 365,
            cold_data_days: 3650,
            archive_data_days: 36_500,
            delete_after_days: 0,
        }
    }
}

impl RetentionPolicy {
    /// Ages must increase hot < warm < cold < archive, and deletion (when enabled) comes last.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let steps = [
            ("hot_data_days", self.hot_data_days),
            ("warm_data_days", self.warm_data_days),
            ("cold_data_days", self.cold_data_days),
            ("archive_data_days", self.archive_data_days),
        ];
        for pair in steps.windows(2) {
            let ((a, av), (b, bv)) = (pair[0], pair[1]);
            if bv <= av {
                return Err((b.to_owned(), format!("must be greater than {a} ({av}), got {bv}")));
            }
        }
        if self.delete_after_days != 0 && self.delete_after_days < self.archive_data_days {
            return Err((
                "delete_after_days".to_owned(),
                format!(
                    "must be 0 (never) or at least archive_data_days ({}), got {}",
                    self.archive_data_days, self.delete_after_days
                ),
            ));
        }
        Ok(())
    }
}

impl TierConfig {
    /// The one check of a tier entry (the file's validation and `io::TierSpec::from_config` both
    /// use it): its name, and what its type needs. Errors name the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let name = self.name.as_str();
        if let Some(level) = self.zstd_level
            && !ZSTD_LEVELS.contains(&level)
        {
            return Err(("zstd_level", format!("{level}: a zstd level is 1 to 22")));
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(("name", format!("{name:?} is not a tier name (letters, digits, _ and -)")));
        }
        if self.kind.is_local() {
            if self.path.is_none() {
                return Err(("path", "a local tier needs a directory path".into()));
            }
            if self.bucket.is_some() || self.endpoint.is_some() {
                return Err(("bucket", "bucket/endpoint only apply to s3 tiers".into()));
            }
            if self.ca_file.is_some() {
                return Err(("ca_file", "only applies to s3 tiers".into()));
            }
            if self.server_side_encryption.is_some() || self.sse_kms_key_id.is_some() {
                return Err(("server_side_encryption", "only applies to s3 tiers".into()));
            }
        } else {
            match &self.bucket {
                None => return Err(("bucket", "an s3 tier needs a bucket".into())),
                Some(b)
                    if b.len() < 3
                        || b.len() > 63
                        || !b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.') =>
                {
                    return Err(("bucket", format!("{b:?} is not a valid S3 bucket name")));
                }
                Some(_) => {}
            }
            if self.path.is_some() {
                return Err(("path", "path only applies to local tiers; use bucket and prefix".into()));
            }
            if let Some(ca) = &self.ca_file {
                let pem = std::fs::read(ca).map_err(|e| ("ca_file", format!("{}: {e}", ca.display())))?;
                if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                    return Err(("ca_file", format!("{}: no PEM certificate in it", ca.display())));
                }
            }
            match self.server_side_encryption.as_deref() {
                Some(sse) if !SERVER_SIDE_ENCRYPTIONS.contains(&sse) => {
                    return Err((
                        "server_side_encryption",
                        format!("{sse:?}: expected one of {}", SERVER_SIDE_ENCRYPTIONS.join(", ")),
                    ));
                }
                Some(sse) if self.sse_kms_key_id.is_some() && !sse.starts_with("aws:kms") => {
                    return Err(("sse_kms_key_id", format!("only applies to aws:kms encryption, not {sse}")));
                }
                None if self.sse_kms_key_id.is_some() => {
                    return Err(("sse_kms_key_id", "needs server_side_encryption: aws:kms".into()));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
