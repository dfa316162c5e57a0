//! `rehost worker`: the queue consumer, until SIGTERM or SIGINT.

use crate::app::{EXIT_FATAL, EXIT_USAGE};
use crate::config::Config;

pub async fn run(config: &Config, shutdown: impl Future<Output = ()>) -> u8 {
    if config.store.is_none() {
        eprintln!(
            "rehost: invalid setting REHOST_STORE_DIR (--store-dir): rehost worker needs a store: set REHOST_STORE_DIR or S3_BUCKET"
        );
        return EXIT_USAGE;
    }
    if let Err(e) = config.budgets() {
        eprintln!("rehost: {e}");
        return EXIT_USAGE;
    }
    if let Err(e) = crate::public::startup_check(config).await {
        eprintln!("rehost: {e}");
        return EXIT_USAGE;
    }
    let app = match super::build(config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    match crate::worker::run(app, shutdown, |_| {}).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rehost: {e:#}");
            EXIT_FATAL
        }
    }
}
