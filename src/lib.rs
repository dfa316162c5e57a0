//! rehost: the media ingestion and re-hosting worker behind the scheduling API.
//!
//! A job names a video URL or a slideshow of 1 to 35 image URLs and the
//! accounts the post targets. rehost checks every asset is reachable and is
//! what it claims (sniffed from the bytes, sizes and dimensions limited) and,
//! when any account is user-connected (`byo`), copies the assets into
//! R2-compatible storage under content-addressed keys and rewrites the URLs.
//!
//! The path of one job through the crate:
//!
//! | module | job |
//! | --- | --- |
//! | [`job`] | parse and validate the message (the contract's rules) |
//! | [`pipeline`] | one try: deadline, panic guard, result message |
//! | [`ingest`] | every asset, concurrently; the contract's failure precedence |
//! | [`fetch`] | safe HTTP: address guard, redirects, deadlines, limits |
//! | [`media`] | format sniffing, image headers, MP4/MOV/WebM containers |
//! | [`profiles`] | platform profiles, verdicts per account, the status rule |
//! | [`normalize`] | images made acceptable: plan, metadata strip, re-encode |
//! | [`store`] | the directory and S3 stores, content-addressed keys |
//! | [`result`] | the result message |
//!
//! The worker around it: [`worker`] (connection, intake, one delivery to its
//! ack, health), [`broker`] (topology, confirmed publishing, headers, replays),
//! [`http`] and [`metrics`].
//!
//! And: [`config`] (settings), [`cli`] and [`commands`] (the binary),
//! [`loadtest`], [`origin`] (a loopback media origin with fault modes for
//! demos, tests and load tests), [`telemetry`] and [`shutdown`].

pub mod app;
pub mod bounds;
pub mod broker;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod fetch;
pub mod fixture_origin;
pub mod ingest;
pub mod job;
pub mod loadtest;
pub mod media;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod profiles;
pub mod public;
pub mod result;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod trace;
pub mod worker;

/// Helpers shared by the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    /// A file of `fixtures/media`, whatever the tests' working directory.
    pub fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/fixtures/media/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}
