//! `rehost replay-dead`: parked messages back to the job queue, attempts reset.
//!
//! Messages are taken one at a time with `basic.get` and left unacked until
//! they are republished (confirmed) to the job queue; messages that do not
//! match the filter, and every message of a dry run, stay unacked and return
//! to the parking lot when the channel closes, in their order.

use lapin::options::{BasicAckOptions, BasicGetOptions};

use super::headers::{self, short};
use super::publisher::Publisher;
use super::{Names, connect};

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    pub limit: Option<usize>,
    /// Only messages whose reason contains this text.
    pub reason: Option<String>,
    pub dry_run: bool,
}

/// One parked message, as listed.
#[derive(Debug, Clone)]
pub struct Parked {
    pub reason: String,
    pub parked_at: Option<String>,
    pub message_id: Option<String>,
    pub bytes: usize,
    pub replayed: bool,
}

/// Replays (or lists) parked messages.
///
/// # Errors
/// Broker failures.
pub async fn replay(
    amqp_url: &str,
    names: &Names,
    opts: &ReplayOptions,
) -> anyhow::Result<Vec<Parked>> {
    let conn = std::sync::Arc::new(connect(amqp_url).await?);
    let publisher = Publisher::new(conn.clone());
    let channel = conn.create_channel().await?;
    let mut out = Vec::new();
    while opts.limit.is_none_or(|l| {
        out.iter()
            .filter(|p: &&Parked| p.replayed || opts.dry_run)
            .count()
            < l
    }) {
        let Some(msg) = channel
            .basic_get(short(&names.dead), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = msg.delivery;
        let h = delivery.properties.headers().as_ref();
        let reason = headers::text(h, headers::REASON)
            .or_else(|| headers::death_reason(h).map(|r| format!("broker: {r}")))
            .unwrap_or_else(|| "unknown".into());
        let matches = opts
            .reason
            .as_ref()
            .is_none_or(|r| reason.contains(r.as_str()));
        let mut parked = Parked {
            parked_at: headers::text(h, headers::PARKED_AT),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str().to_string()),
            bytes: delivery.data.len(),
            reason,
            replayed: false,
        };
        if matches && !opts.dry_run {
            publisher
                .requeue(names, &delivery.data, &delivery.properties)
                .await?;
            delivery.acker.ack(BasicAckOptions::default()).await?;
            parked.replayed = true;
        }
        if matches {
            out.push(parked);
        }
    }
    // Everything still unacked goes back to the parking lot.
    let _ = channel.close(200, short("done")).await;
    let _ = conn.close(200, short("done")).await;
    Ok(out)
}
