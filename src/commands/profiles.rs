//! `rehost profiles [--json]`: every platform profile in effect (built in,
//! or as `REHOST_PROFILES` changed them), each rule with its source and the
//! date it was checked.

use serde_json::json;

use crate::config::Config;
use crate::profiles::{Profile, Profiles};

pub fn run(config: &Config, as_json: bool) -> u8 {
    let profiles = &config.platform.profiles;
    if as_json {
        println!("{}", to_json(profiles));
    } else {
        print!("{}", to_text(profiles));
    }
    0
}

/// The profiles as one JSON document.
pub fn to_json(profiles: &Profiles) -> serde_json::Value {
    json!({
        "version": profiles.version,
        "platforms": profiles.platforms.iter().map(profile_json).collect::<Vec<_>>(),
    })
}

fn profile_json(p: &Profile) -> serde_json::Value {
    json!({
        "name": p.name,
        "aliases": p.aliases,
        "display": p.display,
        "image_surface": p.image_surface,
        "video_surface": p.video_surface,
        "rules": p.rules.iter().map(|r| json!({
            "rule": r.id.as_str(),
            "allowed": r.limit.shown(),
            "source": r.source,
            "checked": r.checked,
        })).collect::<Vec<_>>(),
    })
}

/// The profiles for people: one block per platform, one line per rule.
pub fn to_text(profiles: &Profiles) -> String {
    let mut out = format!("platform profiles, version {}\n", profiles.version);
    for p in &profiles.platforms {
        out.push_str(&format!("\n{} ({})", p.name, p.display));
        if !p.aliases.is_empty() {
            out.push_str(&format!(", also {}", p.aliases.join(", ")));
        }
        out.push_str(&format!(
            "\n  images: {}\n  video: {}\n",
            p.image_surface, p.video_surface
        ));
        for r in &p.rules {
            out.push_str(&format!(
                "  {:<17} {:<24} {} (checked {})\n",
                r.id.as_str(),
                r.limit.shown(),
                r.source,
                r.checked
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_listed_with_its_source() {
        let p = Profiles::built_in();
        let rules: usize = p.platforms.iter().map(|p| p.rules.len()).sum();
        let text = to_text(&p);
        assert_eq!(text.matches("(checked ").count(), rules);
        assert!(text.contains("instagram (Instagram)"));
        let j = to_json(&p);
        assert_eq!(j["platforms"].as_array().map(Vec::len), Some(9));
        assert_eq!(
            j["platforms"][1]["rules"][0]["source"]
                .as_str()
                .map(str::is_empty),
            Some(false)
        );
    }
}
