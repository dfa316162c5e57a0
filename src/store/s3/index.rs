//! The content index of S3 videos and the markers of uploads in progress.
//!
//! A video is written once under a key chosen at the start
//! (`{ws}/v/{id}.{ext}`). When its hash is known, the index object
//! `.rehost/index/{ws}/{sha}.{ext}` is written with `If-None-Match: *`: the
//! first writer wins and its key is the content's one URL; a later writer
//! of the same bytes deletes its own copy and reports the winner's. A
//! marker (`.rehost/pending/{id}`) lives from before the upload starts
//! until the index is settled, so the sweep can tell a killed worker's
//! leftovers (no marker: settled) from live uploads.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{S3Store, fail, status};
use crate::store::StoreError;

/// What a marker records: the video key, and once complete, the index key
/// that should name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    pub video: String,
    pub index: Option<String>,
}

impl Marker {
    fn encode(&self) -> Bytes {
        match &self.index {
            Some(index) => Bytes::from(format!("{}\n{index}\n", self.video)),
            None => Bytes::from(format!("{}\n", self.video)),
        }
    }

    fn decode(text: &str) -> Option<Marker> {
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let video = lines.next()?.to_string();
        Some(Marker {
            video,
            index: lines.next().map(str::to_string),
        })
    }
}

impl S3Store {
    /// Writes (or rewrites) the marker of upload `id`.
    pub(super) async fn put_marker(&self, id: &str, marker: &Marker) -> Result<(), StoreError> {
        let key = self.keys().pending(id);
        self.client()
            .put_object()
            .bucket(self.bucket())
            .key(&key)
            .content_type("text/plain")
            .body(ByteStream::from(marker.encode()))
            .send()
            .await
            .map_err(|e| fail(&format!("PUT {key}"), e))?;
        Ok(())
    }

    /// Reads a marker (`None` when it is gone or unreadable).
    pub(super) async fn read_marker(&self, key: &str) -> Result<Option<Marker>, StoreError> {
        Ok(self
            .get_text(key)
            .await?
            .and_then(|text| Marker::decode(&text)))
    }

    pub(super) async fn delete_marker(&self, id: &str) -> Result<(), StoreError> {
        self.delete(&self.keys().pending(id)).await
    }

    /// Makes `video` the object for the index entry `index` unless another
    /// writer did first; returns the key that holds the content.
    pub(super) async fn claim(&self, index: &str, video: &str) -> Result<String, StoreError> {
        let put = |conditional: bool| {
            self.client()
                .put_object()
                .bucket(self.bucket())
                .key(index)
                .content_type("text/plain")
                .set_if_none_match(conditional.then(|| "*".to_string()))
                .body(ByteStream::from(Bytes::from(video.to_string())))
                .send()
        };
        if self.conditional_puts().await {
            return match put(true).await {
                Ok(_) => Ok(video.to_string()),
                Err(e) if status(&e) == Some(412) => self.indexed(index).await,
                Err(e) => Err(fail(&format!("PUT {index}"), e)),
            };
        }
        // The store ignores If-None-Match: write, then read back who won
        // (a rare concurrent duplicate may then keep two copies; never a
        // broken URL).
        if let Some(winner) = self.indexed_opt(index).await? {
            return Ok(winner);
        }
        put(false)
            .await
            .map_err(|e| fail(&format!("PUT {index}"), e))?;
        self.indexed(index).await
    }

    /// The video key an index entry names.
    pub(super) async fn indexed(&self, index: &str) -> Result<String, StoreError> {
        self.indexed_opt(index)
            .await?
            .ok_or_else(|| StoreError(anyhow::anyhow!("index {index} vanished")))
    }

    /// The video key an index entry names, if it exists.
    pub(super) async fn indexed_opt(&self, index: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .get_text(index)
            .await?
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// A small text object, or `None` when it does not exist.
    async fn get_text(&self, key: &str) -> Result<Option<String>, StoreError> {
        let got = self
            .client()
            .get_object()
            .bucket(self.bucket())
            .key(key)
            .send()
            .await;
        let obj = match got {
            Ok(o) => o,
            Err(e) if status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(fail(&format!("GET {key}"), e)),
        };
        let body = obj
            .body
            .collect()
            .await
            .map_err(|e| StoreError(anyhow::anyhow!("GET {key}: {e}")))?;
        Ok(Some(
            String::from_utf8_lossy(&body.into_bytes()).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip() {
        let m = Marker {
            video: "w/v/1.mp4".into(),
            index: None,
        };
        assert_eq!(
            Marker::decode(&String::from_utf8_lossy(&m.encode())),
            Some(m)
        );
        let m = Marker {
            video: "w/v/1.mp4".into(),
            index: Some(".rehost/index/w/ab.mp4".into()),
        };
        assert_eq!(
            Marker::decode(&String::from_utf8_lossy(&m.encode())),
            Some(m)
        );
        assert_eq!(Marker::decode(""), None);
    }
}
