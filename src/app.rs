//! The one place the application is wired from a [`Config`]: the fetcher,
//! the store, the ingestor and the pipeline. Every command and every test
//! helper builds through here, so they all run what production runs; tests
//! change behaviour through the `Config`, as production does.

use std::sync::Arc;

use crate::config::{Config, StoreConfig, dir_url};
use crate::fetch::{Fetcher, Lookup, SystemLookup};
use crate::ingest::Ingestor;
use crate::pipeline::Pipeline;
use crate::store::{Store, StoreError};

/// Exit status for usage and configuration errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit status for other fatal errors.
pub const EXIT_FATAL: u8 = 1;

/// What the application is made of. Cheap to clone.
#[derive(Clone)]
pub struct App {
    pub config: Config,
    pub pipeline: Pipeline,
    /// `None` when no store is configured (hosted-only checks still work).
    pub store: Option<Store>,
}

/// Why the application could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The store cannot be opened (a directory not creatable, ...): a
    /// configuration problem.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The HTTP client cannot be built (TLS roots unavailable).
    #[error("cannot build the HTTP client: {0:#}")]
    Client(anyhow::Error),
}

impl BuildError {
    /// The process exit status for this failure, the same in every command.
    pub fn exit_status(&self) -> u8 {
        match self {
            BuildError::Store(_) => EXIT_USAGE,
            BuildError::Client(_) => EXIT_FATAL,
        }
    }
}

impl App {
    /// Builds the application from the configuration, with the configured
    /// store (if any).
    ///
    /// # Errors
    /// See [`BuildError`].
    pub async fn build(config: &Config) -> Result<App, BuildError> {
        App::build_with(config, Arc::new(SystemLookup)).await
    }

    /// As [`App::build`], resolving host names with `lookup` (tests inject a
    /// resolver; nothing else differs).
    ///
    /// # Errors
    /// See [`BuildError`].
    pub async fn build_with(config: &Config, lookup: Arc<dyn Lookup>) -> Result<App, BuildError> {
        let store = match &config.store {
            Some(cfg) => Some(Store::open(cfg, config).await?),
            None => None,
        };
        App::assemble(config, lookup, store)
    }

    /// As [`App::build_with`], with a store already opened (tests that tune
    /// a store beyond its settings).
    ///
    /// # Errors
    /// See [`BuildError`].
    pub fn assemble(
        config: &Config,
        lookup: Arc<dyn Lookup>,
        store: Option<Store>,
    ) -> Result<App, BuildError> {
        let fetcher = Fetcher::new(config.fetch.clone(), lookup).map_err(BuildError::Client)?;
        let pipeline = Pipeline {
            ingestor: Ingestor::new(
                fetcher,
                store.clone(),
                config.limits,
                config.platform.clone(),
            ),
            job_timeout: config.job_timeout,
            max_attempts: config.max_attempts,
        };
        Ok(App {
            config: config.clone(),
            pipeline,
            store,
        })
    }
}

/// `config` with the directory store at `dir` when no store is configured:
/// what `rehost ingest` and `rehost demo` use.
///
/// # Errors
/// A message when `dir` cannot be made into a `file://` URL.
pub fn with_default_dir(config: &Config, dir: &str) -> Result<Config, String> {
    if config.store.is_some() {
        return Ok(config.clone());
    }
    let root = std::path::PathBuf::from(dir);
    let public_base = dir_url(&root)?;
    let mut config = config.clone();
    config.store = Some(StoreConfig::Dir { root, public_base });
    Ok(config)
}
