//! A response body read chunk by chunk under the deadlines and limits: the
//! stall timeout, the whole-asset deadline (which grows with the declared
//! size, or with the bytes received when none was declared), the byte limit
//! and the declared length.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::errors::classify;
use super::hosts::HostPermit;
use crate::error::{self, ErrorCode, JobError};

/// A response body read chunk by chunk under the deadlines and limits.
pub struct Body {
    pub(super) body: Incoming,
    pub(super) started: Instant,
    pub(super) base: Duration,
    pub(super) rate: u64,
    pub(super) stall: Duration,
    pub(super) expected: Option<u64>,
    /// The whole asset's size, when this is one of its several requests
    /// ([`super::Clock::size`]).
    pub(super) asset_size: Option<u64>,
    pub(super) received: u64,
    pub(super) max_bytes: u64,
    pub(super) _permit: HostPermit,
}

impl Body {
    /// The most bytes this body may have.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes read so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// When the whole body must have arrived.
    fn deadline(&self) -> Instant {
        let size = self
            .expected
            .unwrap_or(0)
            .max(self.received)
            .max(self.asset_size.unwrap_or(0));
        let allowance = Duration::from_secs_f64(size as f64 / self.rate as f64);
        self.started + self.base + allowance
    }

    /// The next chunk, `None` at the end of the body.
    ///
    /// # Errors
    /// `too_large` past the limit; `unreachable` on a stall, the deadline, a
    /// dropped connection or a body cut short of its declared length.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, JobError> {
        let deadline = self.deadline();
        let stall_at = Instant::now() + self.stall;
        let next = tokio::time::timeout_at(deadline.min(stall_at), self.data()).await;
        match next {
            Err(_) if stall_at <= deadline => Err(error::unreachable(format!(
                "no data from origin for {} s after {} bytes",
                self.stall.as_secs(),
                self.received
            ))),
            Err(_) => Err(error::unreachable(format!(
                "origin too slow: {} bytes did not arrive within the asset's deadline",
                self.expected.unwrap_or(self.received)
            ))),
            Ok(Err(e)) => Err(match classify(&e) {
                c if c.code == ErrorCode::Unreachable => error::unreachable(format!(
                    "connection lost after {} bytes{}: {}",
                    self.received,
                    self.expected
                        .map(|e| format!(" of {e}"))
                        .unwrap_or_default(),
                    error::error_chain(&e)
                )),
                c => c,
            }),
            Ok(Ok(None)) => match self.expected {
                Some(e) if self.received < e => Err(error::unreachable(format!(
                    "body cut short: {} of {e} declared bytes",
                    self.received
                ))),
                _ => Ok(None),
            },
            Ok(Ok(Some(chunk))) => {
                self.received += chunk.len() as u64;
                crate::metrics::METRICS
                    .bytes_fetched
                    .inc_by(chunk.len() as u64);
                if self.received > self.max_bytes {
                    return Err(error::too_large(format!(
                        "body exceeds the limit of {} bytes",
                        self.max_bytes
                    )));
                }
                Ok(Some(chunk))
            }
        }
    }

    /// The next data frame's bytes (trailers are skipped).
    async fn data(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}
