//! The S3 store (Cloudflare R2, MinIO, AWS) through aws-sdk-s3.
//!
//! - The client is built from the settings alone (never `~/.aws`), with
//!   checksums `WhenRequired` for R2 and other S3-compatible stores.
//! - Images (bounded): `HEAD` the final key and skip the upload when it
//!   exists; otherwise one `PUT` with `If-None-Match: *`, so a concurrent
//!   duplicate is refused rather than rewritten.
//! - Videos are written once, while they download: a key is chosen before
//!   the content is known (`{prefix}{ws}/v/{id}.{ext}`) and the bytes stream
//!   into a multipart upload there, several parts in flight (a video that
//!   fits in one part is one `PUT`). When the hash is known, the content
//!   index ([`index`]) makes the first writer of those bytes their one key;
//!   a later writer deletes its copy. Nothing is copied server-side.
//! - Every failure aborts the multipart upload; a dropped upload (deadline,
//!   shutdown) aborts in the background. A sweep at start settles what
//!   killed workers left (upload markers, unfinished uploads, staging
//!   objects of earlier versions) older than a cutoff, and the README gives
//!   the bucket lifecycle rule for unfinished uploads.
//! - Whether the store honours `If-None-Match: *` is probed (a second
//!   conditional `PUT` must get 412) until the probe gives a definite
//!   answer: 412 (honoured), or a 200 or 501 (ignored). Where it is ignored
//!   (Garage) or not known yet, the index is claimed by a read, then an
//!   unconditional write, and a writer never deletes a copy it may have
//!   named in the index: two objects for the same bytes are then possible,
//!   a URL to a deleted one never is.

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use tokio_util::task::TaskTracker;

use super::parts::{self, DEFAULT_PART};
use super::{Content, Keys, StoreError, Stored};
use crate::config::S3Config;
use crate::media::Format;

mod index;
mod sweep;
mod upload;
pub use upload::S3Upload;

/// Every object is immutable: its key is its content.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
pub use crate::bounds::PARTS_IN_FLIGHT;

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
    /// Size assumed for part planning when a video's length is unknown.
    max_object: u64,
    /// Whether the store honours `If-None-Match: *`, once a probe gave a
    /// definite answer.
    conditional: std::sync::OnceLock<bool>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.inner.bucket)
            .field("public_base", &self.inner.public_base)
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
                    crate::error::error_chain(e)
                )
            }
        }
        other => crate::error::error_chain(other),
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
                max_object,
                conditional: std::sync::OnceLock::new(),
            }),
        }
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    pub(super) fn stored(&self, key: String, new: bool) -> Stored {
        Stored {
            url: format!("{}/{key}", self.inner.public_base),
            key,
            new,
        }
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

    pub(super) async fn put(&self, c: Content<'_>, bytes: Bytes) -> Result<Stored, StoreError> {
        let key = self.keys().object(c.workspace, c.sha256, c.format.ext());
        let new = self.put_new(&key, bytes, c.format.content_type()).await?;
        Ok(self.stored(key, new))
    }

    /// Writes `bytes` under `key` unless it exists; whether anything was
    /// written. The key is the content, so where the store refuses or
    /// ignores `If-None-Match` an unconditional write of the same bytes is
    /// just as safe.
    pub(super) async fn put_new(
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
        let conditional = self.inner.conditional.get() != Some(&false);
        match put(conditional).await {
            Ok(_) => Ok(true),
            // Someone stored the same content first.
            Err(e) if conditional && status(&e) == Some(412) => Ok(false),
            Err(e) if conditional && matches!(status(&e), Some(400 | 501)) => {
                tracing::warn!(key, "store refuses If-None-Match; writing unconditionally");
                put(false)
                    .await
                    .map_err(|e| fail(&format!("PUT {key}"), e))?;
                Ok(true)
            }
            Err(e) => Err(fail(&format!("PUT {key}"), e)),
        }
    }

    pub(super) fn public_base(&self) -> &str {
        &self.inner.public_base
    }

    /// The public-URL probe's object: `image/png`, never cached.
    pub(super) async fn put_probe(&self, id: &str, bytes: Bytes) -> Result<String, StoreError> {
        let key = self.keys().probe(id);
        self.client()
            .put_object()
            .bucket(self.bucket())
            .key(&key)
            .content_type("image/png")
            .cache_control("no-store")
            .content_length(bytes.len() as i64)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| fail(&format!("PUT {key}"), e))?;
        Ok(key)
    }

    pub(super) async fn delete_probe(&self, key: &str) -> Result<(), StoreError> {
        self.delete(key).await
    }

    /// Writes a new object under a key no one else writes (a video's).
    pub(super) async fn put_unique(
        &self,
        key: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<(), StoreError> {
        self.client()
            .put_object()
            .bucket(self.bucket())
            .key(key)
            .content_type(content_type)
            .cache_control(CACHE_CONTROL)
            .content_length(bytes.len() as i64)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| fail(&format!("PUT {key}"), e))?;
        Ok(())
    }

    pub(super) fn begin(
        &self,
        workspace: &str,
        format: Format,
        size_hint: Option<u64>,
    ) -> S3Upload {
        let part =
            parts::part_size(size_hint.unwrap_or(self.inner.max_object)).unwrap_or(DEFAULT_PART);
        let part_size = usize::try_from(part).unwrap_or(usize::MAX);
        S3Upload::new(self.clone(), workspace, format, part_size)
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

    /// Whether the store honours `If-None-Match: *`: `Some` once a probe
    /// answered definitely (then never probed again), `None` while unknown
    /// (a transport error, or an answer such as 400 that says nothing
    /// about it): the caller then takes the path that is safe either way.
    pub(super) async fn conditional_puts(&self) -> Option<bool> {
        if let Some(v) = self.inner.conditional.get() {
            return Some(*v);
        }
        match self.probe_conditional().await {
            Ok(Some(honoured)) => {
                if !honoured {
                    tracing::warn!(
                        "the store ignores If-None-Match; a video written by two workers at once may be stored twice"
                    );
                }
                Some(*self.inner.conditional.get_or_init(|| honoured))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(error = %e, "cannot probe conditional PUT yet");
                None
            }
        }
    }

    /// Two conditional `PUT`s of a fresh probe object: the second's 412
    /// means honoured; its success, or a 501 to either, means ignored;
    /// anything else is no answer (`None`).
    async fn probe_conditional(&self) -> Result<Option<bool>, StoreError> {
        let key = self
            .keys()
            .pending(&format!("probe-{}", uuid::Uuid::new_v4().simple()));
        let put = || {
            self.client()
                .put_object()
                .bucket(self.bucket())
                .key(&key)
                .if_none_match("*")
                .body(ByteStream::from(Bytes::from_static(b"probe")))
                .send()
        };
        let answer = match put().await {
            Err(e) if status(&e) == Some(501) => Some(false),
            Err(e) if status(&e).is_some() => None,
            Err(e) => return Err(fail("probe conditional PUT", e)),
            Ok(_) => match put().await {
                Err(e) if status(&e) == Some(412) => Some(true),
                Ok(_) => Some(false),
                Err(e) if status(&e) == Some(501) => Some(false),
                Err(_) => None,
            },
        };
        // The probe object may not exist (refused): a failed delete is fine.
        let _ = self.delete(&key).await;
        Ok(answer)
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
