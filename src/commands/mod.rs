//! The subcommands. Each returns the process exit status.

pub mod check;
pub mod check_config;
pub mod demo;
pub mod healthcheck;
pub mod ingest;
pub mod origin;
pub mod profiles;
pub mod replay_dead;
pub mod worker;

use crate::app::{App, EXIT_USAGE, with_default_dir};
use crate::config::Config;

/// Builds the application for `rehost ingest` and `rehost demo`: the
/// configured store, else the directory `./rehost-data`. Says why not on
/// stderr and returns the exit status on failure.
pub async fn app_with_default_store(config: &Config) -> Result<App, u8> {
    let config = with_default_dir(config, "rehost-data").map_err(|e| {
        eprintln!("rehost: invalid setting REHOST_STORE_DIR: {e}");
        EXIT_USAGE
    })?;
    build(&config).await
}

/// Builds the application, saying why not on stderr (returning the exit
/// status).
pub async fn build(config: &Config) -> Result<App, u8> {
    App::build(config).await.map_err(|e| {
        eprintln!("rehost: {e}");
        e.exit_status()
    })
}
