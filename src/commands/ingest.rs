//! `rehost ingest FILE|-`: one try of one job, no broker.

use std::io::Read;

use crate::app::{EXIT_FATAL, EXIT_USAGE};
use crate::config::Config;
use crate::job::MAX_BODY_BYTES;
use crate::pipeline::Processed;
use crate::result::Status;

/// Exit status of a `retry` result (EX_TEMPFAIL).
pub const EXIT_RETRY: u8 = 75;

pub async fn run(config: &Config, file: &str, attempt: u32) -> u8 {
    let body = match read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("rehost: cannot read {file}: {e}");
            return EXIT_USAGE;
        }
    };
    let app = match super::app_with_default_store(config).await {
        Ok(app) => app,
        Err(status) => return status,
    };
    if let Some(store) = &app.store {
        crate::public::report(store, config.public.probe).await;
    }
    match app.pipeline.process(&body, None, attempt.max(1)).await {
        Processed::NotAJob { reason } => {
            eprintln!("rehost: {file} is not a job: {reason}");
            EXIT_USAGE
        }
        Processed::Result { result, .. } => {
            match serde_json::to_string_pretty(&result) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("rehost: cannot print the result: {e}");
                    return EXIT_FATAL;
                }
            }
            match result.status {
                Status::Ready => 0,
                Status::Failed => 1,
                Status::Retry => EXIT_RETRY,
            }
        }
    }
}

/// Reads at most one byte more than a job may have, so an oversized body is
/// still recognised without reading all of it.
fn read(file: &str) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = MAX_BODY_BYTES as u64 + 1;
    if file == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(file)?
            .take(limit)
            .read_to_end(&mut buf)?;
    }
    Ok(buf)
}
