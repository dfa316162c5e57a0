//! The README's tables say exactly what the code does.

use rehost::config::SETTINGS;
use rehost::error::ErrorCode;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md")
}

#[test]
fn configuration_table_matches_the_settings() {
    let readme = readme();
    for s in SETTINGS {
        let default = if s.default.is_empty() {
            "(none)".to_string()
        } else {
            format!("`{}`", s.default)
        };
        let row = format!("| `{}` | `--{}` | {default} | {} |", s.env, s.flag, s.help);
        assert!(readme.contains(&row), "README lacks the row:\n{row}");
    }
    let rows = readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains("| `--"))
        .count();
    assert_eq!(
        rows,
        SETTINGS.len(),
        "README has settings the code does not"
    );
}

#[test]
fn error_code_table_matches_the_codes() {
    let readme = readme();
    for code in ErrorCode::ALL {
        let prefix = format!("| `{}` | ", code.as_str());
        let line = readme
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("README lacks {code}"));
        let retryable = if code.retryable() {
            "| yes |"
        } else {
            "| no |"
        };
        assert!(line.ends_with(retryable), "{code}: {line}");
    }
}
