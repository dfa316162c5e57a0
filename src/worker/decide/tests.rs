use super::*;
use crate::config::{Config, Raw};
use crate::error::{self, JobError};
use crate::job::JobIds;
use crate::result::{MediaOut, Outcome};

fn names() -> Names {
    Names::from_config(&Config::load(&Raw::default()).expect("defaults"))
}

fn ids() -> JobIds {
    JobIds {
        job_id: "j".into(),
        post_id: "p".into(),
        workspace_id: "w".into(),
        external_id: None,
    }
}

fn ready() -> Processed {
    let outcome = Outcome::Ready {
        rehosted: false,
        media: MediaOut::Video { url: "u".into() },
        assets: Vec::new(),
        accounts: Vec::new(),
    };
    result(&outcome, 1, None)
}

fn failed(e: JobError, attempt: u32) -> Processed {
    let retry_after = e.retry_after;
    let outcome = Outcome::Failed {
        error: e,
        accounts: Vec::new(),
    };
    result(&outcome, attempt, retry_after)
}

fn result(outcome: &Outcome, attempt: u32, retry_after: Option<Duration>) -> Processed {
    Processed::Result {
        result: Box::new(ResultMessage::build(&ids(), outcome, attempt, 5, "v")),
        retry_after,
    }
}

/// The kinds of steps, in order, with their targets.
fn shape(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Event(r) => format!("event {}", r.status.as_str()),
            Step::Reply {
                queue,
                correlation_id,
                result,
            } => format!(
                "reply {queue} {} {}",
                correlation_id.as_deref().unwrap_or("-"),
                result.status.as_str()
            ),
            Step::Retry {
                queue,
                next_attempt,
            } => format!("retry {queue} {next_attempt}"),
            Step::Park { reason } => format!("park {reason}"),
            Step::Defer { queue } => format!("defer {queue}"),
        })
        .collect()
}

const NONE: Asked<'static> = Asked {
    reply_to: None,
    correlation_id: None,
};

#[test]
fn ready_publishes_the_event_only() {
    assert_eq!(shape(&steps(ready(), NONE, &names(), 1)), ["event ready"]);
}

#[test]
fn reply_to_gets_a_copy_after_the_event_with_the_correlation_id() {
    let asked = Asked {
        reply_to: Some("replies"),
        correlation_id: Some("c-1"),
    };
    assert_eq!(
        shape(&steps(ready(), asked, &names(), 1)),
        ["event ready", "reply replies c-1 ready"]
    );
    let asked = Asked {
        reply_to: Some("replies"),
        correlation_id: None,
    };
    assert_eq!(
        shape(&steps(ready(), asked, &names(), 1)),
        ["event ready", "reply replies - ready"]
    );
}

#[test]
fn a_permanent_failure_is_published_once_without_a_move() {
    let p = failed(
        JobError::new(crate::error::ErrorCode::NotFound, "gone").at(0),
        1,
    );
    assert_eq!(shape(&steps(p, NONE, &names(), 1)), ["event failed"]);
}

#[test]
fn a_retryable_failure_with_tries_left_moves_the_job_after_the_events() {
    let asked = Asked {
        reply_to: Some("r"),
        correlation_id: None,
    };
    let p = failed(error::unreachable("down"), 2);
    assert_eq!(
        shape(&steps(p, asked, &names(), 2)),
        [
            "event retry",
            "reply r - retry",
            "retry media.ingest.retry-q.30s 3"
        ]
    );
}

#[test]
fn retry_after_chooses_a_longer_retry_queue() {
    let e = error::unreachable("429").with_retry_after(Some(Duration::from_secs(100)));
    let p = failed(e, 1);
    assert_eq!(
        shape(&steps(p, NONE, &names(), 1)),
        ["event retry", "retry media.ingest.retry-q.2m 2"]
    );
}

#[test]
fn the_last_try_fails_for_good_without_a_move() {
    let p = failed(error::unreachable("down"), 5);
    let s = steps(p, NONE, &names(), 5);
    assert_eq!(shape(&s), ["event failed"]);
    let Step::Event(r) = &s[0] else {
        panic!("an event")
    };
    assert_eq!(r.error.as_ref().map(|e| e.retryable), Some(true), "gave up");
}

#[test]
fn not_a_job_is_parked_with_its_reason_and_nothing_else() {
    let p = Processed::NotAJob {
        reason: "not JSON".into(),
    };
    let asked = Asked {
        reply_to: Some("r"),
        correlation_id: Some("c"),
    };
    assert_eq!(shape(&steps(p, asked, &names(), 1)), ["park not JSON"]);
}

#[test]
fn a_retry_without_retry_queues_parks_the_job_instead_of_losing_it() {
    let mut n = names();
    n.retries.clear();
    let p = failed(error::unreachable("down"), 1);
    let s = shape(&steps(p, NONE, &n, 1));
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0], "event retry");
    assert!(s[1].starts_with("park "), "{s:?}");
}

#[test]
fn only_storage_failures_are_store_failures() {
    assert!(store_failed(&failed(error::storage_unavailable("s3"), 1)));
    assert!(!store_failed(&failed(error::unreachable("x"), 1)));
    assert!(!store_failed(&failed(error::internal("x"), 1)));
    assert!(!store_failed(&ready()));
    assert!(!store_failed(&Processed::NotAJob { reason: "x".into() }));
}

#[test]
fn a_store_failure_is_held_while_a_rerun_fits_and_reruns_remain() {
    let until = Instant::now() + Duration::from_secs(60);
    assert_eq!(
        after_try(true, 0, Some(until)),
        AfterTry::HoldForStore { until }
    );
    assert_eq!(
        after_try(true, crate::bounds::STORE_RERUNS - 1, Some(until)),
        AfterTry::HoldForStore { until }
    );
    assert_eq!(
        after_try(true, crate::bounds::STORE_RERUNS, Some(until)),
        AfterTry::Finish,
        "reruns exhausted"
    );
    assert_eq!(after_try(true, 0, None), AfterTry::Finish, "no time left");
    assert_eq!(
        after_try(false, 0, Some(until)),
        AfterTry::Finish,
        "not a store failure"
    );
}

fn facts(usable: bool, left_ms: i64, blocked: bool) -> PublishFacts {
    let now = Instant::now();
    let deadline = if left_ms >= 0 {
        now + Duration::from_millis(left_ms.unsigned_abs())
    } else {
        now - Duration::from_millis(left_ms.unsigned_abs())
    };
    PublishFacts {
        usable,
        now,
        deadline,
        blocked,
    }
}

#[test]
fn each_publish_turn_follows_the_table() {
    assert_eq!(publish_turn(facts(true, 1000, false)), Turn::Send);
    assert_eq!(publish_turn(facts(true, 1000, true)), Turn::WaitBlocked);
    assert_eq!(
        publish_turn(facts(true, 0, false)),
        Turn::HandBack,
        "at the deadline"
    );
    assert_eq!(
        publish_turn(facts(true, -1, true)),
        Turn::HandBack,
        "past it, blocked"
    );
    assert_eq!(publish_turn(facts(false, 1000, false)), Turn::Abandon);
    assert_eq!(
        publish_turn(facts(false, -1, true)),
        Turn::Abandon,
        "a dead connection cannot hand back"
    );
}

#[test]
fn publish_backoff_doubles_to_its_cap() {
    let mut wait = FIRST_BACKOFF;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let (now, next) = backoff(wait);
        seen.push(now.as_millis());
        wait = next;
    }
    assert_eq!(
        seen,
        [
            200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000, 10_000
        ]
    );
}

#[test]
fn only_rehosted_jobs_wait_and_only_while_the_public_url_fails() {
    let max = Duration::from_secs(3600);
    let long = Some(Duration::from_secs(3601));
    let short = Some(Duration::from_secs(60));
    assert_eq!(public_gate(false, true, None, max), PublicGate::Run);
    assert_eq!(
        public_gate(false, true, long, max),
        PublicGate::Run,
        "fixed since"
    );
    assert_eq!(
        public_gate(true, false, long, max),
        PublicGate::Run,
        "hosted-only jobs run"
    );
    assert_eq!(
        public_gate(true, true, None, max),
        PublicGate::Defer,
        "first deferral"
    );
    assert_eq!(public_gate(true, true, short, max), PublicGate::Defer);
    assert_eq!(
        public_gate(true, true, Some(max), max),
        PublicGate::Defer,
        "at the limit"
    );
    assert_eq!(public_gate(true, true, long, max), PublicGate::Expired);
}

#[test]
fn a_ready_rehosted_result_is_deferred_while_the_public_url_fails() {
    let rehosted = |r: bool| {
        let outcome = Outcome::Ready {
            rehosted: r,
            media: MediaOut::Video { url: "u".into() },
            assets: Vec::new(),
            accounts: Vec::new(),
        };
        result(&outcome, 1, None)
    };
    assert!(defer_finished(true, &rehosted(true)));
    assert!(
        !defer_finished(false, &rehosted(true)),
        "fetchable: publish"
    );
    assert!(
        !defer_finished(true, &rehosted(false)),
        "hosted URLs are not ours"
    );
    assert!(
        !defer_finished(true, &failed(error::unreachable("x"), 1)),
        "failures are published"
    );
    assert!(!defer_finished(
        true,
        &Processed::NotAJob { reason: "x".into() }
    ));
}

#[test]
fn deferral_goes_to_the_longest_retry_queue() {
    assert_eq!(
        shape(&deferral(&names())),
        ["defer media.ingest.retry-q.10m"]
    );
    let mut n = names();
    n.retries.clear();
    assert!(shape(&deferral(&n))[0].starts_with("park "), "never lost");
}
