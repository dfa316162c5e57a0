//! A memory alarm blocks publishing broker-wide.

use std::time::Duration;

use rehost::result::Status;

use crate::helpers::*;
use crate::{SERIAL, broker_env};

/// Raises the broker's memory alarm until dropped (then restores the
/// watermark it found).
struct MemoryAlarm {
    restore: Vec<String>,
}

impl MemoryAlarm {
    fn raise() -> MemoryAlarm {
        let found = broker_env("vm_memory_high_watermark");
        // `{ok,0.4}` (relative) or `{ok,{absolute,N}}`.
        let restore = match found.strip_prefix("{ok,").and_then(|v| v.strip_suffix('}')) {
            Some(v) if v.starts_with("{absolute,") => {
                let n = v.trim_start_matches("{absolute,").trim_end_matches('}');
                vec!["absolute".to_string(), n.to_string()]
            }
            Some(v) => vec![v.to_string()],
            None => vec!["0.4".to_string()],
        };
        rabbitmqctl(&["set_vm_memory_high_watermark", "absolute", "1000"]);
        MemoryAlarm { restore }
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        let mut args = vec!["set_vm_memory_high_watermark"];
        args.extend(self.restore.iter().map(String::as_str));
        rabbitmqctl(&args);
    }
}

/// Regression: a job finished under a memory alarm (its result publish
/// blocked), the connection was then closed and the alarm cleared; the
/// worker reconnected but never took a job again, while `/healthz` said it
/// was fine and `/readyz` blamed publishing for ever.
#[tokio::test]
async fn a_blocked_publish_and_a_cut_do_not_wedge_the_worker() {
    if !broker_or_skip("a_blocked_publish_and_a_cut_do_not_wedge_the_worker") {
        return;
    }
    let _one = SERIAL.lock().await;
    let origin = origin().await;
    let proxy = Proxy::start().await;
    let url = proxy.url();
    let mut b = Bench::new(&[("AMQP_URL", url.as_str())]).await;
    let w = b.start_worker().await;
    b.publish(&job(
        "blocked",
        &[origin.url("small.jpg?delay_ms=1500")],
        true,
    ))
    .await;
    eventually("the job is in flight", || async {
        origin.stats.requests() >= 1
    })
    .await;
    let alarm = MemoryAlarm::raise();
    eventually("readyz says the broker blocks publishing", || async {
        let (status, body) = http_get(w.http_addr, "/readyz").await;
        status == 503 && body.contains("blocks publishing")
    })
    .await;
    proxy.sever();
    eventually("a new connection", || async {
        proxy.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(alarm);
    let r = b.next_result().await;
    assert_eq!((r.job_id.as_str(), r.status), ("blocked", Status::Ready));
    b.publish(&job("after", &[origin.url("small.jpg?after=1")], true))
        .await;
    let r = b.next_result().await;
    assert_eq!(
        (r.job_id.as_str(), r.status),
        ("after", Status::Ready),
        "the worker takes jobs again"
    );
    eventually("ready again", || async {
        http_get(w.http_addr, "/readyz").await.0 == 200
    })
    .await;
    assert_eq!(http_get(w.http_addr, "/healthz").await.0, 200);
    w.stop().await;
    b.cleanup().await;
}
