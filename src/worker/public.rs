//! The public-URL probe of a running worker: at start, then every
//! `REHOST_PUBLIC_PROBE_SECS` while it passes, and with backoff from 5 s to
//! 60 s while it fails, so a fixed DNS record or bucket policy is noticed
//! within a minute. What it finds goes to [`Health`] (`/readyz`, the
//! deferral of re-hosted jobs under `enforce`) and `rehost_public_url_ok`.

use std::sync::Arc;
use std::time::Duration;

use super::health::{Health, Public};
use crate::config::{ProbeMode, PublicConfig};
use crate::public::probe;
use crate::store::Store;

/// First wait after a failed probe; it doubles up to [`FAILING_MAX`].
const FAILING_FIRST: Duration = Duration::from_secs(5);
const FAILING_MAX: Duration = Duration::from_secs(60);

/// Probes until the worker stops (the task is aborted).
pub(super) async fn watch(store: Store, health: Arc<Health>, cfg: PublicConfig) {
    if cfg.probe == ProbeMode::Off {
        health.set_public(Public::Fetchable);
        return;
    }
    let http = match probe::client() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the public-URL probe's client");
            health.set_public(Public::Unfetchable(format!("no probe client: {e}")));
            return;
        }
    };
    let mut failing_wait = FAILING_FIRST;
    let mut last_ok = None;
    loop {
        // A store outage is the store's state, not the public URLs'.
        health.wait_store().await;
        let p = probe::probe(&store, &http).await;
        let ok = p.result.is_ok();
        report(&p, cfg.probe, last_ok != Some(ok));
        health.set_public(finding(&p, cfg.probe));
        last_ok = Some(ok);
        let wait = if ok {
            failing_wait = FAILING_FIRST;
            cfg.probe_every
        } else {
            let w = failing_wait;
            failing_wait = (failing_wait * 2).min(FAILING_MAX);
            w
        };
        tokio::time::sleep(wait).await;
    }
}

fn finding(p: &probe::Probed, mode: ProbeMode) -> Public {
    match (&p.result, mode) {
        (Ok(()), _) => Public::Fetchable,
        (Err(why), ProbeMode::Enforce) => Public::Unfetchable(why.clone()),
        (Err(why), _) => Public::Warned(why.clone()),
    }
}

/// Logs a probe: every failure, and a pass when it follows a failure (or
/// is the first); warnings each time they are seen on a change.
fn report(p: &probe::Probed, mode: ProbeMode, changed: bool) {
    match &p.result {
        Err(why) if mode == ProbeMode::Enforce => tracing::error!(
            url = %p.url, reason = %why,
            "public URLs are not fetchable: deferring re-hosted jobs until the probe passes"
        ),
        Err(why) => {
            tracing::warn!(url = %p.url, reason = %why, "public URLs are not fetchable (REHOST_PUBLIC_PROBE=warn)")
        }
        Ok(()) if changed => {
            tracing::info!(url = %p.url, "public URLs are fetchable");
            for w in &p.warnings {
                tracing::warn!(url = %p.url, warning = %w, "public URL probe");
            }
        }
        Ok(()) => {}
    }
}
