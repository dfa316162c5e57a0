//! Where re-hosted assets go: one interface, two stores.
//!
//! - [`dir`]: a local directory (the embedded default, and `REHOST_STORE_DIR`);
//! - `s3`: R2-compatible object storage.
//!
//! Keys are content-addressed (`{prefix}{workspace}/{sha[0..2]}/{sha}.{ext}`),
//! so identical bytes in one workspace are stored once and a repeat of a job
//! writes nothing new. Nothing is ever visible half-written under its final
//! key: a file is renamed into place, an object is written whole or copied
//! from a staging key. Leftovers of a killed worker are swept at start.

pub mod dir;
pub mod keys;
pub mod parts;
pub mod s3;

use std::time::Duration;

use bytes::Bytes;

use crate::config::{Config, StoreConfig};
use crate::error::{self, JobError};
use crate::media::Format;
pub use keys::Keys;

/// A storage failure, with context. Reported as `storage_unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct StoreError(#[from] pub anyhow::Error);

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        crate::metrics::METRICS.store_errors.inc();
        error::storage_unavailable(format!("object storage failed: {e}"))
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError(e.into())
    }
}

/// An asset as stored: where it lives and whether this write made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The object key (or path below the store's root).
    pub key: String,
    /// The public URL of the key.
    pub url: String,
    /// Whether anything new was written (false: identical bytes were there).
    pub new: bool,
}

/// What an asset is, for choosing its key: its workspace, the SHA-256 of its
/// bytes (lowercase hex) and its sniffed format.
#[derive(Debug, Clone, Copy)]
pub struct Content<'a> {
    /// Must have passed the job's identifier check (one safe path segment).
    pub workspace: &'a str,
    pub sha256: &'a str,
    pub format: Format,
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    pub temp_objects: usize,
    pub uploads: usize,
}

/// A configured store.
#[derive(Debug, Clone)]
pub enum Store {
    Dir(dir::DirStore),
    S3(s3::S3Store),
}

/// A streaming write of an object whose key is known only at the end.
#[derive(Debug)]
pub enum Upload {
    Dir(dir::DirUpload),
    S3(s3::S3Upload),
}

impl Store {
    /// Opens the configured store.
    ///
    /// # Errors
    /// When it cannot be prepared (directory not creatable, client not built).
    pub async fn open(store: &StoreConfig, cfg: &Config) -> Result<Store, StoreError> {
        let keys = Keys::new(&cfg.key_prefix);
        match store {
            StoreConfig::Dir { root, public_base } => Ok(Store::Dir(
                dir::DirStore::open(root, public_base, keys).await?,
            )),
            StoreConfig::S3(s3) => Ok(Store::S3(s3::S3Store::new(
                s3,
                keys,
                cfg.limits.max_video_bytes,
            ))),
        }
    }

    /// Stores `bytes` under the key of their content unless it exists.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put(&self, content: Content<'_>, bytes: Bytes) -> Result<Stored, StoreError> {
        match self {
            Store::Dir(s) => s.put(content, bytes).await,
            Store::S3(s) => s.put(content, bytes).await,
        }
    }

    /// Starts a streaming write of an asset of `workspace` whose content
    /// (and so its key) is known only at the end. `size_hint` is the
    /// declared length, if any.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn begin(
        &self,
        workspace: &str,
        format: Format,
        size_hint: Option<u64>,
    ) -> Result<Upload, StoreError> {
        match self {
            Store::Dir(s) => Ok(Upload::Dir(s.begin(workspace, format).await?)),
            Store::S3(s) => Ok(Upload::S3(s.begin(workspace, format, size_hint))),
        }
    }

    /// Whether the store answers (for `/readyz` and `check-config`).
    ///
    /// # Errors
    /// What is wrong, plainly (missing bucket, bad credentials, ...).
    pub async fn check(&self) -> Result<(), StoreError> {
        match self {
            Store::Dir(s) => s.check().await,
            Store::S3(s) => s.check().await,
        }
    }

    /// Waits, at most `limit`, for background clean-ups of cancelled uploads
    /// (called at shutdown).
    pub async fn wait_cleanups(&self, limit: Duration) {
        match self {
            Store::Dir(_) => {}
            Store::S3(s) => s.wait_cleanups(limit).await,
        }
    }

    /// The base of the store's public URLs (`PUBLIC_BASE_URL`).
    pub fn public_base(&self) -> &str {
        match self {
            Store::Dir(s) => s.public_base(),
            Store::S3(s) => s.public_base(),
        }
    }

    /// Writes the public-URL probe's object `bytes` (`image/png`, not to be
    /// cached) under a fresh key below `.rehost/probe/`; returns the key.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn put_probe(&self, bytes: Bytes) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        match self {
            Store::Dir(s) => s.put_probe(&id, bytes).await,
            Store::S3(s) => s.put_probe(&id, bytes).await,
        }
    }

    /// Deletes a probe's object.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn delete_probe(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Dir(s) => s.delete_probe(key).await,
            Store::S3(s) => s.delete_probe(key).await,
        }
    }

    /// Removes temporary objects and unfinished uploads older than `age`
    /// (so uploads of other live workers are left alone).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn sweep(&self, age: Duration) -> Result<Swept, StoreError> {
        match self {
            Store::Dir(s) => s.sweep(age).await,
            Store::S3(s) => s.sweep(age).await,
        }
    }
}

impl Upload {
    /// # Errors
    /// Storage failures.
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        match self {
            Upload::Dir(u) => u.write(chunk).await,
            Upload::S3(u) => u.write(chunk).await,
        }
    }

    /// Completes the upload of bytes whose SHA-256 is `sha256`; when
    /// identical bytes are already stored the new copy is discarded.
    ///
    /// # Errors
    /// Storage failures (the upload is then aborted).
    pub async fn finish(self, sha256: &str) -> Result<Stored, StoreError> {
        match self {
            Upload::Dir(u) => u.finish(sha256).await,
            Upload::S3(u) => u.finish(sha256).await,
        }
    }

    /// Discards everything written.
    pub async fn abort(self) {
        match self {
            Upload::Dir(u) => u.abort().await,
            Upload::S3(u) => u.abort().await,
        }
    }
}
