//! One message in, one result out: parse, validate, run the ingest under the
//! job's deadline, catch a panic, and build the contract's result message.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tracing::Instrument;

use crate::error;
use crate::ingest::Ingestor;
use crate::job::{self, Parsed};
use crate::result::{Outcome, ResultMessage};
use crate::trace::TraceContext;

/// What became of one message.
#[derive(Debug)]
pub enum Processed {
    /// A result to publish (any status). `retry_after` is the origin's hint.
    Result {
        result: Box<ResultMessage>,
        retry_after: Option<Duration>,
    },
    /// Not a job at all: park the body with this reason.
    NotAJob { reason: String },
}

/// Runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub ingestor: Ingestor,
    pub job_timeout: Duration,
    pub max_attempts: u32,
}

impl Pipeline {
    /// Processes try number `attempt` of the job in `body`, in a new trace.
    pub async fn process(&self, body: &[u8], message_id: Option<&str>, attempt: u32) -> Processed {
        let trace = TraceContext::new_trace();
        self.process_traced(body, message_id, attempt, &trace).await
    }

    /// Processes try number `attempt` of the job in `body` as a span of
    /// `trace` (its id is on every log line of the job).
    pub async fn process_traced(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        attempt: u32,
        trace: &TraceContext,
    ) -> Processed {
        let (ids, outcome) = match job::parse(body, message_id) {
            Parsed::NotAJob { reason } => {
                tracing::info!(trace_id = %trace.trace_id, %reason, "not a job");
                return Processed::NotAJob { reason };
            }
            Parsed::Invalid {
                ids,
                accounts,
                error,
            } => {
                tracing::info!(job_id = %ids.job_id, trace_id = %trace.trace_id, code = %error.code, message = %error.message, "invalid job");
                let accounts = self.ingestor.unchecked(&accounts);
                (ids, Outcome::Failed { error, accounts })
            }
            Parsed::Job(job) => {
                let span = tracing::info_span!(
                    "job",
                    job_id = %job.ids.job_id,
                    post_id = %job.ids.post_id,
                    workspace_id = %job.ids.workspace_id,
                    attempt,
                    trace_id = %trace.trace_id,
                    span_id = %trace.span_id,
                );
                let outcome = self.run(&job).instrument(span).await;
                (job.ids, outcome)
            }
        };
        let retry_after = outcome.error().and_then(|e| e.retry_after);
        let version = &self.ingestor.platform().profiles.version;
        let result = ResultMessage::build(&ids, &outcome, attempt, self.max_attempts, version);
        Processed::Result {
            result: Box::new(result),
            retry_after,
        }
    }

    /// The result of try `attempt` of the job in `body` failing with
    /// `error` without running (a job deferred too long).
    pub fn refused(
        &self,
        body: &[u8],
        message_id: Option<&str>,
        attempt: u32,
        error: error::JobError,
    ) -> Processed {
        let (ids, accounts) = match job::parse(body, message_id) {
            Parsed::NotAJob { reason } => return Processed::NotAJob { reason },
            Parsed::Invalid { ids, accounts, .. } => (ids, accounts),
            Parsed::Job(job) => (job.ids, job.accounts),
        };
        let outcome = Outcome::Failed {
            error,
            accounts: self.ingestor.unchecked(&accounts),
        };
        let version = &self.ingestor.platform().profiles.version;
        Processed::Result {
            result: Box::new(ResultMessage::build(
                &ids,
                &outcome,
                attempt,
                self.max_attempts,
                version,
            )),
            retry_after: None,
        }
    }

    /// Whether the job in `body` re-hosts (a valid job with a BYO account).
    pub fn rehosts(body: &[u8], message_id: Option<&str>) -> bool {
        matches!(job::parse(body, message_id), Parsed::Job(j) if j.rehosts())
    }

    async fn run(&self, job: &job::Job) -> Outcome {
        let started = std::time::Instant::now();
        let outcome = guarded(self.ingestor.run(job), self.job_timeout)
            .await
            .unwrap_or_else(|error| Outcome::Failed {
                error,
                accounts: self.ingestor.unchecked(&job.accounts),
            });
        let ms = started.elapsed().as_millis() as u64;
        match &outcome {
            Outcome::Ready { assets, .. } => tracing::info!(assets = assets.len(), ms, "job ready"),
            Outcome::Failed { error: e, .. } => {
                tracing::info!(code = %e.code, asset_index = ?e.asset_index, message = %e.message, ms, "job failed")
            }
        }
        outcome
    }
}

/// Runs one try under its deadline; a panic inside becomes `internal` (the
/// details go to the log only) and a missed deadline `unreachable`.
async fn guarded(
    work: impl std::future::Future<Output = Outcome>,
    deadline: Duration,
) -> Result<Outcome, error::JobError> {
    match tokio::time::timeout(deadline, AssertUnwindSafe(work).catch_unwind()).await {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "job panicked");
            Err(error::internal("internal error (see the worker's log)"))
        }
        Err(_) => Err(error::unreachable(format!(
            "job deadline of {} s passed",
            deadline.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn a_panic_is_an_internal_failure_of_that_job() {
        let outcome = guarded(async { panic!("boom in a parser") }, Duration::from_secs(5)).await;
        let Err(e) = outcome else {
            panic!("expected a failure")
        };
        assert_eq!((e.code, e.retryable()), (ErrorCode::Internal, true));
        assert!(
            !e.message.contains("boom"),
            "details stay in the log: {}",
            e.message
        );
    }

    #[tokio::test]
    async fn a_missed_deadline_is_unreachable() {
        let outcome = guarded(std::future::pending(), Duration::from_millis(20)).await;
        let Err(e) = outcome else {
            panic!("expected a failure")
        };
        assert_eq!(e.code, ErrorCode::Unreachable);
    }
}
