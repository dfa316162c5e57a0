//! Leftovers of killed workers: staging objects and unfinished uploads older
//! than a cutoff (younger ones may belong to live workers).

use std::time::Duration;

use super::{S3Store, abort, fail, status};
use crate::store::{StoreError, Swept};

impl S3Store {
    pub(crate) async fn sweep(&self, age: Duration) -> Result<Swept, StoreError> {
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
}
