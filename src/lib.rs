//! rehost: media ingestion and re-hosting worker.
pub mod error;
pub mod job;
pub mod media;
pub mod result;
