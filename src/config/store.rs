//! Store settings: the directory store or S3, and the public base of URLs.

use std::fmt;
use std::path::PathBuf;

use super::reader::{ConfigError, Reader, boolean, err};

/// Where assets are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    Dir { root: PathBuf, public_base: String },
    S3(S3Config),
}

#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub force_path_style: bool,
    pub public_base: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field("force_path_style", &self.force_path_style)
            .field("public_base", &self.public_base)
            .finish()
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Dir { root, public_base } => f
                .debug_struct("Dir")
                .field("root", root)
                .field("public_base", public_base)
                .finish(),
            StoreConfig::S3(s3) => s3.fmt(f),
        }
    }
}

impl StoreConfig {
    /// `PUBLIC_BASE_URL` (or the directory store's `file://` default).
    pub fn public_base(&self) -> &str {
        match self {
            StoreConfig::Dir { public_base, .. } => public_base,
            StoreConfig::S3(s3) => &s3.public_base,
        }
    }

    /// Whether this is the directory store.
    pub fn is_dir(&self) -> bool {
        matches!(self, StoreConfig::Dir { .. })
    }
}

/// Which store the settings select, if any.
pub(super) fn parse(r: &Reader<'_>) -> Result<Option<StoreConfig>, ConfigError> {
    let public_base = r
        .non_empty("PUBLIC_BASE_URL")
        .map(|v| v.trim_end_matches('/').to_string());
    if let Some(base) = &public_base
        && url::Url::parse(base).map_or(true, |u| !matches!(u.scheme(), "http" | "https" | "file"))
    {
        return Err(err(
            "PUBLIC_BASE_URL",
            "expected an http(s):// or file:// URL",
        ));
    }
    if let Some(dir) = r.non_empty("REHOST_STORE_DIR") {
        let root = PathBuf::from(dir);
        let public_base = match public_base {
            Some(p) => p,
            None => dir_url(&root).map_err(|m| err("REHOST_STORE_DIR", m))?,
        };
        r.computed("PUBLIC_BASE_URL", public_base.clone());
        return Ok(Some(StoreConfig::Dir { root, public_base }));
    }
    let Some(bucket) = r.non_empty("S3_BUCKET") else {
        return Ok(None);
    };
    s3(r, bucket, public_base).map(|s3| Some(StoreConfig::S3(s3)))
}

fn s3(r: &Reader<'_>, bucket: &str, public_base: Option<String>) -> Result<S3Config, ConfigError> {
    let endpoint = r.non_empty("S3_ENDPOINT").map(str::to_string);
    if let Some(e) = &endpoint
        && url::Url::parse(e).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
    {
        return Err(err("S3_ENDPOINT", "expected an http:// or https:// URL"));
    }
    let key = |primary: &'static str, fallback: &'static str| -> Result<String, ConfigError> {
        match r.secret(primary)? {
            Some(v) => Ok(v),
            None => {
                let v = r
                    .raw_text(fallback)
                    .map(str::trim)
                    .filter(|v| !v.is_empty());
                let v = v.ok_or_else(|| {
                    err(
                        primary,
                        format!("required with S3_BUCKET (or set {fallback})"),
                    )
                })?;
                r.computed(primary, format!("<redacted> (from {fallback})"));
                Ok(v.to_string())
            }
        }
    };
    let force_path_style = match r.non_empty("S3_FORCE_PATH_STYLE") {
        Some(v) => boolean("S3_FORCE_PATH_STYLE", v)?,
        None => endpoint.is_some(),
    };
    r.computed("S3_FORCE_PATH_STYLE", force_path_style.to_string());
    let region = r.non_empty("S3_REGION").unwrap_or("auto").to_string();
    r.computed("S3_REGION", region.clone());
    Ok(S3Config {
        region,
        bucket: bucket.to_string(),
        access_key_id: key("S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")?,
        secret_access_key: key("S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")?,
        force_path_style,
        public_base: public_base
            .ok_or_else(|| err("PUBLIC_BASE_URL", "required with S3_BUCKET"))?,
        endpoint,
    })
}

/// `file://` URL of a directory (made absolute).
pub fn dir_url(root: &std::path::Path) -> Result<String, String> {
    let abs =
        std::path::absolute(root).map_err(|e| format!("cannot make the path absolute: {e}"))?;
    url::Url::from_directory_path(&abs)
        .map(|u| u.to_string().trim_end_matches('/').to_string())
        .map_err(|()| "not a usable directory path".to_string())
}
