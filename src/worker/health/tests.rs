use super::*;

fn healthy() -> Health {
    let h = Health::new(2, Duration::from_secs(300));
    h.set_broker(true);
    h.set_store(true);
    h.set_public(Public::Fetchable);
    h.set_consuming(true);
    h
}

fn idle_for(h: &Health, d: Duration) {
    *lock(&h.not_consuming_since) = Some(Instant::now() - d);
}

#[test]
fn a_silent_intake_loop_is_not_alive() {
    let h = healthy();
    assert!(h.alive().is_ok());
    *lock(&h.beat) = Instant::now() - LIVENESS_LIMIT - Duration::from_secs(1);
    assert!(h.alive().is_err_and(|e| e.contains("silent")));
    h.beat();
    assert!(h.alive().is_ok());
    *lock(&h.beat) = Instant::now() - LIVENESS_LIMIT * 2;
    h.set_shutting_down();
    assert!(h.alive().is_ok(), "a draining worker is alive");
}

#[test]
fn no_consumer_for_the_stall_time_is_not_alive() {
    let h = healthy();
    h.set_consuming(false);
    idle_for(&h, Duration::from_secs(299));
    assert!(h.alive().is_ok(), "not yet the stall time");
    idle_for(&h, Duration::from_secs(301));
    assert!(h.alive().is_err_and(|e| e.contains("basic.consume")));
    h.set_consuming(true);
    assert!(h.alive().is_ok(), "consuming again");
}

#[test]
fn a_stall_is_excused_by_a_failing_dependency_or_full_permits() {
    let h = healthy();
    h.set_consuming(false);
    idle_for(&h, Duration::from_secs(400));
    assert!(h.alive().is_err());
    h.set_store(false);
    assert!(h.alive().is_ok(), "waiting out a storage outage");
    h.set_store(true);
    h.set_broker(false);
    h.set_broker_answers(false);
    assert!(h.alive().is_ok(), "the broker does not answer");
    h.set_broker_answers(true);
    assert!(h.alive().is_err(), "the broker answers: a stall again");
    let a = h.in_flight();
    assert!(h.alive().is_err(), "a permit is still free");
    let b = h.in_flight();
    assert!(h.alive().is_ok(), "busy: every permit is taken");
    drop((a, b));
    assert!(h.alive().is_err());
}

#[test]
fn readiness_names_what_is_wrong() {
    let h = Health::new(2, Duration::from_secs(300));
    assert_eq!(h.ready(), Err("broker not connected".into()));
    h.set_broker(true);
    // Regression: the store flag started true, so a worker whose store was
    // down said it was ready until a job found out.
    assert_eq!(h.ready(), Err("object storage not checked yet".into()));
    assert!(!h.open(), "no intake before the store answered");
    h.set_store(true);
    assert_eq!(h.ready(), Err("public URLs not probed yet".into()));
    // Regression (review): intake opened before the first probe, so jobs
    // prefetched at start published `ready` with URLs nobody had checked.
    assert!(!h.open(), "no intake before the first probe");
    h.set_public(Public::Fetchable);
    assert_eq!(h.ready(), Err("not consuming yet".into()));
    h.set_consuming(true);
    assert_eq!(h.ready(), Ok(()));
    h.set_public(Public::Unfetchable("it answers 403".into()));
    assert!(
        h.ready()
            .is_err_and(|e| e.contains("403") && e.contains("deferred"))
    );
    assert!(h.public_unfetchable());
    assert!(h.open(), "intake stays open: hosted jobs still run");
    assert!(h.alive().is_ok(), "a restart does not fix a DNS record");
    h.set_public(Public::Warned("it answers 403".into()));
    assert_eq!(h.ready(), Ok(()), "warn only reports");
    assert!(!h.public_unfetchable());
    h.set_public(Public::Fetchable);
    h.set_store(false);
    assert!(h.ready().is_err_and(|e| e.contains("storage")));
    h.set_store(true);
    let hold = h.hold_publish();
    assert!(h.ready().is_err_and(|e| e.contains("published")));
    drop(hold);
    assert_eq!(h.ready(), Ok(()));
    h.set_blocked(Some("low on memory".into()));
    assert!(
        h.ready()
            .is_err_and(|e| e.contains("blocks publishing (low on memory)"))
    );
    h.set_blocked(None);
    h.set_topology_error(Some("conflict".into()));
    assert!(h.ready().is_err_and(|e| e.contains("topology")));
}

#[test]
fn intake_opens_when_the_last_hold_is_dropped() {
    let h = healthy();
    assert!(h.open());
    let a = h.hold_publish();
    let b = h.hold_publish();
    assert!(!h.open());
    drop(a);
    assert!(!h.open(), "one delivery still cannot publish");
    drop(b);
    assert!(h.open(), "nothing else has to set it back");
    h.set_blocked(Some("memory".into()));
    assert!(!h.open());
    h.set_blocked(None);
    h.set_store(false);
    assert!(!h.open());
}

#[tokio::test]
async fn wait_open_returns_once_holds_end() {
    let h = std::sync::Arc::new(healthy());
    let hold_count = h.clone();
    let held = tokio::spawn(async move {
        let _hold = hold_count.hold_publish();
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(Duration::from_secs(5), h.wait_open())
        .await
        .expect("opens when the holding delivery gives up");
    held.await.expect("join");
}
