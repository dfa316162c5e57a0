//! Every bound of time and memory the worker's promises rest on, in one
//! place, with the reasoning that relates them. The modules that enforce a
//! bound import it from here; `docs/architecture.md` lists them.
//!
//! # Time: one delivery, from the broker's clock to the ack
//!
//! The broker closes a channel whose delivery stays unacked longer than its
//! consumer timeout (`REHOST_CONSUMER_TIMEOUT_SECS`, which must match the
//! broker's `consumer_timeout` or the queue's `x-consumer-timeout`: neither
//! can be read over AMQP). Every delivery's clock starts when it arrives
//! from the broker, not when a permit lets the worker take it, and is split
//! by [`Budgets`]:
//!
//! ```text
//! arrival ─┬─ waits for a permit / intake    ┐
//!          ├─ store holds (a try re-run)     ├ slack = delivery − job − publish
//!          ├─ one try: REHOST_JOB_TIMEOUT_SECS
//!          ├─ publishing the result: PUBLISH_ALLOWANCE at least
//!          └─ ACK_MARGIN, then the consumer timeout
//! ```
//!
//! - A delivery is acked, or handed back to the queue (nack, requeue), by
//!   `arrival + delivery` ([`Budgets::delivery`]).
//! - A try starts only while a whole try and its publish allowance fit in
//!   what is left; otherwise the delivery is handed back untried.
//! - A try that failed on the store is held and re-run only while the rerun
//!   still fits ([`Budgets::hold_until`]).
//! - Intake paused for longer than the slack ends the session, so deliveries
//!   prefetched during the pause go back to the broker while a whole try
//!   would still fit ([`Budgets::pause_limit`]).
//! - The worker refuses to start unless the job deadline, a store hold of
//!   [`MIN_STORE_HOLD`], the publish allowance and the margin fit under the
//!   consumer timeout ([`Budgets::derive`]).
//!
//! # Memory
//!
//! Per process: [`IMAGE_BUFFER_BUDGET`] for image bodies and `moov` boxes
//! held whole, [`DECODE_BUDGET`] for decoded pixels, and per video upload
//! `PARTS_IN_FLIGHT + 1` parts of [`DEFAULT_PART`]. Everything else read
//! whole is capped by a constant below and is small.

use std::time::Duration;

use tokio::time::Instant;

// ---------------------------------------------------------------- delivery

/// Kept between the last moment the worker may act on a delivery and the
/// broker's consumer timeout: the broker checks the timeout on a timer, and
/// the ack (or nack) must reach it first.
pub const ACK_MARGIN: Duration = Duration::from_secs(60);
/// Time every try keeps, after its deadline, to publish its result (two
/// publish attempts with their confirm waits). Publishing goes on after it
/// while the delivery's budget lasts.
pub const PUBLISH_ALLOWANCE: Duration = Duration::from_secs(60);
/// Longest wait for one publish's confirm before it is tried again.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait between two publish attempts (the backoff's cap).
pub const PUBLISH_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Longest wait for a hand-back (nack with requeue) to be sent.
pub const HAND_BACK: Duration = Duration::from_secs(5);
/// Re-declaring the topology after a failed publish.
pub const TOPOLOGY_REPAIR: Duration = Duration::from_secs(10);

// A publish started just before the delivery's budget ends may wait for its
// confirm, repair the topology and back off before the next turn hands the
// delivery back: all of it within the margin.
const _: () = assert!(
    PUBLISH_TIMEOUT.as_secs()
        + TOPOLOGY_REPAIR.as_secs()
        + PUBLISH_BACKOFF_MAX.as_secs()
        + HAND_BACK.as_secs()
        < ACK_MARGIN.as_secs()
);
/// A store outage must be worth holding a job for: the settings must leave
/// at least this much room for a hold (and for deliveries waiting in intake).
pub const MIN_STORE_HOLD: Duration = Duration::from_secs(60);
/// Longest one hold for the store lasts, whatever the budget allows.
pub const MAX_STORE_HOLD: Duration = Duration::from_secs(600);
/// Times a try is re-run after the store recovers before its failure counts
/// as a try (a store that answers checks but fails this job's writes).
pub const STORE_RERUNS: u32 = 3;

// ---------------------------------------------------------------- broker

/// How long one broker connection attempt may take.
pub const BROKER_CONNECT: Duration = Duration::from_secs(30);
/// How often the intake loop shows it is alive (and refreshes queue depths).
pub const BEAT: Duration = Duration::from_secs(15);
/// The intake loop beats at least every [`BEAT`], and the reconnect loop
/// before every attempt (at most a 30 s backoff plus [`BROKER_CONNECT`]
/// apart); silence longer than this means it is stuck.
pub const LIVENESS_LIMIT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------- store

/// One store check (`/readyz`, the prober, `check-config`).
pub const STORE_CHECK: Duration = Duration::from_secs(30);
/// One sweep of leftovers (listing and deleting); what it did not reach,
/// the next sweep does.
pub const SWEEP_LIMIT: Duration = Duration::from_secs(120);
/// Leftovers older than this many job deadlines belong to no live try.
pub const SWEEP_AGE_DEADLINES: u32 = 2;

/// How often a running worker sweeps: leftovers of tries dropped after
/// their upload completed would otherwise wait for the next start.
pub fn sweep_every(job_timeout: Duration) -> Duration {
    job_timeout.max(Duration::from_secs(600))
}

// ---------------------------------------------------------------- fetch

/// TCP connect and TLS handshake together (the contract's 10 s).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// No byte for this long aborts a transfer (the contract's 30 s).
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- memory

/// `n` KiB in bytes.
pub const fn kib(n: u64) -> u64 {
    n << 10
}

/// `n` MiB in bytes.
pub const fn mib(n: u64) -> u64 {
    n << 20
}

/// Bytes of image bodies and `moov` boxes held whole at once, across all
/// jobs (or twice the image limit when that is larger). An image reserves
/// the image limit before its request is sent and gives back what its
/// declared size does not need; a `moov` reader reserves its box's size.
pub const IMAGE_BUFFER_BUDGET: u64 = mib(256);
/// Decoded pixels at once, across all jobs, reserved before each decode at
/// its DCT scale; re-encodes run one per core.
pub const DECODE_BUDGET: u64 = mib(512);
/// The largest MP4/MOV `moov` box (or file tail after the media data) any
/// reader holds: the BYO probe's capture, the hosted tail read and the
/// faststart tail. Tails are reserved from [`IMAGE_BUFFER_BUDGET`] before
/// their request (a hosted tail twice: it and the probe's copy of its
/// `moov`; a faststart tail three times: also the new `moov`), so eight
/// jobs holding tails wait for each other instead of growing memory. The
/// single-pass BYO probe's capture of a `moov` it meets while streaming is
/// not reserved: the video's request holds a host place then, and waiting
/// for memory while holding a place could deadlock with images, which
/// reserve memory first and then wait for places. It is one per video job,
/// at most this much.
pub const MOOV_LIMIT: u64 = mib(32);
/// The WebM head (EBML header, Info, Tracks) read for metadata.
pub const WEBM_HEAD_CAP: usize = mib(1) as usize;
/// The most of an image read to find its dimensions.
pub const IMAGE_HEADER_CAP: u64 = mib(4);
/// The first read of every asset (sniffing and most headers).
pub const PREFIX_BYTES: usize = kib(64) as usize;
/// Parts uploading at once per video (memory: this many plus one filling).
pub const PARTS_IN_FLIGHT: usize = 3;
/// Part size of a video upload whose size allows it.
pub const DEFAULT_PART: u64 = mib(8);

// ---------------------------------------------------------------- budgets

/// The delivery budgets derived from the settings (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// The broker's consumer timeout.
    pub consumer_timeout: Duration,
    /// One try's deadline.
    pub job_timeout: Duration,
    /// From a delivery's arrival to its ack or hand-back.
    pub delivery: Duration,
    /// What the delivery budget leaves besides one try and its publish
    /// allowance: room for store holds and for waiting in intake.
    pub slack: Duration,
}

/// What to do with a delivery just taken from intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtTake {
    /// A whole try and its publish allowance fit: run it.
    Run,
    /// It waited too long in intake: hand it back untried.
    HandBack,
}

impl Budgets {
    /// The budgets for a consumer timeout and a job deadline.
    ///
    /// # Errors
    /// A sentence saying what does not fit, when the job deadline, a
    /// minimal store hold, the publish allowance and the margin exceed the
    /// consumer timeout.
    pub fn derive(consumer_timeout: Duration, job_timeout: Duration) -> Result<Budgets, String> {
        let needed = job_timeout + MIN_STORE_HOLD + PUBLISH_ALLOWANCE + ACK_MARGIN;
        if needed > consumer_timeout {
            return Err(format!(
                "the broker's consumer timeout ({} s) must exceed the job deadline REHOST_JOB_TIMEOUT_SECS ({} s) plus {} s for a store hold, {} s to publish and a {} s margin: set REHOST_CONSUMER_TIMEOUT_SECS to at least {} (and the broker's consumer_timeout to match) or lower REHOST_JOB_TIMEOUT_SECS",
                consumer_timeout.as_secs(),
                job_timeout.as_secs(),
                MIN_STORE_HOLD.as_secs(),
                PUBLISH_ALLOWANCE.as_secs(),
                ACK_MARGIN.as_secs(),
                needed.as_secs(),
            ));
        }
        let delivery = consumer_timeout - ACK_MARGIN;
        Ok(Budgets {
            consumer_timeout,
            job_timeout,
            delivery,
            slack: delivery - job_timeout - PUBLISH_ALLOWANCE,
        })
    }

    /// When a delivery that arrived at `arrived` must be acked or handed back.
    pub fn deadline(&self, arrived: Instant) -> Instant {
        arrived + self.delivery
    }

    /// Whether a delivery that has waited `waited` since it arrived may
    /// still start a try.
    pub fn at_take(&self, waited: Duration) -> AtTake {
        if waited <= self.slack {
            AtTake::Run
        } else {
            AtTake::HandBack
        }
    }

    /// Until when a try that failed on the store may wait for it and still
    /// be re-run in full and published; `None` when no wait fits.
    pub fn hold_until(&self, arrived: Instant, now: Instant) -> Option<Instant> {
        let latest_start = self.deadline(arrived) - self.job_timeout - PUBLISH_ALLOWANCE;
        let until = latest_start.min(now + MAX_STORE_HOLD);
        (until > now).then_some(until)
    }

    /// How long intake may stay paused with deliveries prefetched before
    /// the session is ended to hand them back.
    pub fn pause_limit(&self) -> Duration {
        self.slack
    }
}

#[cfg(test)]
mod tests;
