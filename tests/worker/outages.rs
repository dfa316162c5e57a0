//! Dependencies failing: the store, the broker connection, the topology.

use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use rehost::result::Status;

use crate::helpers::*;

#[tokio::test]
async fn a_store_outage_pauses_intake_instead_of_failing_jobs() {
    if !broker_or_skip("a_store_outage_pauses_intake_instead_of_failing_jobs") {
        return;
    }
    let origin = origin().await;
    let mut b = Bench::new(&[]).await;
    let w = b.start_worker().await;
    let tmp = b.store_dir.path().join(".rehost/tmp");
    // Take the store down: its temp directory becomes a file.
    std::fs::remove_dir_all(&tmp).expect("rm");
    std::fs::write(&tmp, b"down").expect("write");
    for i in 0..4 {
        b.publish(&job(
            &format!("outage{i}"),
            &[origin.url(&format!("small.jpg?n={i}"))],
            true,
        ))
        .await;
    }
    eventually("not ready while the store is down", || async {
        http_get(w.http_addr, "/readyz").await.0 == 503
    })
    .await;
    assert!(
        b.try_next_result(Duration::from_secs(2)).await.is_none(),
        "no job is failed or retried while the store is down"
    );
    // Bring it back.
    std::fs::remove_file(&tmp).expect("rm file");
    std::fs::create_dir_all(&tmp).expect("mkdir");
    let mut done = Vec::new();
    for _ in 0..4 {
        let r = b.next_result().await;
        assert_eq!((r.status, r.attempts), (Status::Ready, 1), "{:?}", r.error);
        done.push(r.job_id);
    }
    done.sort();
    assert_eq!(done, ["outage0", "outage1", "outage2", "outage3"]);
    eventually("ready again", || async {
        http_get(w.http_addr, "/readyz").await.0 == 200
    })
    .await;
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn a_cut_broker_connection_loses_no_job() {
    if !broker_or_skip("a_cut_broker_connection_loses_no_job") {
        return;
    }
    let origin = origin().await;
    let proxy = Proxy::start().await;
    let url = proxy.url();
    let mut b = Bench::new(&[("AMQP_URL", url.as_str())]).await;
    let w = b.start_worker().await;
    // Jobs that are in flight (the origin is slow) when the connection drops.
    for i in 0..3 {
        b.publish(&job(
            &format!("before{i}"),
            &[origin.url(&format!("small.jpg?delay_ms=1500&n={i}"))],
            true,
        ))
        .await;
    }
    eventually("jobs in flight", || async { origin.stats.requests() >= 3 }).await;
    proxy.sever();
    assert!(!proxy.cut.load(Ordering::SeqCst));
    eventually("not ready while disconnected", || async {
        w.health.ready().is_err()
    })
    .await;
    for i in 0..3 {
        b.publish(&job(
            &format!("after{i}"),
            &[origin.url(&format!("small.jpg?m={i}"))],
            true,
        ))
        .await;
    }
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 6 {
        let r = b.next_result().await;
        assert_eq!(r.status, Status::Ready, "{:?}", r.error);
        seen.insert(r.job_id);
    }
    eventually("ready after reconnecting", || async {
        http_get(w.http_addr, "/readyz").await.0 == 200
    })
    .await;
    let (_, metrics) = http_get(w.http_addr, "/metrics").await;
    assert!(
        metrics.contains("rehost_broker_reconnects_total 1")
            || metrics.contains("rehost_broker_reconnects_total 2"),
        "{metrics}"
    );
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn a_conflicting_queue_is_one_clear_error_not_a_crash() {
    if !broker_or_skip("a_conflicting_queue_is_one_clear_error_not_a_crash") {
        return;
    }
    let b = Bench::new(&[]).await;
    // Someone declared the job queue as a classic queue already.
    b.channel
        .queue_delete(
            b.queue().as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .expect("delete");
    b.channel
        .queue_declare(
            b.queue().as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare");
    let w = b.start_worker_unready().await;
    eventually("readyz names the conflict", || async {
        let (status, body) = http_get(w.http_addr, "/readyz").await;
        status == 503 && body.contains("already exists with different settings")
    })
    .await;
    assert_eq!(
        http_get(w.http_addr, "/healthz").await.0,
        200,
        "alive, not crashing"
    );
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn with_declare_off_the_topology_is_only_checked() {
    if !broker_or_skip("with_declare_off_the_topology_is_only_checked") {
        return;
    }
    let origin = origin().await;
    // A fresh set of names nobody declared: the worker must not create them.
    let mut b = Bench::new(&[]).await;
    let original = b.queue();
    let missing = format!("{}.other", b.id);
    b.settings
        .retain(|(k, _)| *k != "REHOST_QUEUE" && *k != "REHOST_DECLARE");
    b.settings.push(("REHOST_QUEUE", missing.clone()));
    b.settings.push(("REHOST_DECLARE", "false".into()));
    let w = b.start_worker_unready().await;
    eventually("readyz says what is missing", || async {
        let (status, body) = http_get(w.http_addr, "/readyz").await;
        status == 503 && body.contains("does not exist") && body.contains("REHOST_DECLARE")
    })
    .await;
    w.stop().await;
    let declared = b
        .channel
        .queue_declare(
            missing.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    assert!(declared.is_err(), "nothing was declared");
    // The declared topology of this bench exists: a worker checking it works.
    let mut b2 = Bench::new(&[("REHOST_DECLARE", "false")]).await;
    let w = b2.start_worker().await;
    b2.publish(&job("checked", &[origin.url("small.jpg")], true))
        .await;
    assert_eq!(b2.next_result().await.status, Status::Ready);
    w.stop().await;
    b2.cleanup().await;
    b.settings.retain(|(k, _)| *k != "REHOST_QUEUE");
    b.settings.push(("REHOST_QUEUE", original));
    b.cleanup().await;
}
