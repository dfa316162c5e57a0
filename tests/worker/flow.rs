//! Jobs in, results out: ready, failed, retried, replied to, deduplicated.

use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use rehost::error::ErrorCode;
use rehost::result::{MediaOut, Status};

use crate::helpers::*;

#[tokio::test]
async fn byo_and_hosted_jobs_are_ready_and_bad_ones_fail() {
    if !broker_or_skip("byo_and_hosted_jobs_are_ready_and_bad_ones_fail") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    b.publish(&job(
        "byo1",
        &[origin.url("photo.jpg"), origin.url("graphic.png")],
        true,
    ))
    .await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status, r.rehosted),
        ("byo1", Status::Ready, Some(true)),
        "{:?}",
        r.error
    );
    let Some(MediaOut::Slideshow { urls }) = &r.media else {
        panic!("slideshow")
    };
    assert!(
        urls.iter()
            .all(|u| u.starts_with("https://media.example.net/ws_worker/"))
    );

    b.publish(&job("hosted1", &[origin.url("photo.jpg")], false))
        .await;
    let r = b.next_result().await;
    assert_eq!((r.status, r.rehosted), (Status::Ready, Some(false)));
    assert_eq!(
        r.media,
        Some(MediaOut::Slideshow {
            urls: vec![origin.url("photo.jpg")]
        })
    );

    b.publish(&job("missing1", &[origin.url("nope.jpg")], true))
        .await;
    let r = b.next_result().await;
    assert_eq!(r.status, Status::Failed);
    assert_eq!(
        r.error.map(|e| (e.code, e.asset_index)),
        Some((ErrorCode::NotFound, Some(0)))
    );
    let (status, _) = http_get(w.http_addr, "/readyz").await;
    assert_eq!(status, 200);
    let (_, metrics) = http_get(w.http_addr, "/metrics").await;
    assert!(metrics.contains("rehost_jobs_total"), "{metrics}");
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn transient_failures_retry_then_succeed() {
    if !broker_or_skip("transient_failures_retry_then_succeed") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    // The origin answers 503 twice, then serves the file.
    b.publish(&job("flaky", &[origin.url("photo.jpg?fail=2")], true))
        .await;
    let seen: Vec<(Status, u32)> = [
        b.next_result().await,
        b.next_result().await,
        b.next_result().await,
    ]
    .iter()
    .map(|r| (r.status, r.attempts))
    .collect();
    assert_eq!(
        seen,
        [(Status::Retry, 1), (Status::Retry, 2), (Status::Ready, 3)]
    );
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn attempts_run_out_into_failed() {
    if !broker_or_skip("attempts_run_out_into_failed") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[("REHOST_MAX_ATTEMPTS", "2")]).await;
    let w = b.start_worker().await;
    b.publish(&job("down", &[origin.url("photo.jpg?status=503")], true))
        .await;
    let first = b.next_result().await;
    let last = b.next_result().await;
    assert_eq!((first.status, first.attempts), (Status::Retry, 1));
    assert_eq!((last.status, last.attempts), (Status::Failed, 2));
    let e = last.error.expect("error");
    assert_eq!(
        (e.code, e.retryable),
        (ErrorCode::Unreachable, true),
        "gave up"
    );
    assert!(
        b.try_next_result(std::time::Duration::from_secs(1))
            .await
            .is_none(),
        "nothing after failed"
    );
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn reply_to_gets_the_result_with_the_correlation_id() {
    if !broker_or_skip("reply_to_gets_the_result_with_the_correlation_id") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let reply = format!("{}.reply", b.id);
    b.channel
        .queue_declare(
            reply.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("reply queue");
    let props = BasicProperties::default()
        .with_reply_to(reply.as_str().into())
        .with_correlation_id("corr-42".into())
        .with_message_id("msg-7".into());
    let mut j = job("ignored", &[origin.url("small.jpg")], false);
    j.as_object_mut().expect("object").remove("job_id");
    b.publish_raw(&serde_json::to_vec(&j).expect("json"), props)
        .await;
    let mut consumer = b
        .channel
        .basic_consume(
            reply.as_str().into(),
            "reply".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut consumer))
        .await
        .expect("reply in time")
        .expect("delivery")
        .expect("ok");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("corr-42")
    );
    assert_eq!(
        d.properties.message_id().as_ref().map(|c| c.as_str()),
        Some("msg-7:1:ready")
    );
    let r: rehost::result::ResultMessage = serde_json::from_slice(&d.data).expect("json");
    assert_eq!(
        (r.job_id.as_str(), r.status),
        ("msg-7", Status::Ready),
        "job_id from the AMQP message_id"
    );
    assert_eq!(
        b.next_result().await.job_id,
        "msg-7",
        "the results exchange gets it too"
    );
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn a_duplicate_delivery_gives_the_same_urls_and_one_object() {
    if !broker_or_skip("a_duplicate_delivery_gives_the_same_urls_and_one_object") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let j = job("dup", &[origin.url("photo.webp")], true);
    b.publish(&j).await;
    b.publish(&j).await;
    let (r1, r2) = (b.next_result().await, b.next_result().await);
    assert_eq!((r1.status, r2.status), (Status::Ready, Status::Ready));
    assert_eq!(r1.media, r2.media);
    let dir = b.store_dir.path().join("ws_worker");
    let count = walk_count(&dir);
    assert_eq!(count, 1, "one object for two deliveries");
    w.stop().await;
    b.cleanup().await;
}

fn walk_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        walk_count(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// W3C trace context crosses the queue: a job's `traceparent` makes its
/// results (and its retry moves, and so later tries) part of the caller's
/// trace; a job without one starts a new trace.
#[tokio::test]
async fn trace_context_crosses_the_queue() {
    if !broker_or_skip("trace_context_crosses_the_queue") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        lapin::types::AMQPValue::LongString(caller.into()),
    );
    headers.insert(
        "tracestate".into(),
        lapin::types::AMQPValue::LongString("rehost=t".into()),
    );
    b.publish_raw(
        &serde_json::to_vec(&job("traced", &[origin.url("small.jpg?fail=1")], true)).expect("json"),
        BasicProperties::default().with_headers(headers),
    )
    .await;
    let text =
        |p: &BasicProperties, k: &str| rehost::broker::headers::text(p.headers().as_ref(), k);
    for want in [Status::Retry, Status::Ready] {
        let (r, props) = b.next_result_with_properties().await;
        assert_eq!(r.status, want);
        let tp = text(&props, "traceparent").expect("results carry traceparent");
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "the job's own span, not the caller's: {tp}"
        );
        assert_eq!(text(&props, "tracestate").as_deref(), Some("rehost=t"));
    }
    b.publish(&job("untraced", &[origin.url("small.jpg")], true))
        .await;
    let (_, props) = b.next_result_with_properties().await;
    let tp = text(&props, "traceparent").expect("a new trace");
    assert!(!tp.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{tp}");
    w.stop().await;
    b.cleanup().await;
}
