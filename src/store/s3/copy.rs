//! Server-side copies of a staging object to its content key: one
//! `CopyObject`, or `UploadPartCopy` parts above the single-copy limit.

use std::time::Duration;

use anyhow::Context;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::types::{CompletedPart, MetadataDirective};

use super::{CACHE_CONTROL, S3Store, abort, complete, fail};
use crate::store::{StoreError, parts};

impl S3Store {
    /// Copies `from` to `to` server-side (in parts above the single-copy limit).
    pub(super) async fn copy(
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
