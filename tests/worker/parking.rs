//! The parking lot: bodies that are not jobs, the delivery limit, replays.

use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions, BasicQosOptions};
use rehost::broker::headers;
use rehost::broker::replay::{ReplayOptions, replay};
use rehost::broker::{Names, topology};
use rehost::result::Status;

use crate::helpers::*;

#[tokio::test]
async fn poison_bodies_are_parked_and_the_queue_keeps_flowing() {
    if !broker_or_skip("poison_bodies_are_parked_and_the_queue_keeps_flowing") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let dead = format!("{}.dead", b.queue());
    let long_id = "m".repeat(255);
    let poisons: Vec<(Vec<u8>, &str)> = vec![
        (vec![0xff, 0xfe, 0x00], "UTF-8"),
        (b"{\"post_id\": 1}".to_vec(), "post_id"),
        (vec![b' '; 256 * 1024 + 1], "256 KiB"),
        (
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            "JSON",
        ),
    ];
    for (body, _) in &poisons {
        b.publish_raw(
            body,
            BasicProperties::default().with_message_id(long_id.as_str().into()),
        )
        .await;
    }
    b.publish(&job("after-poison", &[origin.url("small.jpg")], true))
        .await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status),
        ("after-poison", Status::Ready)
    );
    eventually("poison parked", || async {
        b.depth(&dead).await == poisons.len() as u32
    })
    .await;
    let ch = b.conn.create_channel().await.expect("channel");
    for (body, reason) in &poisons {
        let m = ch
            .basic_get(dead.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get")
            .expect("parked message");
        assert_eq!(&m.delivery.data, body, "original bytes kept");
        let h = m.delivery.properties.headers().as_ref();
        let why = headers::text(h, headers::REASON).expect("reason header");
        assert!(why.contains(reason), "{why} should mention {reason}");
        assert!(headers::text(h, headers::PARKED_AT).is_some());
    }
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn the_delivery_limit_parks_a_message_that_keeps_coming_back() {
    if !broker_or_skip("the_delivery_limit_parks_a_message_that_keeps_coming_back") {
        return;
    }
    let b = Bench::new(&[]).await;
    let config = b.config();
    let names = Names::from_config(&config);
    topology::ensure(&b.conn, &names).await.expect("topology");
    b.publish_raw(
        b"{\"crashes\": \"every worker\"}",
        BasicProperties::default(),
    )
    .await;
    // Imitate workers dying with it: take it and give it back, again and again.
    let ch = b.conn.create_channel().await.expect("channel");
    ch.basic_qos(1, BasicQosOptions { global: false })
        .await
        .expect("qos");
    let mut returned = 0;
    for _ in 0..20 {
        let got = ch
            .basic_get(
                names.queue.as_str().into(),
                BasicGetOptions { no_ack: false },
            )
            .await
            .expect("get");
        let Some(m) = got else { break };
        m.delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .expect("nack");
        returned += 1;
    }
    assert!(
        returned <= 6,
        "dead-lettered after the limit, not looped ({returned} deliveries)"
    );
    eventually("parked by the delivery limit", || async {
        b.depth(&names.dead).await == 1
    })
    .await;
    b.cleanup().await;
}

#[tokio::test]
async fn replay_dead_brings_a_parked_job_back() {
    if !broker_or_skip("replay_dead_brings_a_parked_job_back") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let config = b.config();
    let names = Names::from_config(&config);
    topology::ensure(&b.conn, &names).await.expect("topology");
    // A job parked earlier (say, when the broker could not take its result),
    // with an attempt count that must be reset.
    let body = serde_json::to_vec(&job("parked1", &[origin.url("small.jpg")], true)).expect("json");
    let h = headers::with_text(None, headers::REASON, "could not report");
    let h = headers::with_attempt(Some(&h), 4);
    b.channel
        .basic_publish(
            "".into(),
            names.dead.as_str().into(),
            Default::default(),
            &body,
            BasicProperties::default().with_headers(h),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    b.channel
        .basic_publish(
            "".into(),
            names.dead.as_str().into(),
            Default::default(),
            b"other",
            BasicProperties::default().with_headers(headers::with_text(
                None,
                headers::REASON,
                "not a job",
            )),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    let listed = replay(
        AMQP,
        &names,
        &ReplayOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .expect("dry run");
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|p| !p.replayed));
    eventually("dry run moves nothing", || async {
        b.depth(&names.dead).await == 2
    })
    .await;
    let moved = replay(
        AMQP,
        &names,
        &ReplayOptions {
            reason: Some("report".into()),
            ..Default::default()
        },
    )
    .await
    .expect("replay");
    assert_eq!(moved.len(), 1);
    assert!(moved[0].replayed);
    let w = b.start_worker().await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status, r.attempts),
        ("parked1", Status::Ready, 1),
        "attempts reset"
    );
    assert_eq!(
        b.depth(&names.dead).await,
        1,
        "the unmatched message stays parked"
    );
    w.stop().await;
    b.cleanup().await;
}
