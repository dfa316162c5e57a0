//! The content index of S3 videos and the markers of uploads in progress.
//!
//! A video is written once under a key chosen at the start
//! (`{ws}/v/{id}.{ext}`). When its hash is known, the index object
//! `.rehost/index/{ws}/{sha}.{ext}` names the content's copy:
//!
//! Before any index write, the upload's marker says `claimed`: from then
//! on its copy may be named by the index, and a copy that may ever have
//! been named is never deleted, by its writer, the leftover settlement or
//! the sweep, so every URL anyone reported stays valid.
//!
//! - On a store that honours `If-None-Match: *`, the index is written with
//!   it: the first writer wins for good and its key is the content's one
//!   URL; a later writer of the same bytes deletes its own copy (which the
//!   index never named) and reports the winner's. A 412 that names our own
//!   key (the SDK retried a PUT whose first answer was lost) is ours.
//! - On a store that ignores it, or while that is not known, a writer
//!   reads the index first and reports the copy it names, deleting its own;
//!   if there is none, it writes the index unconditionally, then reports
//!   its own copy whatever the index says later. Two writers at once may
//!   leave two copies (allowed by contract v4).
//!   Test: `it::dedup::three_writers_of_one_video_never_leave_a_dangling_url`.
//!
//! A marker (`.rehost/pending/{id}`) lives from before the upload starts
//! until the index is settled, so the sweep can tell a killed worker's
//! leftovers (no marker: settled) from live uploads.

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{S3Store, fail, status};
use crate::store::StoreError;

/// What a marker records: the video key, once complete the index key that
/// should name it, and whether an unconditional index write may have named
/// it (then the video is never deleted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Marker {
    pub video: String,
    pub index: Option<String>,
    pub claimed: bool,
}

/// The marker line that says the index may name the video.
const CLAIMED: &str = "claimed";

impl Marker {
    pub(super) fn uploading(video: &str) -> Marker {
        Marker {
            video: video.to_string(),
            index: None,
            claimed: false,
        }
    }

    pub(super) fn complete(video: &str, index: &str) -> Marker {
        Marker {
            video: video.to_string(),
            index: Some(index.to_string()),
            claimed: false,
        }
    }

    fn encode(&self) -> Bytes {
        let mut text = format!("{}\n", self.video);
        if let Some(index) = &self.index {
            text.push_str(&format!("{index}\n"));
            if self.claimed {
                text.push_str(CLAIMED);
                text.push('\n');
            }
        }
        Bytes::from(text)
    }

    fn decode(text: &str) -> Option<Marker> {
        let mut lines = text.lines().filter(|l| !l.is_empty());
        let video = lines.next()?.to_string();
        let index = lines.next().map(str::to_string);
        Some(Marker {
            video,
            claimed: index.is_some() && lines.next() == Some(CLAIMED),
            index,
        })
    }

    /// Whether the video this marker names may be deleted, given the key
    /// the index names now: only if no index write of its own may have
    /// named it.
    pub(super) fn may_delete(&self, indexed: Option<&str>) -> bool {
        !self.claimed && indexed != Some(self.video.as_str())
    }
}

/// The claim's outcome when the index names `named`: ours if it names
/// our own copy.
fn theirs_or_mine(named: String, video: &str) -> Claim {
    if named == video {
        Claim::Mine
    } else {
        Claim::Theirs(named)
    }
}

/// Who holds the content after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    /// The claiming writer's own copy is the one to report (and keep).
    Mine,
    /// Another copy is named by the index: report it, delete our own.
    Theirs(String),
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

    /// Claims the index entry `index` for `video`, the upload `id`'s (see
    /// the module doc for the two paths).
    pub(super) async fn claim(
        &self,
        index: &str,
        video: &str,
        id: &str,
    ) -> Result<Claim, StoreError> {
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
        let conditional = self.conditional_puts().await == Some(true);
        let named = match conditional {
            true => None,
            false => self.indexed_opt(index).await?,
        };
        if let Some(named) = named {
            return Ok(theirs_or_mine(named, video));
        }
        let mut marker = Marker::complete(video, index);
        marker.claimed = true;
        self.put_marker(id, &marker).await?;
        if conditional {
            return match put(true).await {
                Ok(_) => Ok(Claim::Mine),
                Err(e) if status(&e) == Some(412) => {
                    Ok(theirs_or_mine(self.indexed(index).await?, video))
                }
                Err(e) => Err(fail(&format!("PUT {index}"), e)),
            };
        }
        put(false)
            .await
            .map_err(|e| fail(&format!("PUT {index}"), e))?;
        Ok(Claim::Mine)
    }

    /// The video key an index entry names.
    ///
    /// (See [`theirs_or_mine`] for what a claim makes of it.)
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

    fn round_trip(m: &Marker) -> Option<Marker> {
        Marker::decode(&String::from_utf8_lossy(&m.encode()))
    }

    #[test]
    fn markers_round_trip() {
        let m = Marker::uploading("w/v/1.mp4");
        assert_eq!(round_trip(&m), Some(m));
        let mut m = Marker::complete("w/v/1.mp4", ".rehost/index/w/ab.mp4");
        assert_eq!(round_trip(&m), Some(m.clone()));
        m.claimed = true;
        assert_eq!(round_trip(&m), Some(m));
        assert_eq!(Marker::decode(""), None);
        // Markers of earlier versions (two lines) read as unclaimed.
        let old = Marker::decode("w/v/1.mp4\n.rehost/index/w/ab.mp4\n").expect("marker");
        assert!(!old.claimed);
    }

    #[test]
    fn a_copy_the_index_may_have_named_is_never_deleted() {
        let m = Marker::complete("w/v/1.mp4", "i");
        assert!(m.may_delete(None), "never named, index empty");
        assert!(m.may_delete(Some("w/v/2.mp4")), "another copy won");
        assert!(!m.may_delete(Some("w/v/1.mp4")), "the index names it");
        let claimed = Marker { claimed: true, ..m };
        assert!(!claimed.may_delete(None));
        assert!(
            !claimed.may_delete(Some("w/v/2.mp4")),
            "overwritten since, but someone may have read it"
        );
    }
}
