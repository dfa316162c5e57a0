//! Reads and checks raw values one setting at a time, remembering each
//! effective value (secrets redacted) for `check-config`.

use std::cell::RefCell;
use std::fmt;
use std::time::Duration;

use super::raw::{Raw, SECRETS, Source};
use super::settings::SETTINGS;

/// A setting that is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub setting: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flag = SETTINGS
            .iter()
            .find(|s| s.env == self.setting)
            .map(|s| format!(" (--{})", s.flag))
            .unwrap_or_default();
        write!(
            f,
            "invalid setting {}{flag}: {}",
            self.setting, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn err(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting,
        message: message.into(),
    }
}

pub(super) struct Reader<'a> {
    raw: &'a Raw,
    /// Effective values as read, by setting.
    seen: RefCell<Vec<(&'static str, String)>>,
}

impl<'a> Reader<'a> {
    pub(super) fn new(raw: &'a Raw) -> Self {
        Reader {
            raw,
            seen: RefCell::new(Vec::new()),
        }
    }

    fn note(&self, key: &'static str, shown: String) {
        let mut seen = self.seen.borrow_mut();
        seen.retain(|(k, _)| *k != key);
        seen.push((key, shown));
    }

    /// The given value, untrimmed, or `None` when absent.
    pub(super) fn raw_text(&self, key: &str) -> Option<&'a str> {
        self.raw.get(key).map(|(v, _)| v.as_str())
    }

    /// The given value or the documented default, trimmed.
    pub(super) fn text(&self, key: &'static str) -> String {
        let v = self
            .raw_text(key)
            .unwrap_or_else(|| default_of(key))
            .trim()
            .to_string();
        self.note(key, v.clone());
        v
    }

    /// The value, or `None` when absent or empty.
    pub(super) fn non_empty(&self, key: &'static str) -> Option<&'a str> {
        let v = self.raw_text(key).map(str::trim).filter(|v| !v.is_empty());
        self.note(key, v.unwrap_or_default().to_string());
        v
    }

    /// A secret and where it came from: the value given, or the content of
    /// `{NAME}_FILE`; `None` when neither is given. Records nothing.
    pub(super) fn secret_source(
        &self,
        key: &'static str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        let file_var = SECRETS.iter().find(|(k, _)| *k == key).map(|(_, f)| *f);
        let given = self.raw.get(key).filter(|(v, _)| !v.trim().is_empty());
        let file = file_var.and_then(|f| self.raw.get(f).map(|(path, _)| (f, path)));
        match (given, file) {
            (Some(_), Some((f, _))) => Err(err(key, format!("set either {key} or {f}, not both"))),
            (Some((v, source)), None) => Ok(Some((v.trim().to_string(), source.to_string()))),
            (None, Some((f, path))) => {
                let source = Source::File(path.clone()).to_string();
                Ok(Some((read_secret(key, f, path)?, source)))
            }
            (None, None) => Ok(None),
        }
    }

    /// A secret (see [`Reader::secret_source`]), shown redacted with its source.
    pub(super) fn secret(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        let found = self.secret_source(key)?;
        let shown = found
            .as_ref()
            .map(|(_, source)| format!("<redacted> (from the {source})"))
            .unwrap_or_default();
        self.note(key, shown);
        Ok(found.map(|(v, _)| v))
    }

    pub(super) fn number(&self, key: &'static str, min: u64, max: u64) -> Result<u64, ConfigError> {
        let v = self.text(key);
        v.parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                err(
                    key,
                    format!("expected a whole number from {min} to {max}, got {v:?}"),
                )
            })
    }

    pub(super) fn secs(
        &self,
        key: &'static str,
        min: u64,
        max: u64,
    ) -> Result<Duration, ConfigError> {
        self.number(key, min, max).map(Duration::from_secs)
    }

    pub(super) fn flag(&self, key: &'static str) -> Result<bool, ConfigError> {
        boolean(key, &self.text(key))
    }

    /// An AMQP name (at most 255 bytes, no control characters).
    pub(super) fn name(&self, key: &'static str) -> Result<String, ConfigError> {
        let v = self.text(key);
        super::amqp_name(&v).map_err(|m| err(key, m))?;
        Ok(v)
    }

    /// Records a value computed from others (e.g. a default that depends on
    /// another setting).
    pub(super) fn computed(&self, key: &'static str, shown: impl Into<String>) {
        self.note(key, shown.into());
    }

    /// Every setting's effective value, in the table's order.
    pub(super) fn described(&self) -> Vec<(&'static str, String)> {
        let seen = self.seen.borrow();
        SETTINGS
            .iter()
            .map(|s| {
                let v = seen
                    .iter()
                    .find(|(k, _)| *k == s.env)
                    .map(|(_, v)| v.clone());
                (s.env, v.unwrap_or_default())
            })
            .collect()
    }
}

pub(super) fn boolean(key: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(err(key, format!("expected true or false, got {v:?}"))),
    }
}

fn default_of(key: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.env == key)
        .map_or("", |s| s.default)
}

fn read_secret(key: &'static str, file_var: &str, path: &str) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| err(key, format!("cannot read {file_var}={path}: {e}")))?;
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(err(key, format!("{file_var}={path} is empty")));
    }
    Ok(value)
}
