//! The operations kit matches the worker: every metric the dashboard and
//! the alert rules name is one the worker exports, and a running worker's
//! `/metrics` passes Prometheus's own linter.

use std::collections::BTreeSet;

use rehost::metrics::METRICS;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Gives every labelled family a sample, as a worker that has run jobs
/// has (a family without samples is not rendered).
fn touch_families() {
    let l = rehost::metrics::labels;
    METRICS
        .jobs
        .get_or_create(&l(&[("status", "ready"), ("code", "none")]))
        .inc();
    METRICS
        .parked
        .get_or_create(&l(&[("reason", "not_a_job")]))
        .inc();
    METRICS
        .assets
        .get_or_create(&l(&[("path", "byo"), ("outcome", "ok")]))
        .inc();
    let verdict = [("platform", "tiktok"), ("verdict", "ok"), ("rule", "none")];
    METRICS.verdicts.get_or_create(&l(&verdict)).inc();
    METRICS
        .normalized
        .get_or_create(&l(&[("step", "orient")]))
        .inc();
}

/// Metric names the worker exports, as a scraper sees them.
fn exported() -> BTreeSet<String> {
    touch_families();
    let text = METRICS.render_text();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// `rehost_*` identifiers in a text (PromQL inside JSON or YAML).
fn used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("rehost_") {
        let start = i + at;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |n| start + n);
        // `rehost_*` in a comment is a pattern, not a name.
        if before_ok && end > start + "rehost_".len() {
            out.insert(text[start..end].to_string());
        }
        i = end;
    }
    out
}

#[test]
fn dashboard_and_alerts_name_only_exported_metrics() {
    let exported = exported();
    for path in [
        "deploy/grafana/rehost.json",
        "deploy/prometheus/alerts.yml",
        "deploy/prometheus/alerts_test.yml",
    ] {
        let names = used(&read(path));
        assert!(!names.is_empty(), "{path} names no rehost metric");
        let unknown: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{path} names metrics the worker does not export: {unknown:?}"
        );
    }
}

#[test]
fn the_exposition_passes_promtool() {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and promtool is missing (Debian package prometheus)"
        );
        eprintln!("\n*** SKIPPED the_exposition_passes_promtool: no promtool ***\n");
        return;
    };
    touch_families();
    let text = METRICS.render_text();
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{text}"
    );
}
