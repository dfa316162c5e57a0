//! `rehost worker`: the queue consumer, until SIGTERM or SIGINT.

use super::{EXIT_USAGE, pipeline};
use crate::config::Config;
use crate::fetch::FetchConfig;
use crate::store::Store;

pub async fn run(config: &Config) -> u8 {
    let Some(store_cfg) = &config.store else {
        eprintln!(
            "rehost: invalid setting REHOST_STORE_DIR (--store-dir): rehost worker needs a store: set REHOST_STORE_DIR or S3_BUCKET"
        );
        return EXIT_USAGE;
    };
    let store = match Store::open(store_cfg, config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rehost: cannot open the store: {e}");
            return EXIT_USAGE;
        }
    };
    let pipeline = match pipeline(
        config,
        FetchConfig::from_config(config),
        Some(store.clone()),
    ) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rehost: {e:#}");
            return 1;
        }
    };
    match crate::worker::run(
        config.clone(),
        pipeline,
        store,
        crate::shutdown::signal(),
        |_| {},
    )
    .await
    {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("rehost: {e:#}");
            1
        }
    }
}
