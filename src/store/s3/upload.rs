//! A video streamed into the store once, under a key chosen at the start:
//! a multipart upload of equal parts (R2's rule), a few in flight, marked
//! by a pending marker; at the end completed and claimed in the content
//! index, or aborted (a failure or a drop). A video that fits in one part
//! is one `PUT`, after a look in the index (its hash is known by then).

use anyhow::{Context, anyhow};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;

use super::index::{Claim, Marker};
use super::{CACHE_CONTROL, PARTS_IN_FLIGHT, S3Store, abort, complete, fail};
use crate::media::Format;
use crate::store::{StoreError, Stored};

/// A video being uploaded.
pub struct S3Upload {
    store: S3Store,
    workspace: String,
    format: Format,
    /// Names the upload: its video key and its marker.
    id: String,
    part_size: usize,
    buf: BytesMut,
    /// Created on the first full part.
    multipart: Option<Multipart>,
    total: u64,
    /// A marker was written: what is left after a failure needs settling.
    marked: bool,
    /// The claim began: the index may name this copy, which is then never
    /// deleted here (the sweep decides, from the marker).
    claiming: bool,
}

struct Multipart {
    key: String,
    upload_id: String,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, StoreError>>,
    done: Vec<CompletedPart>,
    /// Set once completed or aborted; otherwise dropping aborts.
    settled: bool,
    /// `complete` was sent: a drop from now on may leave a whole object,
    /// so the marker stays for the sweep to settle.
    completing: bool,
}

impl std::fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Upload")
            .field("video", &self.video_key())
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    pub(super) fn new(store: S3Store, workspace: &str, format: Format, part_size: usize) -> Self {
        S3Upload {
            store,
            workspace: workspace.to_string(),
            format,
            id: uuid::Uuid::now_v7().simple().to_string(),
            part_size,
            buf: BytesMut::new(),
            multipart: None,
            total: 0,
            marked: false,
            claiming: false,
        }
    }

    fn video_key(&self) -> String {
        (self.store.keys()).video(&self.workspace, &self.id, self.format.ext())
    }

    fn index_key(&self, sha256: &str) -> String {
        (self.store.keys()).index(&self.workspace, sha256, self.format.ext())
    }

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

    /// Marks the upload and starts the multipart upload under the video key.
    async fn start(&mut self) -> Result<(), StoreError> {
        let key = self.video_key();
        let marker = Marker::uploading(&key);
        self.store.put_marker(&self.id, &marker).await?;
        self.marked = true;
        let created = self
            .store
            .client()
            .create_multipart_upload()
            .bucket(self.store.bucket())
            .key(&key)
            .content_type(self.format.content_type())
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
            completing: false,
        });
        Ok(())
    }

    /// Starts uploading one part, waiting while too many are in flight.
    async fn send_part(&mut self, part: Bytes) -> Result<(), StoreError> {
        if self.multipart.is_none() {
            self.start().await?;
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

    /// Completes the upload of bytes whose SHA-256 is `sha256`.
    pub(crate) async fn finish(mut self, sha256: &str) -> Result<Stored, StoreError> {
        let result = match self.multipart.is_some() {
            true => self.finish_multipart(sha256).await,
            false => self.finish_single(sha256).await,
        };
        if result.is_err() {
            self.abort_now().await;
        }
        result
    }

    /// The whole video fit in one part: its hash is known before it is
    /// written, so a duplicate costs no write at all.
    async fn finish_single(&mut self, sha256: &str) -> Result<Stored, StoreError> {
        let store = self.store.clone();
        let index = self.index_key(sha256);
        if let Some(existing) = store.indexed_opt(&index).await? {
            return Ok(store.stored(existing, false));
        }
        let video = self.video_key();
        let marker = Marker::complete(&video, &index);
        store.put_marker(&self.id, &marker).await?;
        self.marked = true;
        let bytes = self.buf.split().freeze();
        store
            .put_unique(&video, bytes, self.format.content_type())
            .await?;
        self.settle(&video, &index).await
    }

    async fn finish_multipart(&mut self, sha256: &str) -> Result<Stored, StoreError> {
        if !self.buf.is_empty() {
            let last = self.buf.split().freeze();
            self.send_part(last).await?;
        }
        let store = self.store.clone();
        let Some(m) = self.multipart.as_mut() else {
            return Err(StoreError(anyhow!("multipart upload missing")));
        };
        while !m.in_flight.is_empty() {
            m.collect_one().await?;
        }
        let done = std::mem::take(&mut m.done);
        m.completing = true;
        complete(store.client(), store.bucket(), &m.key, &m.upload_id, done).await?;
        m.settled = true;
        let video = m.key.clone();
        let index = self.index_key(sha256);
        store
            .put_marker(&self.id, &Marker::complete(&video, &index))
            .await?;
        self.settle(&video, &index).await
    }

    /// Claims the index for `video`; a writer whose claim finds another
    /// copy named deletes its own (which the index never named). Then the
    /// marker goes.
    async fn settle(&mut self, video: &str, index: &str) -> Result<Stored, StoreError> {
        self.claiming = true;
        let store = &self.store;
        let stored = match store.claim(index, video, &self.id).await? {
            Claim::Mine => store.stored(video.to_string(), true),
            Claim::Theirs(other) => {
                store.delete(video).await?;
                store.stored(other, false)
            }
        };
        store.delete_marker(&self.id).await?;
        Ok(stored)
    }

    pub(crate) async fn abort(mut self) {
        self.abort_now().await;
    }

    async fn abort_now(&mut self) {
        let store = self.store.clone();
        if let Some(m) = self.multipart.as_mut()
            && !m.settled
        {
            m.in_flight.abort_all();
            while m.in_flight.join_next().await.is_some() {}
            if let Err(e) = abort(store.client(), store.bucket(), &m.key, &m.upload_id).await {
                tracing::warn!(key = %m.key, error = %e, "could not abort a multipart upload; the sweep will");
            }
            m.settled = true;
        }
        // What remains (a completed object not yet indexed) is the sweep's,
        // guided by the marker.
        if self.marked
            && self.multipart.as_ref().is_none_or(|m| m.settled)
            && let Err(e) = self.settle_leftovers().await
        {
            tracing::warn!(error = %e, "could not clean up after a failed upload; the sweep will");
        }
    }

    /// After a failure: removes this upload's object unless the index may
    /// name it (the claim began, the marker says so or is gone:
    /// [`Marker::may_delete`]), then its marker. A copy kept this way is
    /// at worst an unreferenced object, never a dangling URL.
    async fn settle_leftovers(&self) -> Result<(), StoreError> {
        let video = self.video_key();
        let marker = self
            .store
            .read_marker(&self.store.keys().pending(&self.id))
            .await?;
        let Some(marker) = marker.filter(|_| !self.claiming) else {
            return self.store.delete_marker(&self.id).await;
        };
        let indexed = match &marker.index {
            Some(index) => self.store.indexed_opt(index).await?,
            None => None,
        };
        if marker.may_delete(indexed.as_deref()) {
            self.store.delete(&video).await?;
        }
        self.store.delete_marker(&self.id).await
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
        let store = self.store.clone();
        let (key, upload_id, id) = (m.key.clone(), m.upload_id.clone(), self.id.clone());
        // Dropped while `complete` was in flight, the object may exist whole:
        // its marker stays, and the sweep settles it (never claimed: deleted).
        let unmark = !m.completing;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            self.store.inner.cleanups.spawn_on(
                async move {
                    let aborted = abort(store.client(), store.bucket(), &key, &upload_id).await;
                    let unmarked = match unmark {
                        true => store.delete_marker(&id).await,
                        false => Ok(()),
                    };
                    if let Err(e) = aborted.and(unmarked) {
                        tracing::warn!(%key, error = %e, "could not abort a dropped upload; the sweep will");
                    }
                },
                &handle,
            );
        }
    }
}
