//! How the worker gets out of each state that closes intake, and what it
//! owes a delivery on the way (regressions of faults found by fault runs).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use rehost::result::Status;

use crate::helpers::*;

/// Regression: jobs whose connection died ran on to their deadline holding
/// their permits, so the next connection's deliveries waited behind them.
#[tokio::test]
async fn a_lost_connection_frees_its_jobs_permits() {
    if !broker_or_skip("a_lost_connection_frees_its_jobs_permits") {
        return;
    }
    let origin = origin().await;
    let proxy = Proxy::start().await;
    let url = proxy.url();
    let mut b = Bench::new(&[("AMQP_URL", url.as_str()), ("REHOST_CONCURRENCY", "2")]).await;
    let w = b.start_worker().await;
    b.publish(&job(
        "slow",
        &[origin.url("small.jpg?delay_ms=12000")],
        true,
    ))
    .await;
    eventually("the slow job is in flight", || async {
        origin.stats.requests() >= 1
    })
    .await;
    proxy.sever();
    eventually("reconnected", || async { w.health.ready().is_ok() }).await;
    let published = Instant::now();
    b.publish(&job("fast", &[origin.url("small.jpg?fast=1")], true))
        .await;
    // The redelivered slow job takes one permit; the fast job needs the
    // other, which the abandoned copy must have given back.
    let r = b.next_result().await;
    assert_eq!((r.job_id.as_str(), r.status), ("fast", Status::Ready));
    assert!(
        published.elapsed() < Duration::from_secs(8),
        "the fast job waited {:?} behind a job of a dead connection",
        published.elapsed()
    );
    let r = b.next_result().await;
    assert_eq!((r.job_id.as_str(), r.status), ("slow", Status::Ready));
    w.stop().await;
    b.cleanup().await;
}

/// Regression: the backoff reset after every successful connect, so a
/// consume the broker refuses again and again reconnected every 0.5 s.
#[tokio::test]
async fn a_refused_consume_backs_off() {
    if !broker_or_skip("a_refused_consume_backs_off") {
        return;
    }
    let proxy = Proxy::start().await;
    // A broker user that may declare and publish but not read: every
    // basic.consume is refused.
    let mut b = Bench::new(&[]).await;
    let user = format!("rehost-test-{}", b.id);
    rabbitmqctl(&["add_user", &user, "pw"]);
    let _gone = Defer(|| rabbitmqctl(&["delete_user", &user]));
    let exchanges_only = format!("^{}\\.(media|events)$", b.id);
    rabbitmqctl(&[
        "set_permissions",
        "-p",
        "/",
        &user,
        ".*",
        ".*",
        &exchanges_only,
    ]);
    let url = format!("amqp://{user}:pw@{}/%2f", proxy.addr);
    b.settings.retain(|(k, _)| *k != "AMQP_URL");
    b.settings.push(("AMQP_URL", url));
    let w = b.start_worker_unready().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts = proxy.accepted.load(Ordering::SeqCst);
    assert!(
        (2..=7).contains(&attempts),
        "8 s of refusals: {attempts} connections (backoff 0.5 s doubling, jittered)"
    );
    assert!(w.health.ready().is_err());
    rabbitmqctl(&["set_permissions", "-p", "/", &user, ".*", ".*", ".*"]);
    eventually("consuming once reading is allowed", || async {
        w.health.ready().is_ok()
    })
    .await;
    w.stop().await;
    b.cleanup().await;
}

/// Regression: a parked message kept the job's `expiration` and could
/// expire from the parking lot without a trace.
#[tokio::test]
async fn parked_messages_lose_their_expiration() {
    if !broker_or_skip("parked_messages_lose_their_expiration") {
        return;
    }
    let b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let dead = format!("{}.dead", b.queue());
    b.publish_raw(
        b"not json",
        BasicProperties::default().with_expiration("60000".into()),
    )
    .await;
    eventually("parked", || async { b.depth(&dead).await == 1 }).await;
    let ch = b.conn.create_channel().await.expect("channel");
    let m = ch
        .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get")
        .expect("parked message");
    assert_eq!(m.delivery.data, b"not json");
    assert_eq!(m.delivery.properties.expiration(), &None);
    w.stop().await;
    b.cleanup().await;
}

/// Regression: the `reply_to` copy and the event were retried together, so
/// a refused `reply_to` published the event again on every try.
#[tokio::test]
async fn a_refused_reply_does_not_repeat_the_event() {
    if !broker_or_skip("a_refused_reply_does_not_repeat_the_event") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let reply = format!("{}.replies", b.id);
    let full = |ch: lapin::Channel| {
        let reply = reply.clone();
        async move {
            let mut args = FieldTable::default();
            args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
            args.insert(
                "x-overflow".into(),
                AMQPValue::LongString("reject-publish".into()),
            );
            ch.queue_declare(reply.as_str().into(), QueueDeclareOptions::default(), args)
                .await
                .expect("declare a queue that refuses everything");
        }
    };
    full(b.conn.create_channel().await.expect("channel")).await;
    let w = b.start_worker().await;
    b.publish_raw(
        &serde_json::to_vec(&job("replied", &[origin.url("small.jpg")], true)).expect("json"),
        BasicProperties::default()
            .with_reply_to(reply.as_str().into())
            .with_correlation_id("c-1".into()),
    )
    .await;
    let r = b.next_result().await;
    assert_eq!(r.job_id, "replied");
    // The reply is refused for a while; the event must not repeat.
    assert!(
        b.try_next_result(Duration::from_secs(4)).await.is_none(),
        "the event was published again"
    );
    let ch = b.conn.create_channel().await.expect("channel");
    ch.queue_delete(reply.as_str().into(), Default::default())
        .await
        .expect("delete");
    ch.queue_declare(
        reply.as_str().into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("an ordinary queue");
    let mut replies = ch
        .basic_consume(
            reply.as_str().into(),
            "replies".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let d = tokio::time::timeout(WAIT, replies.next())
        .await
        .expect("the reply arrives once the queue takes it")
        .expect("delivery")
        .expect("ok");
    assert_eq!(
        d.properties.correlation_id().as_ref().map(|c| c.as_str()),
        Some("c-1")
    );
    assert!(b.try_next_result(Duration::from_secs(1)).await.is_none());
    let _ = ch
        .queue_delete(reply.as_str().into(), Default::default())
        .await;
    w.stop().await;
    b.cleanup().await;
}

/// Regression: a retry move kept the job's `expiration`, so a short job TTL
/// cut the retry delay short.
#[tokio::test]
async fn retry_moves_keep_their_full_delay() {
    if !broker_or_skip("retry_moves_keep_their_full_delay") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[("REHOST_RETRY_DELAYS", "4s")]).await;
    let w = b.start_worker().await;
    b.publish_raw(
        &serde_json::to_vec(&job("ttl", &[origin.url("small.jpg?fail=1")], true)).expect("json"),
        BasicProperties::default().with_expiration("1500".into()),
    )
    .await;
    let first = b.next_result().await;
    assert_eq!((first.status, first.attempts), (Status::Retry, 1));
    let moved = Instant::now();
    let second = b.next_result().await;
    assert_eq!((second.status, second.attempts), (Status::Ready, 2));
    assert!(
        moved.elapsed() >= Duration::from_millis(3500),
        "the retry fell due after {:?}, not the 4 s delay",
        moved.elapsed()
    );
    w.stop().await;
    b.cleanup().await;
}

/// Liveness: a worker that cannot consume while the broker and the store
/// answer and a permit is free fails `/healthz` after `REHOST_STALL_SECS`;
/// one waiting out a storage outage does not.
#[tokio::test]
async fn healthz_fails_a_stall_but_not_an_outage() {
    if !broker_or_skip("healthz_fails_a_stall_but_not_an_outage") {
        return;
    }
    let b = Bench::new(&[("REHOST_STALL_SECS", "10")]).await;
    // A conflicting job queue: connected, but nothing can be consumed.
    let ch = b.conn.create_channel().await.expect("channel");
    ch.queue_delete(b.queue().as_str().into(), Default::default())
        .await
        .expect("delete");
    ch.queue_declare(
        b.queue().as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("classic queue in the way");
    let w = b.start_worker_unready().await;
    assert_eq!(http_get(w.http_addr, "/healthz").await.0, 200);
    eventually("healthz fails after the stall time", || async {
        let (status, body) = http_get(w.http_addr, "/healthz").await;
        status == 503 && body.contains("basic.consume")
    })
    .await;
    w.stop().await;
    b.cleanup().await;

    // A storage outage found by a job, then a reconnect: the new connection
    // waits for the store before consuming, and that is not a stall.
    let origin = origin().await;
    let proxy = Proxy::start().await;
    let url = proxy.url();
    let b = Bench::new(&[("REHOST_STALL_SECS", "10"), ("AMQP_URL", url.as_str())]).await;
    let w = b.start_worker().await;
    let tmp = b.store_dir.path().join(".rehost/tmp");
    std::fs::remove_dir_all(&tmp).expect("rm");
    std::fs::write(&tmp, b"down").expect("write");
    b.publish(&job("held", &[origin.url("small.jpg")], true))
        .await;
    eventually("the store is marked failing", || async {
        w.health.ready().is_err_and(|e| e.contains("storage"))
    })
    .await;
    proxy.sever();
    tokio::time::sleep(Duration::from_secs(13)).await;
    assert!(
        !w.health.consuming(),
        "waits for the store before consuming"
    );
    assert_eq!(http_get(w.http_addr, "/readyz").await.0, 503);
    assert_eq!(
        http_get(w.http_addr, "/healthz").await.0,
        200,
        "waiting out a storage outage is not a stall"
    );
    std::fs::remove_file(&tmp).expect("rm");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    eventually("ready once the store answers", || async {
        w.health.ready().is_ok()
    })
    .await;
    let mut b = b;
    let r = b.next_result().await;
    assert_eq!((r.job_id.as_str(), r.status), ("held", Status::Ready));
    w.stop().await;
    b.cleanup().await;
}

/// Upgrading from classic retry queues: the old `{Q}.retry.{delay}` queues
/// are deleted once drained; one still holding a job is kept (its job
/// returns to the job queue by its TTL) and deleted at a later start.
#[tokio::test]
async fn drained_classic_retry_queues_of_earlier_versions_are_deleted() {
    if !broker_or_skip("drained_classic_retry_queues_of_earlier_versions_are_deleted") {
        return;
    }
    let b = Bench::new(&[("REHOST_RETRY_DELAYS", "200ms,1h")]).await;
    let ch = b.conn.create_channel().await.expect("channel");
    let legacy = |d: &str| format!("{}.retry.{d}", b.queue());
    for d in ["200ms", "1h"] {
        ch.queue_declare(
            legacy(d).as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("classic queue of an earlier version");
    }
    ch.basic_publish(
        "".into(),
        legacy("1h").as_str().into(),
        Default::default(),
        b"{}",
        BasicProperties::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    let w = b.start_worker().await;
    let conn = &b.conn;
    let exists = |name: String| async move {
        let ch = conn.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        ch.queue_declare(name.as_str().into(), passive, FieldTable::default())
            .await
            .is_ok()
    };
    assert!(!exists(legacy("200ms")).await, "the drained one is gone");
    assert!(exists(legacy("1h")).await, "the one holding a job is kept");
    w.stop().await;
    let ch = b.conn.create_channel().await.expect("channel");
    let _ = ch
        .queue_delete(legacy("1h").as_str().into(), Default::default())
        .await;
    b.cleanup().await;
}
