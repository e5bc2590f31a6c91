//! Encryption at rest: Parquet modular encryption of the data files we write.
//!
//! Envelope encryption, as Parquet's key-management tools define it (the "PKMT1" key material
//! that parquet-java, Arrow C++ and pyarrow read): every write gets a fresh random data key
//! (AES-128-GCM, footer and every column encrypted with it); the data key is stored in the file's
//! footer key metadata, wrapped by a *master key* that never leaves the [`KeyProvider`]. A file
//! names its master key by id, so several master keys can be live at once (during a rotation) and
//! a reader needs only the provider: [`Encryption::decryption`] asks it to unwrap whatever key a
//! file names. The same key metadata goes into the file's Iceberg manifest entry
//! (`key_metadata`), so planning knows each file's master key without opening it (rotation).
//!
//! External readers: pyarrow reads our files with `pyarrow.parquet.encryption.CryptoFactory` and a
//! `KmsClient` whose `unwrap_key(wrapped, master_key_id)` undoes [`LocalKeys::wrap_key`]
//! (AES-GCM under the master key, 12-byte nonce first, the master key id as associated data,
//! standard base64) — docs/security.md shows one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use parquet::encryption::decrypt::{FileDecryptionProperties, KeyRetriever};
use parquet::encryption::encrypt::FileEncryptionProperties;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// What a Parquet reader needs to open our encrypted files (any master key the provider holds).
pub type DecryptionKeys = Arc<FileDecryptionProperties>;

/// Length of the data keys (AES-128, as Parquet's tools default to).
pub const DATA_KEY_LEN: usize = 16;

/// Why a key could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("master key {0:?} is not known to the key provider (is it still in the key file?)")]
    UnknownKey(String),
    #[error("a data key wrapped by master key {key_id:?} does not unwrap: {reason}")]
    Unwrap { key_id: String, reason: String },
    #[error("key provider: {0}")]
    Provider(String),
}

/// Where master keys live: the shape of a KMS (wrap and unwrap a data key with a master key that
/// never leaves it), so a cloud KMS or Vault can stand behind it as well as a key file.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The master key new files are written under.
    fn current_key_id(&self) -> &str;
    /// Wraps (encrypts) a data key with master key `key_id`; the result is text (it is stored in
    /// JSON key metadata).
    fn wrap_key(&self, key_id: &str, data_key: &[u8]) -> Result<String, KeyError>;
    /// Unwraps what [`wrap_key`](Self::wrap_key) returned.
    fn unwrap_key(&self, key_id: &str, wrapped: &str) -> Result<Vec<u8>, KeyError>;
}

/// Master keys held in this process, from a key file or the environment: `id:base64` entries
/// (16 or 32 bytes each: AES-128 or AES-256), one per line or comma-separated; `#` starts a
/// comment. The current key is the one named, or the last one listed.
pub struct LocalKeys {
    keys: BTreeMap<String, Vec<u8>>,
    current: String,
    rng: SystemRandom,
}

impl fmt::Debug for LocalKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: the keys themselves never reach a log.
        f.debug_struct("LocalKeys")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .field("current", &self.current)
            .finish()
    }
}

impl LocalKeys {
    /// Parses key entries; `current` picks the key new files use (default: the last listed).
    /// The error says which entry is wrong and why (never the key's bytes).
    pub fn parse(text: &str, current: Option<&str>) -> Result<Self, String> {
        let mut keys = BTreeMap::new();
        let mut last = None;
        let entries = text.lines().map(|l| l.split('#').next().unwrap_or("")).flat_map(|l| l.split(','));
        for (n, entry) in entries.map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let Some((id, key)) = entry.split_once(':') else {
                return Err(format!("entry {}: expected key-id:base64-key", n + 1));
            };
            let id = id.trim();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(format!("entry {}: key id {id:?} must be letters, digits, '-', '_' or '.'", n + 1));
            }
            let bytes = B64.decode(key.trim()).map_err(|e| format!("key {id:?}: not base64 ({e})"))?;
            if bytes.len() != 16 && bytes.len() != 32 {
                return Err(format!("key {id:?}: {} bytes; a master key is 16 or 32 bytes (AES-128/256)", bytes.len()));
            }
            if keys.insert(id.to_owned(), bytes).is_some() {
                return Err(format!("key {id:?} is listed twice"));
            }
            last = Some(id.to_owned());
        }
        let current = match current {
            Some(id) if keys.contains_key(id) => id.to_owned(),
            Some(id) => return Err(format!("the current key {id:?} is not among the keys ({})", Self::ids(&keys))),
            None => last.ok_or("no keys given")?,
        };
        Ok(Self { keys, current, rng: SystemRandom::new() })
    }

    /// Reads a key file ([`parse`](Self::parse)); it should be readable by the service only.
    pub fn from_file(path: &Path, current: Option<&str>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text, current).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn ids(keys: &BTreeMap<String, Vec<u8>>) -> String {
        keys.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }

    fn cipher(&self, key_id: &str) -> Result<LessSafeKey, KeyError> {
        let key = self.keys.get(key_id).ok_or_else(|| KeyError::UnknownKey(key_id.to_owned()))?;
        let algorithm = if key.len() == 16 { &AES_128_GCM } else { &AES_256_GCM };
        let unbound = UnboundKey::new(algorithm, key).map_err(|_| KeyError::Provider("invalid AES key".into()))?;
        Ok(LessSafeKey::new(unbound))
    }
}

impl KeyProvider for LocalKeys {
    fn current_key_id(&self) -> &str {
        &self.current
    }

    fn wrap_key(&self, key_id: &str, data_key: &[u8]) -> Result<String, KeyError> {
        let cipher = self.cipher(key_id)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| KeyError::Provider("no randomness".into()))?;
        let mut sealed = data_key.to_vec();
        cipher
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(key_id.as_bytes()), &mut sealed)
            .map_err(|_| KeyError::Provider("wrapping failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(B64.encode(out))
    }

    fn unwrap_key(&self, key_id: &str, wrapped: &str) -> Result<Vec<u8>, KeyError> {
        let fail = |reason: &str| KeyError::Unwrap { key_id: key_id.to_owned(), reason: reason.to_owned() };
        let cipher = self.cipher(key_id)?;
        let mut bytes = B64.decode(wrapped).map_err(|_| fail("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(fail("too short"));
        }
        let mut sealed = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| fail("bad nonce"))?;
        let plain = cipher
            .open_in_place(nonce, Aad::from(key_id.as_bytes()), &mut sealed)
            .map_err(|_| fail("authentication failed (another key of the same id?)"))?;
        Ok(plain.to_vec())
    }
}

/// Parquet's key material ("PKMT1"), stored inside the file (internal storage) for the footer key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct KeyMaterial {
    #[serde(rename = "keyMaterialType")]
    key_material_type: String,
    #[serde(rename = "internalStorage")]
    internal_storage: bool,
    #[serde(rename = "isFooterKey")]
    is_footer_key: bool,
    #[serde(rename = "kmsInstanceID", default, skip_serializing_if = "Option::is_none")]
    kms_instance_id: Option<String>,
    #[serde(rename = "kmsInstanceURL", default, skip_serializing_if = "Option::is_none")]
    kms_instance_url: Option<String>,
    #[serde(rename = "masterKeyID")]
    master_key_id: String,
    #[serde(rename = "wrappedDEK")]
    wrapped_dek: String,
    #[serde(rename = "doubleWrapping")]
    double_wrapping: bool,
}

const KEY_MATERIAL_TYPE: &str = "PKMT1";

/// The master key id a file's key metadata names (`None`: not our key material).
pub fn master_key_of(key_metadata: &[u8]) -> Option<String> {
    serde_json::from_slice::<KeyMaterial>(key_metadata)
        .ok()
        .filter(|m| m.key_material_type == KEY_MATERIAL_TYPE)
        .map(|m| m.master_key_id)
}

/// A new file's encryption: the Parquet properties and the key metadata to record in its manifest
/// entry.
#[derive(Debug, Clone)]
pub struct FileKeys {
    pub properties: Arc<FileEncryptionProperties>,
    pub key_metadata: Vec<u8>,
}

/// Encryption of a warehouse's data files: writes under the provider's current master key, reads
/// whatever master key a file names.
#[derive(Clone)]
pub struct Encryption {
    provider: Arc<dyn KeyProvider>,
    decryption: Arc<FileDecryptionProperties>,
    rng: SystemRandom,
}

impl fmt::Debug for Encryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryption").field("provider", &self.provider).finish()
    }
}

/// Unwraps a file's data key through the provider (what the Parquet reader calls per file).
struct Retriever(Arc<dyn KeyProvider>);

impl KeyRetriever for Retriever {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        let material: KeyMaterial = serde_json::from_slice(key_metadata).map_err(|e| {
            parquet::errors::ParquetError::General(format!("key metadata is not Parquet key material: {e}"))
        })?;
        if material.key_material_type != KEY_MATERIAL_TYPE || material.double_wrapping {
            return Err(parquet::errors::ParquetError::General(format!(
                "key material {} (double wrapping {}) is not supported",
                material.key_material_type, material.double_wrapping
            )));
        }
        self.0
            .unwrap_key(&material.master_key_id, &material.wrapped_dek)
            .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
    }
}

impl Encryption {
    pub fn new(provider: Arc<dyn KeyProvider>) -> Self {
        let decryption = FileDecryptionProperties::with_key_retriever(Arc::new(Retriever(provider.clone())))
            .build()
            .expect("decryption properties with a key retriever always build");
        Self { provider, decryption, rng: SystemRandom::new() }
    }

    /// The master key new files are written under.
    pub fn current_key_id(&self) -> &str {
        self.provider.current_key_id()
    }

    /// A fresh data key under the current master key, for the files of one write.
    pub fn new_file_keys(&self) -> Result<FileKeys, KeyError> {
        let mut data_key = vec![0u8; DATA_KEY_LEN];
        self.rng.fill(&mut data_key).map_err(|_| KeyError::Provider("no randomness".into()))?;
        let master = self.provider.current_key_id().to_owned();
        let material = KeyMaterial {
            key_material_type: KEY_MATERIAL_TYPE.to_owned(),
            internal_storage: true,
            is_footer_key: true,
            kms_instance_id: Some("DEFAULT".to_owned()),
            kms_instance_url: Some("DEFAULT".to_owned()),
            wrapped_dek: self.provider.wrap_key(&master, &data_key)?,
            master_key_id: master,
            double_wrapping: false,
        };
        let key_metadata = serde_json::to_vec(&material).expect("key material serialises");
        let properties = FileEncryptionProperties::builder(data_key)
            .with_footer_key_metadata(key_metadata.clone())
            .build()
            .map_err(|e| KeyError::Provider(e.to_string()))?;
        Ok(FileKeys { properties, key_metadata })
    }

    /// What a reader passes to open any of our files, encrypted (under any master key the
    /// provider holds) or not.
    pub fn decryption(&self) -> Arc<FileDecryptionProperties> {
        self.decryption.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(text: &str, current: Option<&str>) -> LocalKeys {
        LocalKeys::parse(text, current).unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODw==";
    const K2: &str = "k2:ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";

    #[test]
    fn key_entries_parse_and_errors_name_the_entry() {
        let k = keys(&format!("# keys\n{K1}\n{K2}  # newest\n"), None);
        assert_eq!(k.current_key_id(), "k2", "the last listed is current by default");
        assert_eq!(keys(&format!("{K1},{K2}"), Some("k1")).current_key_id(), "k1");
        for (text, current, says) in [
            ("", None, "no keys"),
            ("k1", None, "entry 1: expected key-id:base64-key"),
            ("k 1:AAAA", None, "key id \"k 1\""),
            ("k1:not base64!", None, "not base64"),
            ("k1:AAECAw==", None, "4 bytes"),
            (&format!("{K1},{K1}") as &str, None, "listed twice"),
            (K1, Some("k9"), "\"k9\" is not among the keys (k1)"),
        ] {
            let err = LocalKeys::parse(text, current).unwrap_err();
            assert!(err.contains(says), "{text:?}: {err}");
            assert!(!err.contains("AAECAwQFBgcICQoLDA0ODw"), "errors never show a key: {err}");
        }
        assert!(!format!("{k:?}").contains("AAEC"), "Debug shows ids only");
    }

    #[test]
    fn wrapped_keys_unwrap_only_with_their_master_key() {
        let k = keys(&format!("{K1},{K2}"), None);
        let dek = [7u8; DATA_KEY_LEN];
        for id in ["k1", "k2"] {
            let wrapped = k.wrap_key(id, &dek).unwrap();
            assert_eq!(k.unwrap_key(id, &wrapped).unwrap(), dek);
            let other = if id == "k1" { "k2" } else { "k1" };
            assert!(matches!(k.unwrap_key(other, &wrapped), Err(KeyError::Unwrap { .. })));
        }
        assert_ne!(k.wrap_key("k1", &dek).unwrap(), k.wrap_key("k1", &dek).unwrap(), "fresh nonce per wrap");
        assert_eq!(k.wrap_key("k9", &dek), Err(KeyError::UnknownKey("k9".into())));
        // The same id with other key bytes (a replaced key) does not unwrap.
        let wrapped = k.wrap_key("k1", &dek).unwrap();
        let replaced = keys("k1:ABEiM0RVZneImaq7zN3u/w==", None);
        assert!(matches!(replaced.unwrap_key("k1", &wrapped), Err(KeyError::Unwrap { .. })));
    }

    #[test]
    fn files_round_trip_and_name_their_master_key() {
        use arrow::array::{Int64Array, RecordBatch};
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
        use parquet::file::properties::WriterProperties;
        let enc = Encryption::new(Arc::new(keys(&format!("{K1},{K2}"), Some("k1"))));
        let batch = RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
        let file = enc.new_file_keys().unwrap();
        assert_eq!(master_key_of(&file.key_metadata).as_deref(), Some("k1"));
        let props = WriterProperties::builder().with_file_encryption_properties(file.properties).build();
        let mut bytes = Vec::new();
        let mut w = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let bytes = bytes::Bytes::from(bytes);
        assert_eq!(&bytes[bytes.len() - 4..], b"PARE", "encrypted footer");
        let read = |options: ArrowReaderOptions| {
            ParquetRecordBatchReaderBuilder::try_new_with_options(bytes.clone(), options)
                .and_then(|b| b.build())
                .map(|r| r.collect::<Result<Vec<_>, _>>().unwrap())
        };
        assert_eq!(
            read(ArrowReaderOptions::new().with_file_decryption_properties(enc.decryption())).unwrap(),
            vec![batch]
        );
        assert!(read(ArrowReaderOptions::new()).is_err(), "unreadable without the key");
        // A provider without k1 cannot open it, and says which key is missing.
        let without = Encryption::new(Arc::new(keys(K2, None)));
        let err = read(ArrowReaderOptions::new().with_file_decryption_properties(without.decryption())).unwrap_err();
        assert!(err.to_string().contains("\"k1\" is not known"), "{err}");
    }
}
