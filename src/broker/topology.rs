//! The contract's exchanges and queues, declared idempotently at start (or
//! only checked when `REHOST_DECLARE=false`).
//!
//! | name | kind |
//! | --- | --- |
//! | `{exchange}` | topic exchange, durable |
//! | `{queue}` | quorum queue, `x-delivery-limit` 5, at-least-once dead-lettering to `{queue}.dead`, bound with `{routing_key}` |
//! | `{queue}.retry-q.{delay}` | quorum queue, `x-message-ttl`, at-least-once dead-lettering back to `{queue}` |
//! | `{queue}.dead` | durable parking lot |
//! | `{results_exchange}` | topic exchange, durable |
//! | `{results_queue}` | quorum queue bound to the results exchange with `#` |

use lapin::options::{
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Connection, ExchangeKind};

use super::headers::short;
use super::{DELIVERY_LIMIT, Names};

/// A topology problem, said plainly.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TopologyError(pub String);

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(short(k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn int(n: i64) -> AMQPValue {
    AMQPValue::LongLongInt(n)
}

/// One step of the topology: an exchange (durable, topic), a queue
/// (durable, with its arguments), or a binding `(queue, exchange, key)`.
enum Item<'a> {
    Exchange(&'a str),
    Queue(&'a str, FieldTable),
    Bind(&'a str, &'a str, &'a str),
}

fn items(n: &Names) -> Vec<Item<'_>> {
    let mut v = vec![
        Item::Exchange(&n.exchange),
        Item::Exchange(&n.results_exchange),
        Item::Queue(&n.dead, FieldTable::default()),
        Item::Queue(
            &n.queue,
            table(&[
                ("x-queue-type", text("quorum")),
                ("x-delivery-limit", int(DELIVERY_LIMIT)),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&n.dead)),
                // Parked messages are never dropped on the way to `.dead`.
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ]),
        ),
        Item::Bind(&n.queue, &n.exchange, &n.routing_key),
    ];
    for (delay, name) in &n.retries {
        // Quorum, so a job falling due is never dropped on its way back: if
        // the job queue refuses it (or is missing), the broker keeps it and
        // offers it again.
        v.push(Item::Queue(
            name,
            table(&[
                ("x-queue-type", text("quorum")),
                (
                    "x-message-ttl",
                    int(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
                ),
                ("x-dead-letter-exchange", text("")),
                ("x-dead-letter-routing-key", text(&n.queue)),
                ("x-dead-letter-strategy", text("at-least-once")),
                ("x-overflow", text("reject-publish")),
            ]),
        ));
    }
    if let Some(rq) = &n.results_queue {
        v.push(Item::Queue(rq, table(&[("x-queue-type", text("quorum"))])));
        v.push(Item::Bind(rq, &n.results_exchange, "#"));
    }
    v
}

/// Declares (or, with `declare` off, checks) every exchange and queue. Each
/// step runs on a fresh channel, since a refused step closes its channel.
///
/// # Errors
/// A conflicting declaration, a missing entity (when only checking), or a
/// broker failure, with the name and what to do.
pub async fn ensure(conn: &Connection, n: &Names) -> Result<(), TopologyError> {
    let channel = || async {
        conn.create_channel()
            .await
            .map_err(|e| TopologyError(format!("cannot open a channel: {e}")))
    };
    for item in items(n) {
        let ch = channel().await?;
        let result = match &item {
            Item::Exchange(name) => {
                let opts = ExchangeDeclareOptions {
                    durable: true,
                    passive: !n.declare,
                    ..ExchangeDeclareOptions::default()
                };
                ch.exchange_declare(
                    short(name),
                    ExchangeKind::Topic,
                    opts,
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
            }
            Item::Queue(name, args) => {
                let opts = QueueDeclareOptions {
                    durable: true,
                    passive: !n.declare,
                    ..QueueDeclareOptions::default()
                };
                let args = if n.declare {
                    args.clone()
                } else {
                    FieldTable::default()
                };
                ch.queue_declare(short(name), opts, args).await.map(|_| ())
            }
            Item::Bind(queue, exchange, key) if n.declare => {
                ch.queue_bind(
                    short(queue),
                    short(exchange),
                    short(key),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            }
            Item::Bind(..) => Ok(()),
        };
        let _ = ch.close(200, ShortString::from("ok")).await;
        if let Err(e) = result {
            return Err(explain(&item, &e, n.declare));
        }
    }
    Ok(())
}

/// Deletes the classic retry queues of earlier versions once they have
/// drained (their jobs return to the job queue by their own TTL); a queue
/// still holding jobs (the broker refuses the delete) is left for a later
/// start. Deleting a queue that does not exist succeeds quietly. Only with
/// `declare` on.
pub async fn retire_legacy(conn: &Connection, n: &Names) {
    if !n.declare {
        return;
    }
    for name in &n.legacy_retries {
        let Ok(ch) = conn.create_channel().await else {
            return;
        };
        let opts = QueueDeleteOptions {
            if_empty: true,
            if_unused: true,
            ..QueueDeleteOptions::default()
        };
        match ch.queue_delete(short(name), opts).await {
            Ok(_) => {}
            Err(e) => {
                tracing::info!(queue = %name, error = %e, "an earlier version's retry queue still holds jobs; they return to the job queue by its TTL, and it is deleted at a later start")
            }
        }
        let _ = ch.close(200, ShortString::from("ok")).await;
    }
}

fn explain(item: &Item<'_>, e: &lapin::Error, declare: bool) -> TopologyError {
    let (what, name) = match item {
        Item::Exchange(name) => ("exchange", *name),
        Item::Queue(name, _) => ("queue", *name),
        Item::Bind(queue, ..) => ("binding of queue", *queue),
    };
    let text = e.to_string();
    let hint = if text.contains("PRECONDITION_FAILED") || text.contains("inequivalent") {
        format!(
            "{what} {name:?} already exists with different settings; delete it (its messages go with it) or choose other names (REHOST_QUEUE, REHOST_EXCHANGE, ...)"
        )
    } else if text.contains("NOT_FOUND") && !declare {
        format!(
            "{what} {name:?} does not exist and REHOST_DECLARE=false; declare it, or set REHOST_DECLARE=true"
        )
    } else if text.contains("ACCESS_REFUSED") {
        format!(
            "the broker user may not declare {what} {name:?}; grant configure rights or set REHOST_DECLARE=false"
        )
    } else {
        format!("cannot set up {what} {name:?}")
    };
    TopologyError(format!("{hint} ({text})"))
}
