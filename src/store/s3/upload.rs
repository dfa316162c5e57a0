//! A video streamed into a multipart upload under a staging key: equal
//! parts (R2's rule), a few in flight, then completed and copied to its
//! content key, or aborted (a failure, a duplicate, or a drop).

use anyhow::{Context, anyhow};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::{CACHE_CONTROL, PARTS_IN_FLIGHT, S3Store, abort, complete, fail};
use crate::media::Format;
use crate::store::{StoreError, Stored};

/// A video being uploaded under a staging key.
pub struct S3Upload {
    store: S3Store,
    workspace: String,
    format: Format,
    content_type: String,
    part_size: usize,
    buf: BytesMut,
    /// Created on the first full part.
    multipart: Option<Multipart>,
    total: u64,
}

impl S3Upload {
    pub(super) fn new(store: S3Store, workspace: &str, format: Format, part_size: usize) -> Self {
        S3Upload {
            store,
            workspace: workspace.to_string(),
            format,
            content_type: format.content_type().to_string(),
            part_size,
            buf: BytesMut::new(),
            multipart: None,
            total: 0,
        }
    }
}

struct Multipart {
    key: String,
    upload_id: String,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, StoreError>>,
    done: Vec<CompletedPart>,
    /// Set once completed or aborted; otherwise dropping aborts.
    settled: bool,
}

impl std::fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Upload")
            .field("staging", &self.multipart.as_ref().map(|m| &m.key))
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    pub(crate) async fn write(&mut self, mut chunk: Bytes) -> Result<(), StoreError> {
        self.total += chunk.len() as u64;
        while !chunk.is_empty() {
            if self.buf.capacity() == 0 {
                // One allocation per part, not a doubling series of them.
                self.buf.reserve(self.part_size);
            }
            let room = self.part_size - self.buf.len();
            let take = room.min(chunk.len());
            self.buf.extend_from_slice(&chunk.split_to(take));
            if self.buf.len() == self.part_size {
                let part = self.buf.split().freeze();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    /// Starts uploading one part, waiting while too many are in flight.
    async fn send_part(&mut self, part: Bytes) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            let key = self.store.keys().staging();
            let created = self
                .store
                .client()
                .create_multipart_upload()
                .bucket(self.store.bucket())
                .key(&key)
                .content_type(&self.content_type)
                .cache_control(CACHE_CONTROL)
                .send()
                .await
                .map_err(|e| fail("start multipart upload", e))?;
            let upload_id = created.upload_id().context("no upload id")?.to_string();
            self.multipart = Some(Multipart {
                key,
                upload_id,
                next_part: 1,
                in_flight: JoinSet::new(),
                done: Vec::new(),
                settled: false,
            });
        }
        let Some(m) = self.multipart.as_mut() else {
            return Err(StoreError(anyhow!("multipart upload missing")));
        };
        while m.in_flight.len() >= PARTS_IN_FLIGHT {
            m.collect_one().await?;
        }
        let n = m.next_part;
        m.next_part += 1;
        let req = self
            .store
            .client()
            .upload_part()
            .bucket(self.store.bucket())
            .key(&m.key)
            .upload_id(&m.upload_id)
            .part_number(n)
            .content_length(part.len() as i64)
            .body(ByteStream::from(part));
        m.in_flight.spawn(async move {
            let out = req
                .send()
                .await
                .map_err(|e| fail(&format!("upload part {n}"), e))?;
            Ok(CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap_or_default())
                .build())
        });
        Ok(())
    }

    pub(crate) async fn finish(mut self, sha256: &str) -> Result<Stored, StoreError> {
        let key = (self.store.keys()).object(&self.workspace, sha256, self.format.ext());
        let result = self.finish_inner(&key).await;
        if result.is_err() {
            self.abort_now().await;
        }
        result.map(|new| self.store.stored(key, new))
    }

    async fn finish_inner(&mut self, key: &str) -> Result<bool, StoreError> {
        let store = self.store.clone();
        if self.multipart.is_none() {
            // The whole video fit in one part: no staging needed.
            let bytes = self.buf.split().freeze();
            return store.put_new(key, bytes, &self.content_type).await;
        }
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.send_part(last).await?;
        }
        let Some(m) = self.multipart.as_mut() else {
            return Err(StoreError(anyhow!("multipart upload missing")));
        };
        while !m.in_flight.is_empty() {
            m.collect_one().await?;
        }
        if store.exists(key).await? {
            // Identical bytes are already stored: nothing to keep.
            abort(store.client(), store.bucket(), &m.key, &m.upload_id).await?;
            m.settled = true;
            return Ok(false);
        }
        let done = std::mem::take(&mut m.done);
        complete(store.client(), store.bucket(), &m.key, &m.upload_id, done).await?;
        m.settled = true;
        let staging = m.key.clone();
        let copied = store
            .copy(&staging, key, self.total, &self.content_type)
            .await;
        let deleted = store.delete(&staging).await;
        copied?;
        deleted?;
        Ok(true)
    }

    pub(crate) async fn abort(mut self) {
        self.abort_now().await;
    }

    async fn abort_now(&mut self) {
        if let Some(m) = self.multipart.as_mut()
            && !m.settled
        {
            m.in_flight.abort_all();
            while m.in_flight.join_next().await.is_some() {}
            if let Err(e) = abort(
                self.store.client(),
                self.store.bucket(),
                &m.key,
                &m.upload_id,
            )
            .await
            {
                tracing::warn!(key = %m.key, error = %e, "could not abort a multipart upload; the sweep will");
            }
            m.settled = true;
        }
    }
}

impl Multipart {
    async fn collect_one(&mut self) -> Result<(), StoreError> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.done.push(part);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(join)) => Err(StoreError(anyhow!("part upload task failed: {join}"))),
            None => Ok(()),
        }
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        let Some(m) = self.multipart.as_mut() else {
            return;
        };
        if m.settled {
            return;
        }
        // Cancelled mid-way (job deadline, shutdown): abort in the background.
        m.in_flight.abort_all();
        let (client, bucket) = (self.store.client().clone(), self.store.bucket().to_string());
        let (key, id) = (m.key.clone(), m.upload_id.clone());
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            self.store.inner.cleanups.spawn_on(
                async move {
                    if let Err(e) = abort(&client, &bucket, &key, &id).await {
                        tracing::warn!(%key, error = %e, "could not abort a dropped upload; the sweep will");
                    }
                },
                &handle,
            );
        }
    }
}
