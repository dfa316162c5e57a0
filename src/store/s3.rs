//! The S3 store (Cloudflare R2, MinIO, AWS) through aws-sdk-s3.
//!
//! - The client is built from the settings alone (never `~/.aws`), with
//!   checksums `WhenRequired` for R2 and other S3-compatible stores.
//! - Images (bounded): `HEAD` the final key and skip the upload when it
//!   exists; otherwise one `PUT` with `If-None-Match: *`, so a concurrent
//!   duplicate is refused rather than rewritten.
//! - Videos: the final key depends on a hash known only at the end, so
//!   bytes stream into a multipart upload under a staging key
//!   (`{prefix}.rehost/staging/{id}`) while they download, several parts in
//!   flight. At the end: if the final key exists the upload is aborted
//!   (dedup); else it is completed and copied server-side to the final key,
//!   and the staging object deleted. A video that fits in one part is `PUT`
//!   straight to its final key.
//! - Every failure aborts the multipart upload; a dropped upload (deadline,
//!   shutdown) aborts in the background. A sweep at start removes staging
//!   objects and unfinished uploads older than a cutoff, and the README gives
//!   the bucket lifecycle rule that does the same.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use bytes::{Bytes, BytesMut};
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use super::parts::{self, DEFAULT_PART};
use super::{Keys, StoreError, Swept};
use crate::config::S3Config;

/// Every object is immutable: its key is its content.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// Parts uploading at once per video (memory: this many parts plus one filling).
pub const PARTS_IN_FLIGHT: usize = 3;
/// Largest object a single `CopyObject` may copy; bigger ones are copied in parts.
const MAX_COPY: u64 = 5 * 1024 * 1024 * 1024;

#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    bucket: String,
    public_base: String,
    keys: Keys,
    /// Background aborts of dropped uploads, awaited at shutdown.
    cleanups: TaskTracker,
    /// Largest object copied with one `CopyObject` (lowered in tests).
    max_copy: u64,
    /// Size assumed for part planning when a video's length is unknown.
    max_object: u64,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.inner.bucket)
            .field("public_base", &self.inner.public_base)
            .finish_non_exhaustive()
    }
}

/// A video being uploaded under a staging key.
pub struct S3Upload {
    store: S3Store,
    content_type: String,
    part_size: usize,
    buf: BytesMut,
    /// Created on the first full part.
    multipart: Option<Multipart>,
    total: u64,
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

/// The error, with the service's code and message when it has one.
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("unknown");
            let msg = err.message().unwrap_or("");
            format!("{code} {msg}").trim().to_string()
        }
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                "timed out".into()
            } else {
                format!(
                    "cannot reach the endpoint: {}",
                    crate::fetch::error_chain(e)
                )
            }
        }
        other => crate::fetch::error_chain(other),
    }
}

fn status<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

fn fail<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError(anyhow!("{what}: {}", describe(&e)))
}

impl S3Store {
    pub(super) fn new(cfg: &S3Config, keys: Keys, max_object: u64) -> Self {
        // No byte for 30 s fails a request; a whole request has no cap of its
        // own (an 8 MiB part on a slow link, or a server-side copy of a large
        // video, may take minutes) beyond the job's deadline.
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(30))
            .build();
        let mut conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .force_path_style(cfg.force_path_style)
            .credentials_provider(Credentials::new(
                cfg.access_key_id.clone(),
                cfg.secret_access_key.clone(),
                None,
                None,
                "rehost-settings",
            ))
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(timeouts);
        if let Some(endpoint) = &cfg.endpoint {
            conf = conf.endpoint_url(endpoint);
        }
        S3Store {
            inner: Arc::new(Inner {
                client: Client::from_conf(conf.build()),
                bucket: cfg.bucket.clone(),
                public_base: cfg.public_base.trim_end_matches('/').to_string(),
                keys,
                cleanups: TaskTracker::new(),
                max_copy: MAX_COPY,
                max_object,
            }),
        }
    }

    /// Lowers the single-copy limit so tests can exercise multipart copies.
    #[doc(hidden)]
    pub fn with_max_copy(self, max_copy: u64) -> Self {
        let inner = &self.inner;
        S3Store {
            inner: Arc::new(Inner {
                client: inner.client.clone(),
                bucket: inner.bucket.clone(),
                public_base: inner.public_base.clone(),
                keys: inner.keys.clone(),
                cleanups: TaskTracker::new(),
                max_copy,
                max_object: inner.max_object,
            }),
        }
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(super) fn public_url(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.public_base)
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// Whether `key` exists.
    pub(super) async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        match self
            .client()
            .head_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(fail(&format!("HEAD {key}"), e)),
        }
    }

    pub(super) async fn put_bytes(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<bool, StoreError> {
        if self.exists(key).await? {
            return Ok(false);
        }
        // `Bytes` clones share the buffer: retrying costs no copy.
        let put = |conditional: bool| {
            self.client()
                .put_object()
                .bucket(self.bucket())
                .key(key)
                .content_type(content_type)
                .cache_control(CACHE_CONTROL)
                .content_length(bytes.len() as i64)
                .set_if_none_match(conditional.then(|| "*".to_string()))
                .body(ByteStream::from(bytes.clone()))
                .send()
        };
        match put(true).await {
            Ok(_) => Ok(true),
            // Someone stored the same content first.
            Err(e) if status(&e) == Some(412) => Ok(false),
            // Stores without conditional PUT: the key is the content, so an
            // unconditional write of the same bytes is still safe.
            Err(e) if status(&e) == Some(501) => {
                tracing::warn!(key, "store refuses If-None-Match; writing unconditionally");
                put(false)
                    .await
                    .map_err(|e| fail(&format!("PUT {key}"), e))?;
                Ok(true)
            }
            Err(e) => Err(fail(&format!("PUT {key}"), e)),
        }
    }

    pub(super) fn begin(&self, content_type: &str, size_hint: Option<u64>) -> S3Upload {
        let part =
            parts::part_size(size_hint.unwrap_or(self.inner.max_object)).unwrap_or(DEFAULT_PART);
        let part_size = usize::try_from(part).unwrap_or(usize::MAX);
        S3Upload {
            store: self.clone(),
            content_type: content_type.to_string(),
            part_size,
            buf: BytesMut::new(),
            multipart: None,
            total: 0,
        }
    }

    pub(super) async fn check(&self) -> Result<(), StoreError> {
        match self
            .client()
            .head_bucket()
            .bucket(self.bucket())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let bucket = self.bucket();
                let why = match status(&e) {
                    Some(404) => format!("bucket {bucket:?} does not exist"),
                    Some(401 | 403) => format!(
                        "access to bucket {bucket:?} denied: check S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"
                    ),
                    Some(code) => format!("bucket {bucket:?} answered {code}: {}", describe(&e)),
                    None => describe(&e),
                };
                Err(StoreError(anyhow!(why)))
            }
        }
    }

    pub(super) async fn sweep(&self, age: Duration) -> Result<Swept, StoreError> {
        let prefix = self.keys().staging_prefix();
        let cutoff = std::time::SystemTime::now() - age;
        let old = |t: Option<&aws_sdk_s3::primitives::DateTime>| {
            t.and_then(|t| std::time::SystemTime::try_from(*t).ok())
                .is_some_and(|t| t < cutoff)
        };
        let mut swept = Swept::default();
        let mut token = None;
        loop {
            let page = self
                .client()
                .list_objects_v2()
                .bucket(self.bucket())
                .prefix(&prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| fail("list staging objects", e))?;
            for obj in page.contents() {
                if let Some(key) = obj.key()
                    && old(obj.last_modified())
                {
                    self.delete(key).await?;
                    swept.temp_objects += 1;
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let listed = self
                .client()
                .list_multipart_uploads()
                .bucket(self.bucket())
                .prefix(&prefix)
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
                    break;
                }
                Err(e) => return Err(fail("list multipart uploads", e)),
            };
            for u in page.uploads() {
                if let (Some(key), Some(id)) = (u.key(), u.upload_id())
                    && old(u.initiated())
                {
                    abort(self.client(), self.bucket(), key, id).await?;
                    swept.uploads += 1;
                }
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if page.is_truncated() != Some(true) || (key_marker.is_none() && id_marker.is_none()) {
                break;
            }
        }
        Ok(swept)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client()
            .delete_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await
            .map_err(|e| fail(&format!("DELETE {key}"), e))?;
        Ok(())
    }

    /// Waits (bounded) for background aborts of dropped uploads.
    pub(super) async fn wait_cleanups(&self, limit: Duration) {
        self.inner.cleanups.close();
        let _ = tokio::time::timeout(limit, self.inner.cleanups.wait()).await;
    }

    /// Copies `from` to `to` server-side (in parts above the single-copy limit).
    async fn copy(
        &self,
        from: &str,
        to: &str,
        size: u64,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let source = format!("{}/{from}", self.bucket());
        if size <= self.inner.max_copy {
            self.client()
                .copy_object()
                .bucket(self.bucket())
                .key(to)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Replace)
                .content_type(content_type)
                .cache_control(CACHE_CONTROL)
                .customize()
                .config_override(slow_answer())
                .send()
                .await
                .map_err(|e| fail(&format!("COPY {from} to {to}"), e))?;
            return Ok(());
        }
        let created = self
            .client()
            .create_multipart_upload()
            .bucket(self.bucket())
            .key(to)
            .content_type(content_type)
            .cache_control(CACHE_CONTROL)
            .send()
            .await
            .map_err(|e| fail("start multipart copy", e))?;
        let id = created.upload_id().context("no upload id")?.to_string();
        let part = parts::part_size(size).context("object too large to copy")?;
        let result = async {
            let mut done = Vec::new();
            let mut start = 0u64;
            for (i, len) in parts::plan(size, part).into_iter().enumerate() {
                let n = i as i32 + 1;
                let out = self
                    .client()
                    .upload_part_copy()
                    .bucket(self.bucket())
                    .key(to)
                    .upload_id(&id)
                    .part_number(n)
                    .copy_source(&source)
                    .copy_source_range(format!("bytes={start}-{}", start + len - 1))
                    .customize()
                    .config_override(slow_answer())
                    .send()
                    .await
                    .map_err(|e| fail("copy part", e))?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .unwrap_or_default();
                done.push(CompletedPart::builder().part_number(n).e_tag(etag).build());
                start += len;
            }
            complete(self.client(), self.bucket(), to, &id, done).await
        }
        .await;
        if result.is_err() {
            let _ = abort(self.client(), self.bucket(), to, &id).await;
        }
        result
    }
}

/// Server-side copies answer only when done: allow a long wait for the answer.
fn slow_answer() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::config::Builder::default().timeout_config(
        TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(900))
            .build(),
    )
}

async fn abort(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), StoreError> {
    client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .map_err(|e| fail(&format!("abort upload of {key}"), e))?;
    Ok(())
}

async fn complete(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    mut done: Vec<CompletedPart>,
) -> Result<(), StoreError> {
    done.sort_by_key(|p| p.part_number());
    client
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .map_err(|e| fail(&format!("complete upload of {key}"), e))?;
    Ok(())
}

impl S3Upload {
    pub(super) async fn write(&mut self, mut chunk: Bytes) -> Result<(), StoreError> {
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

    pub(super) async fn finish(mut self, key: &str) -> Result<bool, StoreError> {
        let result = self.finish_inner(key).await;
        if result.is_err() {
            self.abort_now().await;
        }
        result
    }

    async fn finish_inner(&mut self, key: &str) -> Result<bool, StoreError> {
        let store = self.store.clone();
        if self.multipart.is_none() {
            // The whole video fit in one part: no staging needed.
            let bytes = self.buf.split().freeze();
            return store.put_bytes(key, bytes, &self.content_type).await;
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

    pub(super) async fn abort(mut self) {
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
