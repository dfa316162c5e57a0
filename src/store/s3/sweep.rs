//! Leftovers of killed workers, older than a cutoff (younger ones may
//! belong to live workers): upload markers and the video objects they name
//! when those never made it into the content index, unfinished multipart
//! uploads of videos, and staging objects of earlier versions.

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::DateTime;

use super::index::Marker;
use super::{S3Store, abort, fail, status};
use crate::store::{StoreError, Swept};

fn older(t: Option<&DateTime>, cutoff: SystemTime) -> bool {
    t.and_then(|t| SystemTime::try_from(*t).ok())
        .is_some_and(|t| t < cutoff)
}

impl S3Store {
    pub(crate) async fn sweep(&self, age: Duration) -> Result<Swept, StoreError> {
        let cutoff = SystemTime::now() - age;
        let markers = self.sweep_markers(cutoff).await?;
        let staging = self.sweep_staging(cutoff).await?;
        let probes = self
            .sweep_prefix(&self.keys().probe_prefix(), cutoff)
            .await?;
        let uploads = self.sweep_uploads(cutoff).await?;
        Ok(Swept {
            temp_objects: markers + staging + probes,
            uploads,
        })
    }

    /// Keys under `prefix` last written before `cutoff`.
    async fn old_keys(&self, prefix: &str, cutoff: SystemTime) -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client()
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| fail(&format!("list {prefix}"), e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter(|o| older(o.last_modified(), cutoff))
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// Settles old markers: a video object the content index does not (and
    /// may never have) named is deleted; the marker goes either way.
    async fn sweep_markers(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let markers = self.old_keys(&self.keys().pending_prefix(), cutoff).await?;
        for key in &markers {
            let is_probe = key
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("probe-"));
            if !is_probe && let Some(marker) = self.read_marker(key).await? {
                self.settle_marker(&marker).await?;
            }
            self.delete(key).await?;
        }
        Ok(markers.len())
    }

    async fn settle_marker(&self, m: &Marker) -> Result<(), StoreError> {
        if !self.keys().is_video(&m.video) {
            return Ok(());
        }
        let indexed = match &m.index {
            Some(index) => self.indexed_opt(index).await?,
            None => None,
        };
        if m.may_delete(indexed.as_deref()) {
            self.delete(&m.video).await?;
        }
        Ok(())
    }

    /// Staging objects of earlier versions (which copied videos into place).
    async fn sweep_staging(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        self.sweep_prefix(&self.keys().staging_prefix(), cutoff)
            .await
    }

    /// Deletes every object under `prefix` older than `cutoff`.
    async fn sweep_prefix(&self, prefix: &str, cutoff: SystemTime) -> Result<usize, StoreError> {
        let old = self.old_keys(prefix, cutoff).await?;
        for key in &old {
            self.delete(key).await?;
        }
        Ok(old.len())
    }

    /// Unfinished multipart uploads of videos (and of staging objects).
    async fn sweep_uploads(&self, cutoff: SystemTime) -> Result<usize, StoreError> {
        let (mut key_marker, mut id_marker) = (None, None);
        let mut aborted = 0;
        loop {
            let listed = self
                .client()
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(self.keys().prefix())
                .set_key_marker(key_marker)
                .set_upload_id_marker(id_marker)
                .send()
                .await;
            let page = match listed {
                Ok(page) => page,
                Err(e) if status(&e) == Some(501) => {
                    tracing::info!(
                        "store cannot list multipart uploads; rely on the bucket's lifecycle rule"
                    );
                    return Ok(aborted);
                }
                Err(e) => return Err(fail("list multipart uploads", e)),
            };
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id())
                    && older(u.initiated(), cutoff)
                    && (self.keys().is_video(key) || key.starts_with(&self.keys().staging_prefix()))
                {
                    abort(self.client(), self.bucket(), key, id).await?;
                    aborted += 1;
                }
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if page.is_truncated() != Some(true) || (key_marker.is_none() && id_marker.is_none()) {
                return Ok(aborted);
            }
        }
    }
}
