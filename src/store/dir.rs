//! The local-directory store: files renamed into place.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::{Content, Keys, StoreError, Stored, Swept};
use crate::media::Format;

/// Temporary files, below the root (same filesystem, so renames are atomic).
const TMP_DIR: &str = ".rehost/tmp";

#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    tmp: PathBuf,
    public_base: String,
    keys: Keys,
}

/// A file being written under a temporary name; removed unless finished.
#[derive(Debug)]
pub struct DirUpload {
    store: DirStore,
    workspace: String,
    format: Format,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    path: PathBuf,
    done: bool,
}

impl DirStore {
    pub(super) async fn open(
        root: &Path,
        public_base: &str,
        keys: Keys,
    ) -> Result<Self, StoreError> {
        let tmp = root.join(TMP_DIR);
        tokio::fs::create_dir_all(&tmp)
            .await
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(DirStore {
            root: root.to_path_buf(),
            tmp,
            public_base: public_base.trim_end_matches('/').to_string(),
            keys,
        })
    }

    fn stored(&self, key: String, new: bool) -> Stored {
        Stored {
            url: format!("{}/{key}", self.public_base),
            key,
            new,
        }
    }

    fn temp_path(&self) -> PathBuf {
        self.tmp
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()))
    }

    pub(super) async fn put(&self, c: Content<'_>, bytes: Bytes) -> Result<Stored, StoreError> {
        let key = self.keys.object(c.workspace, c.sha256, c.format.ext());
        if tokio::fs::try_exists(self.root.join(&key)).await? {
            return Ok(self.stored(key, false));
        }
        let mut upload = self.begin(c.workspace, c.format).await?;
        upload.write(bytes).await?;
        upload.finish(c.sha256).await
    }

    pub(super) async fn begin(
        &self,
        workspace: &str,
        format: Format,
    ) -> Result<DirUpload, StoreError> {
        let path = self.temp_path();
        let file = tokio::fs::File::create(&path)
            .await
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(DirUpload {
            store: self.clone(),
            workspace: workspace.to_string(),
            format,
            file: Some(tokio::io::BufWriter::with_capacity(256 * 1024, file)),
            path,
            done: false,
        })
    }

    /// Writes and removes a probe file in the temp directory.
    pub(super) async fn check(&self) -> Result<(), StoreError> {
        let probe = self
            .tmp
            .join(format!(".probe-{}", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&probe, b"probe")
            .await
            .with_context(|| format!("store directory {} is not writable", self.root.display()))?;
        tokio::fs::remove_file(&probe).await?;
        Ok(())
    }

    pub(super) fn public_base(&self) -> &str {
        &self.public_base
    }

    pub(super) async fn put_probe(&self, id: &str, bytes: Bytes) -> Result<String, StoreError> {
        let key = self.keys.probe(id);
        let path = self.root.join(&key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&path, &bytes)
            .await
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(key)
    }

    pub(super) async fn delete_probe(&self, key: &str) -> Result<(), StoreError> {
        match tokio::fs::remove_file(self.root.join(key)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Temp files (`.part`) and probe objects a killed worker left, older
    /// than `age`.
    pub(super) async fn sweep(&self, age: Duration) -> Result<Swept, StoreError> {
        let cutoff = SystemTime::now() - age;
        let probes = self.root.join(self.keys.probe_prefix());
        let probes = match tokio::fs::try_exists(&probes).await? {
            true => remove_old(&probes, cutoff, |_| true).await?,
            false => 0,
        };
        let parts = remove_old(&self.tmp, cutoff, |p| {
            p.extension().is_some_and(|e| e == "part")
        })
        .await?;
        Ok(Swept {
            temp_objects: probes + parts,
            ..Swept::default()
        })
    }
}

/// Removes the files of `dir` last written before `cutoff` that `pick`
/// picks; how many.
async fn remove_old(
    dir: &std::path::Path,
    cutoff: SystemTime,
    pick: impl Fn(&std::path::Path) -> bool,
) -> Result<usize, StoreError> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut n = 0;
    while let Some(entry) = entries.next_entry().await? {
        let old = entry
            .metadata()
            .await
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < cutoff);
        if old && pick(&entry.path()) {
            tokio::fs::remove_file(entry.path()).await?;
            n += 1;
        }
    }
    Ok(n)
}

impl DirUpload {
    pub(super) async fn write(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let file = self.file.as_mut().context("upload already closed")?;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        Ok(())
    }

    pub(super) async fn finish(mut self, sha256: &str) -> Result<Stored, StoreError> {
        let mut file = self.file.take().context("upload already closed")?;
        file.flush().await?;
        file.get_mut().sync_data().await?;
        drop(file);
        let store = self.store.clone();
        let key = store
            .keys
            .object(&self.workspace, sha256, self.format.ext());
        let dest = store.root.join(&key);
        if tokio::fs::try_exists(&dest).await? {
            // Identical bytes are already there (same key, same content).
            tokio::fs::remove_file(&self.path).await?;
            self.done = true;
            return Ok(store.stored(key, false));
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&self.path, &dest)
            .await
            .with_context(|| format!("cannot move the upload to {}", dest.display()))?;
        self.done = true;
        Ok(store.stored(key, true))
    }

    pub(super) async fn abort(mut self) {
        self.file.take();
        let _ = tokio::fs::remove_file(&self.path).await;
        self.done = true;
    }
}

impl Drop for DirUpload {
    fn drop(&mut self) {
        if !self.done {
            // Cancelled mid-way (deadline, shutdown): never leave the temp file.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
