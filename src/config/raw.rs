//! Raw setting values and where each came from: a flag, the environment, a
//! secret file (`{NAME}_FILE`), or the documented default.

use std::collections::BTreeMap;
use std::fmt;

/// Settings that are secrets: never printed, and readable from a file named
/// by `{NAME}_FILE` (the convention Kubernetes and compose secrets use).
pub const SECRETS: &[(&str, &str)] = &[
    ("AMQP_URL", "AMQP_URL_FILE"),
    ("S3_ACCESS_KEY_ID", "S3_ACCESS_KEY_ID_FILE"),
    ("S3_SECRET_ACCESS_KEY", "S3_SECRET_ACCESS_KEY_FILE"),
];

/// Variables read besides the settings' own: fallbacks for the S3 keys.
const FALLBACKS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    /// The file named by `{NAME}_FILE` (the path).
    File(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env => f.write_str("environment"),
            Source::File(path) => write!(f, "file {path}"),
        }
    }
}

/// Raw values by variable name: flags first, then the environment.
#[derive(Debug, Clone, Default)]
pub struct Raw {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Raw {
    /// Reads every setting (and `{NAME}_FILE` for secrets) from the process
    /// environment, then applies `flags` (variable name → value given on the
    /// command line).
    pub fn from_env(flags: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        let mut raw = Raw::default();
        let names = super::SETTINGS
            .iter()
            .map(|s| s.env)
            .chain(SECRETS.iter().map(|(_, file)| *file))
            .chain(FALLBACKS.iter().copied());
        for name in names {
            if let Ok(v) = std::env::var(name) {
                raw.values.insert(name, (v, Source::Env));
            }
        }
        for (k, v) in flags {
            raw.values.insert(k, (v, Source::Flag));
        }
        raw
    }

    /// A set of values, for tests and embedding.
    pub fn from_pairs(pairs: &[(&'static str, &str)]) -> Self {
        Raw {
            values: pairs
                .iter()
                .map(|(k, v)| (*k, ((*v).to_string(), Source::Env)))
                .collect(),
        }
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<String>) {
        self.values.insert(key, (value.into(), Source::Env));
    }

    /// Whether a value was given for `key` (by flag or environment).
    pub fn has(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&(String, Source)> {
        self.values.get(key)
    }

    /// Secrets given as flags: they show in process lists.
    pub fn secret_flags(&self) -> Vec<&'static str> {
        SECRETS
            .iter()
            .filter(|(name, _)| matches!(self.values.get(name), Some((_, Source::Flag))))
            .map(|(name, _)| *name)
            .collect()
    }
}
