//! The platform settings: which profiles, whether verdicts enforce, and how
//! re-hosted images are normalised (contract v3).

use std::path::Path;
use std::sync::Arc;

use super::ConfigError;
use super::reader::{Reader, err};
use crate::normalize;
use crate::profiles::Profiles;
use crate::profiles::verdict::Checks;

/// Profiles, checks and normalisation.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub profiles: Arc<Profiles>,
    pub checks: Checks,
    pub normalize: normalize::Settings,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            profiles: Arc::new(Profiles::built_in()),
            checks: Checks::Enforce,
            normalize: normalize::Settings::default(),
        }
    }
}

pub(super) fn parse(r: &Reader<'_>) -> Result<PlatformConfig, ConfigError> {
    let path = r.non_empty("REHOST_PROFILES");
    let profiles = Profiles::load(path.map(Path::new)).map_err(|m| err("REHOST_PROFILES", m))?;
    r.computed(
        "REHOST_PROFILES",
        match path {
            Some(p) => format!("{p} (version {})", profiles.version),
            None => format!("built in (version {})", profiles.version),
        },
    );
    let checks = match r.text("REHOST_PLATFORM_CHECKS").as_str() {
        "enforce" => Checks::Enforce,
        "report" => Checks::Report,
        "off" => Checks::Off,
        other => {
            return Err(err(
                "REHOST_PLATFORM_CHECKS",
                format!("expected enforce, report or off, got {other:?}"),
            ));
        }
    };
    let faststart = match r.text("REHOST_FASTSTART").as_str() {
        "needed" => normalize::Faststart::Needed,
        "always" => normalize::Faststart::Always,
        "never" => normalize::Faststart::Never,
        other => {
            return Err(err(
                "REHOST_FASTSTART",
                format!("expected needed, always or never, got {other:?}"),
            ));
        }
    };
    let normalize = normalize::Settings {
        normalize: r.flag("REHOST_NORMALIZE")? && checks != Checks::Off,
        strip: r.flag("REHOST_STRIP_METADATA")?,
        jpeg_quality: r.number("REHOST_JPEG_QUALITY", 50, 100)? as u8,
        faststart,
    };
    Ok(PlatformConfig {
        profiles: Arc::new(profiles),
        checks,
        normalize,
    })
}
