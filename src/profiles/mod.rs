//! Platform profiles: what each platform's publishing API takes, as data
//! (`profiles/platforms.toml`, built in; `REHOST_PROFILES` overrides or adds
//! platforms). [`rules`] names the rule kinds; [`facts`] is what the
//! probes measured of an asset; [`check`] judges a post for one account;
//! [`verdict`] is what results report and the status rule.

pub mod check;
pub mod facts;
pub mod rules;
pub mod verdict;

use std::path::Path;

use serde::Deserialize;

pub use rules::{Limit, Rule, RuleId};

/// The profiles built into the binary.
const BUILT_IN: &str = include_str!("../../profiles/platforms.toml");

/// Every platform's profile, and the version results report.
#[derive(Debug, Clone)]
pub struct Profiles {
    pub version: String,
    pub platforms: Vec<Profile>,
}

/// One platform: its names, the surfaces its rules describe, its rules.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Canonical lowercase name.
    pub name: String,
    pub aliases: Vec<String>,
    pub display: String,
    pub image_surface: String,
    pub video_surface: String,
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct FileProfiles {
    version: String,
    #[serde(default)]
    platform: Vec<FileProfile>,
}

#[derive(Deserialize)]
struct FileProfile {
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    display: Option<String>,
    image_surface: Option<String>,
    video_surface: Option<String>,
    #[serde(default)]
    rule: Vec<toml::Table>,
}

impl Profiles {
    /// The built-in profiles.
    ///
    /// # Panics
    /// Never at run time: the built-in file is checked by the tests.
    pub fn built_in() -> Profiles {
        parse(BUILT_IN).expect("the built-in profiles parse (tested)")
    }

    /// The built-in profiles, with the platforms of the TOML file at `path`
    /// replacing those of the same name and adding new ones; a file
    /// platform's name or alias is its own (a built-in platform it names
    /// is replaced, a built-in alias it names moves to it); the `version`
    /// is then reported as `{built-in}+{file}`.
    ///
    /// # Errors
    /// A message naming what is wrong in the file.
    pub fn load(path: Option<&Path>) -> Result<Profiles, String> {
        let mut profiles = Profiles::built_in();
        let Some(path) = path else {
            return Ok(profiles);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let extra = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for p in extra.platforms {
            let claims = |n: &String| *n == p.name || p.aliases.contains(n);
            profiles.platforms.retain(|q| !claims(&q.name));
            for q in &mut profiles.platforms {
                q.aliases.retain(|a| !claims(a));
            }
            profiles.platforms.push(p);
        }
        profiles.version = format!("{}+{}", profiles.version, extra.version);
        Ok(profiles)
    }

    /// The profile for a job's `platform` (case-insensitive, aliases too).
    pub fn find(&self, platform: &str) -> Option<&Profile> {
        let want = platform.trim().to_ascii_lowercase();
        self.platforms
            .iter()
            .find(|p| p.name == want || p.aliases.contains(&want))
    }
}

fn parse(text: &str) -> Result<Profiles, String> {
    let file: FileProfiles = toml::from_str(text).map_err(|e| e.to_string())?;
    if file.version.trim().is_empty() {
        return Err("version must not be empty".into());
    }
    let platforms = file
        .platform
        .into_iter()
        .map(profile)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Profiles {
        version: file.version,
        platforms,
    })
}

fn profile(p: FileProfile) -> Result<Profile, String> {
    let name = p.name.trim().to_ascii_lowercase();
    if name.is_empty() {
        return Err("a platform has no name".into());
    }
    let rules = p
        .rule
        .iter()
        .map(|t| Rule::from_table(t).map_err(|e| format!("platform {name}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Profile {
        display: p.display.unwrap_or_else(|| name.clone()),
        image_surface: p.image_surface.unwrap_or_default(),
        video_surface: p.video_surface.unwrap_or_default(),
        aliases: p.aliases.iter().map(|a| a.to_ascii_lowercase()).collect(),
        name,
        rules,
    })
}

#[cfg(test)]
mod tests;
