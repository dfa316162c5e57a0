//! Object keys, and the names of rehost's own bookkeeping objects, which no
//! workspace key can collide with (a workspace named `.rehost` owns
//! `.rehost/{2 hex}/...` and `.rehost/v/...`, never `.rehost/index/` or
//! `.rehost/pending/`).

/// Builds keys under `REHOST_KEY_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// Below the prefix: the content index of S3 videos.
pub const INDEX_DIR: &str = ".rehost/index/";
/// Below the prefix: markers of S3 video uploads in progress.
pub const PENDING_DIR: &str = ".rehost/pending/";
/// Below the prefix: staging objects of earlier versions (swept, never written).
pub const STAGING_DIR: &str = ".rehost/staging/";
/// Below the prefix: the public-URL probe's objects (one at a time, deleted
/// after each probe; old ones swept).
pub const PROBE_DIR: &str = ".rehost/probe/";

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// `{prefix}{workspace_id}/{sha[0..2]}/{sha}.{ext}`: images, and every
    /// asset in the directory store. `workspace_id` must have passed the
    /// job's identifier check and `sha` be lowercase hex.
    pub fn object(&self, workspace_id: &str, sha: &str, ext: &str) -> String {
        let shard = sha.get(..2).unwrap_or(sha);
        format!("{}{workspace_id}/{shard}/{sha}.{ext}", self.prefix)
    }

    /// `{prefix}{workspace_id}/v/{id}.{ext}`: an S3 video, written once under
    /// a key chosen before its content is known.
    pub fn video(&self, workspace_id: &str, id: &str, ext: &str) -> String {
        format!("{}{workspace_id}/v/{id}.{ext}", self.prefix)
    }

    /// `{prefix}.rehost/index/{workspace_id}/{sha}.{ext}`: names the video
    /// key that holds these bytes in this workspace (first writer wins).
    pub fn index(&self, workspace_id: &str, sha: &str, ext: &str) -> String {
        format!("{}{INDEX_DIR}{workspace_id}/{sha}.{ext}", self.prefix)
    }

    /// The prefix of upload markers (for sweeps).
    pub fn pending_prefix(&self) -> String {
        format!("{}{PENDING_DIR}", self.prefix)
    }

    /// `{prefix}.rehost/pending/{id}`: marks the upload of video `id`
    /// until it is settled, so a killed worker's leftovers can be found.
    pub fn pending(&self, id: &str) -> String {
        format!("{}{id}", self.pending_prefix())
    }

    /// Whether `key` is an S3 video key of this prefix (for upload sweeps).
    pub fn is_video(&self, key: &str) -> bool {
        key.strip_prefix(&self.prefix)
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(_, rest)| rest.starts_with("v/"))
    }

    /// The prefix of the public-URL probe's objects.
    pub fn probe_prefix(&self) -> String {
        format!("{}{PROBE_DIR}", self.prefix)
    }

    /// `{prefix}.rehost/probe/{id}.png`: one probe's object.
    pub fn probe(&self, id: &str) -> String {
        format!("{}{id}.png", self.probe_prefix())
    }

    /// The prefix of staging objects of earlier versions.
    pub fn staging_prefix(&self) -> String {
        format!("{}{STAGING_DIR}", self.prefix)
    }

    /// Everything below the prefix (for listing uploads).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_follow_the_contract() {
        let sha = "3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b";
        assert_eq!(
            Keys::new("").object("ws_prod_01", sha, "jpg"),
            format!("ws_prod_01/3a/{sha}.jpg")
        );
        assert_eq!(
            Keys::new("media/").object("w", sha, "mp4"),
            format!("media/w/3a/{sha}.mp4")
        );
        let k = Keys::new("p/");
        assert_eq!(k.video("w", "0193", "mp4"), "p/w/v/0193.mp4");
        assert_eq!(
            k.index("w", sha, "mp4"),
            format!("p/.rehost/index/w/{sha}.mp4")
        );
        assert_eq!(k.pending("0193"), "p/.rehost/pending/0193");
        assert!(k.is_video("p/w/v/0193.mp4"));
        assert!(!k.is_video("p/w/3a/x.mp4") && !k.is_video("q/w/v/x.mp4"));
    }
}
