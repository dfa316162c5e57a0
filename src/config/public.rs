//! The public-URL settings (contract v4): the probe's mode and interval,
//! how long a job may be deferred, and the URL prefixes verified for the
//! publishing app.

use std::time::Duration;

use super::ConfigError;
use super::reader::{Reader, err};
use crate::public::Verified;

/// `REHOST_PUBLIC_PROBE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeMode {
    /// Defer re-hosted jobs while the last probe failed.
    Enforce,
    /// Report a failing probe without deferring.
    Warn,
    Off,
}

/// What the public URLs are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicConfig {
    pub probe: ProbeMode,
    /// Between probes while they pass.
    pub probe_every: Duration,
    /// Longest a job may be deferred (since its first deferral).
    pub defer_max: Duration,
    /// `REHOST_VERIFIED_URL_PREFIXES`; empty when not set.
    pub verified: Vec<Verified>,
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            probe: ProbeMode::Enforce,
            probe_every: Duration::from_secs(300),
            defer_max: Duration::from_secs(86_400),
            verified: Vec::new(),
        }
    }
}

pub(super) fn parse(r: &Reader<'_>) -> Result<PublicConfig, ConfigError> {
    let probe = match r.text("REHOST_PUBLIC_PROBE").as_str() {
        "enforce" => ProbeMode::Enforce,
        "warn" => ProbeMode::Warn,
        "off" => ProbeMode::Off,
        other => {
            return Err(err(
                "REHOST_PUBLIC_PROBE",
                format!("expected enforce, warn or off, got {other:?}"),
            ));
        }
    };
    let verified = r
        .text("REHOST_VERIFIED_URL_PREFIXES")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Verified::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| err("REHOST_VERIFIED_URL_PREFIXES", m))?;
    Ok(PublicConfig {
        probe,
        probe_every: r.secs("REHOST_PUBLIC_PROBE_SECS", 10, 86_400)?,
        defer_max: r.secs("REHOST_DEFER_MAX_SECS", 60, 30 * 86_400)?,
        verified,
    })
}
