//! Jobs falling due in a retry queue while the job queue cannot take them.

use std::time::Duration;

use rehost::result::Status;

use crate::helpers::*;
use crate::{SERIAL, broker_env};

/// Shortens how long the broker's dead-letter worker waits before
/// publishing an unconfirmed dead-letter again (default 180 s), for queues
/// declared while this is held; restores the setting when dropped.
struct QuickRedelivery {
    found: String,
}

const KEY: &str = "dead_letter_worker_publisher_confirm_timeout";

impl QuickRedelivery {
    fn set() -> QuickRedelivery {
        let found = broker_env(KEY);
        rabbitmqctl(&[
            "eval",
            &format!("application:set_env(rabbit, {KEY}, 2000)."),
        ]);
        QuickRedelivery { found }
    }
}

impl Drop for QuickRedelivery {
    fn drop(&mut self) {
        let restore = match self
            .found
            .strip_prefix("{ok,")
            .and_then(|v| v.strip_suffix('}'))
        {
            Some(v) => format!("application:set_env(rabbit, {KEY}, {v})."),
            None => format!("application:unset_env(rabbit, {KEY})."),
        };
        rabbitmqctl(&["eval", &restore]);
    }
}

/// A job moved to its retry queue; returns once its retry result arrived.
async fn job_waiting_for_retry(b: &mut Bench, origin: &rehost::fixture_origin::Origin, id: &str) {
    b.publish(&job(
        id,
        &[origin.url(&format!("small.jpg?fail=1&id={id}"))],
        true,
    ))
    .await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status, r.attempts),
        (id, Status::Retry, 1)
    );
}

/// Regression: retries went back to the job queue by classic
/// dead-lettering, which drops the job when the job queue is missing at
/// that moment. The quorum retry queue keeps it until it can deliver.
#[tokio::test]
async fn a_retry_falling_due_while_the_job_queue_is_missing_is_kept() {
    if !broker_or_skip("a_retry_falling_due_while_the_job_queue_is_missing_is_kept") {
        return;
    }
    let _one = SERIAL.lock().await;
    let _quick = QuickRedelivery::set();
    let origin = origin().await;
    let mut b = Bench::new(&[("REHOST_RETRY_DELAYS", "3s")]).await;
    let w = b.start_worker().await;
    job_waiting_for_retry(&mut b, &origin, "orphan").await;
    w.stop().await;
    let ch = b.conn.create_channel().await.expect("channel");
    ch.queue_delete(b.queue().as_str().into(), Default::default())
        .await
        .expect("the job queue is gone");
    // The retry falls due with nowhere to go.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let w = b.start_worker().await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status, r.attempts),
        ("orphan", Status::Ready, 2),
        "the job came back once the job queue existed again"
    );
    w.stop().await;
    b.cleanup().await;
}

/// The job queue refuses messages (over a `max-length` policy with
/// `reject-publish`) while retries fall due: none is lost, each arrives once
/// the queue has drained below its limit.
///
/// Trap found here (RabbitMQ 3.10.8): the broker tells a refused
/// dead-letter worker to resume only when the queue drains below its limit;
/// a limit removed while the queue is over it leaves the refused jobs held
/// in the retry queue for good (see the README's operations notes).
#[tokio::test]
async fn retries_refused_by_a_full_job_queue_arrive_once_it_drains() {
    if !broker_or_skip("retries_refused_by_a_full_job_queue_arrive_once_it_drains") {
        return;
    }
    let _one = SERIAL.lock().await;
    let _quick = QuickRedelivery::set();
    let origin = origin().await;
    let mut b = Bench::new(&[("REHOST_RETRY_DELAYS", "8s")]).await;
    let w = b.start_worker().await;
    let ids = ["full0", "full1", "full2"];
    for id in ids {
        job_waiting_for_retry(&mut b, &origin, id).await;
    }
    w.stop().await;
    // Three messages put the job queue over the policy's limit of two (a
    // quorum queue refuses once it is over its limit, not at it).
    for _ in 0..3 {
        b.publish_raw(b"filler", lapin::BasicProperties::default())
            .await;
    }
    let policy = format!("{}-full", b.id);
    let pattern = format!("^{}$", regex_escape(&b.queue()));
    rabbitmqctl(&[
        "set_policy",
        &policy,
        &pattern,
        r#"{"max-length":2,"overflow":"reject-publish"}"#,
        "--apply-to",
        "queues",
        "--priority",
        "100",
    ]);
    let _cleared = Defer(|| rabbitmqctl(&["clear_policy", &policy]));
    // The retries fall due (8 s after their moves) while the queue is full.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        b.depth(&b.queue()).await,
        3,
        "the full job queue took nothing"
    );
    // A worker drains it (the fillers are parked); the refused retries follow.
    let w = b.start_worker().await;
    let mut done = Vec::new();
    for _ in ids {
        let r = b.next_result().await;
        assert_eq!((r.status, r.attempts), (Status::Ready, 2), "{:?}", r.error);
        done.push(r.job_id);
    }
    done.sort();
    assert_eq!(done, ids);
    w.stop().await;
    b.cleanup().await;
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc = !c.is_ascii_alphanumeric() && c != '_' && c != '-';
            esc.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}
