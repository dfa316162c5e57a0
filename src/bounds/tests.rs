use super::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn the_defaults_leave_eight_minutes_of_slack() {
    let b = Budgets::derive(secs(1800), secs(1200)).expect("defaults fit");
    assert_eq!(b.delivery, secs(1740));
    assert_eq!(b.slack, secs(480));
    assert_eq!(b.pause_limit(), secs(480));
}

/// Regression: the delivery budget was a constant 25 minutes, so a try of a
/// job whose deadline was an hour ended unpublished and was handed back.
#[test]
fn a_long_job_deadline_gets_a_budget_that_outlives_its_try() {
    let b = Budgets::derive(secs(7200), secs(3600)).expect("fits");
    let arrived = Instant::now();
    let try_ended = arrived + secs(3600);
    assert!(
        b.deadline(arrived) >= try_ended + PUBLISH_ALLOWANCE,
        "a whole try and its publish fit: {b:?}"
    );
    assert!(b.deadline(arrived) + ACK_MARGIN <= arrived + secs(7200));
}

#[test]
fn settings_that_do_not_fit_are_refused_naming_both() {
    let e = Budgets::derive(secs(1800), secs(3600)).expect_err("an hour under 30 minutes");
    assert!(e.contains("REHOST_JOB_TIMEOUT_SECS"), "{e}");
    assert!(
        e.contains("REHOST_CONSUMER_TIMEOUT_SECS to at least 3780"),
        "{e}"
    );
}

#[test]
fn the_fit_is_exact_at_its_boundary() {
    let needed = secs(1000) + MIN_STORE_HOLD + PUBLISH_ALLOWANCE + ACK_MARGIN;
    let b = Budgets::derive(needed, secs(1000)).expect("exactly fits");
    assert_eq!(b.slack, MIN_STORE_HOLD);
    assert_eq!(b.delivery, needed - ACK_MARGIN);
    assert!(Budgets::derive(needed - Duration::from_millis(1), secs(1000)).is_err());
}

#[test]
fn a_delivery_starts_a_try_only_while_one_fits() {
    let b = Budgets::derive(secs(1800), secs(1200)).expect("defaults");
    assert_eq!(b.at_take(Duration::ZERO), AtTake::Run);
    assert_eq!(b.at_take(b.slack), AtTake::Run);
    assert_eq!(
        b.at_take(b.slack + Duration::from_millis(1)),
        AtTake::HandBack
    );
}

#[test]
fn a_store_hold_ends_when_a_rerun_would_no_longer_fit() {
    let b = Budgets::derive(secs(1800), secs(1200)).expect("defaults");
    let arrived = Instant::now();
    let latest = arrived + b.delivery - b.job_timeout - PUBLISH_ALLOWANCE;
    assert_eq!(latest, arrived + b.slack);
    // Early on, the slack bounds it.
    assert_eq!(b.hold_until(arrived, arrived + secs(10)), Some(latest));
    // With a long slack, one hold lasts at most MAX_STORE_HOLD.
    let long = Budgets::derive(secs(7200), secs(600)).expect("fits");
    assert_eq!(
        long.hold_until(arrived, arrived + secs(10)),
        Some(arrived + secs(10) + MAX_STORE_HOLD)
    );
    // At or past the latest start, no hold fits.
    assert_eq!(b.hold_until(arrived, latest), None);
    assert_eq!(b.hold_until(arrived, latest + secs(1)), None);
    assert_eq!(
        b.hold_until(arrived, latest - secs(1)),
        Some(latest),
        "a second still fits"
    );
}

#[test]
fn running_workers_sweep_at_least_every_ten_minutes_of_deadline() {
    assert_eq!(sweep_every(secs(60)), secs(600));
    assert_eq!(sweep_every(secs(1200)), secs(1200));
}

#[test]
fn sizes_are_what_their_names_say() {
    assert_eq!(kib(64), 65_536);
    assert_eq!(mib(1), 1_048_576);
    assert_eq!(IMAGE_BUFFER_BUDGET, 268_435_456);
    assert_eq!(MOOV_LIMIT, 33_554_432);
    assert_eq!(PREFIX_BYTES, 65_536);
}
