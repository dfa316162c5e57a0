//! Object keys: content-addressed finals and staging names that no
//! workspace key can collide with.

/// Builds keys under `REHOST_KEY_PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// Below the prefix, where temporary objects live. A workspace named
/// `.rehost` would own `.rehost/{2 hex}/...` keys, never `.rehost/staging/`.
pub const STAGING_DIR: &str = ".rehost/staging/";

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// `{prefix}{workspace_id}/{sha[0..2]}/{sha}.{ext}`. `workspace_id` must
    /// have passed the job's identifier check and `sha` be lowercase hex.
    pub fn object(&self, workspace_id: &str, sha: &str, ext: &str) -> String {
        let shard = sha.get(..2).unwrap_or(sha);
        format!("{}{workspace_id}/{shard}/{sha}.{ext}", self.prefix)
    }

    /// The prefix of all staging objects (for sweeps and lifecycle rules).
    pub fn staging_prefix(&self) -> String {
        format!("{}{STAGING_DIR}", self.prefix)
    }

    /// A fresh staging key.
    pub fn staging(&self) -> String {
        format!("{}{}", self.staging_prefix(), uuid::Uuid::new_v4().simple())
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
        assert!(Keys::new("p/").staging().starts_with("p/.rehost/staging/"));
    }
}
