//! The subcommands. Each returns the process exit status.

pub mod check;
pub mod check_config;
pub mod demo;
pub mod ingest;
pub mod origin;
pub mod replay_dead;
pub mod worker;

use crate::config::{Config, StoreConfig, dir_url};
use crate::fetch::{FetchConfig, Fetcher};
use crate::ingest::Ingestor;
use crate::pipeline::Pipeline;
use crate::store::Store;

/// Exit status for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;

/// The store `rehost ingest` and `rehost demo` use: the configured one, else
/// the directory `dir`.
pub fn store_or_dir(config: &Config, dir: &str) -> Result<StoreConfig, String> {
    match &config.store {
        Some(s) => Ok(s.clone()),
        None => {
            let root = std::path::PathBuf::from(dir);
            let public_base = dir_url(&root)?;
            Ok(StoreConfig::Dir { root, public_base })
        }
    }
}

/// Opens the store `rehost ingest` and `rehost demo` use, or says why not
/// (returning the exit status).
pub async fn open_store_or_dir(config: &Config) -> Result<(StoreConfig, Store), u8> {
    let store_cfg = store_or_dir(config, "rehost-data").map_err(|e| {
        eprintln!("rehost: invalid setting REHOST_STORE_DIR: {e}");
        EXIT_USAGE
    })?;
    match Store::open(&store_cfg, config).await {
        Ok(store) => Ok((store_cfg, store)),
        Err(e) => {
            eprintln!("rehost: cannot open the store: {e}");
            Err(EXIT_USAGE)
        }
    }
}

/// The pipeline for a configuration and an opened store.
///
/// # Errors
/// When the HTTP client cannot be built.
pub fn pipeline(
    config: &Config,
    fetch: FetchConfig,
    store: Option<Store>,
) -> anyhow::Result<Pipeline> {
    let fetcher = Fetcher::new(fetch)?;
    Ok(Pipeline {
        ingestor: Ingestor::new(fetcher, store, config.limits),
        job_timeout: config.job_timeout,
        max_attempts: config.max_attempts,
    })
}
