//! The effective configuration as `check-config` prints it, secrets redacted.

use super::Config;

impl Config {
    /// The effective settings, one `NAME=value` per line, in the table's
    /// order; secrets redacted, with where each came from.
    pub fn describe(&self) -> &[(&'static str, String)] {
        &self.described
    }
}

/// An AMQP URL with its password replaced.
pub fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable>".into(),
    }
}
