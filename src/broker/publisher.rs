//! Publishing with publisher confirms, on a channel of its own.
//!
//! A publish succeeds only when the broker acks it. A nack, a returned
//! message (for the worker's own moves, which are `mandatory`: a missing
//! retry or parking queue must not swallow a job) or a channel error is a
//! failure; the channel is then replaced on the next publish.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use std::sync::Arc;

use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;

use super::Names;
use super::headers::{self, short};
use crate::result::ResultMessage;
use crate::trace::TraceContext;

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue took the message (returned as unroutable)")]
    Returned,
    #[error("cannot encode the result: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Publishes on one connection.
pub struct Publisher {
    conn: Arc<Connection>,
    channel: Mutex<Option<Channel>>,
}

impl Publisher {
    pub fn new(conn: Arc<Connection>) -> Self {
        Publisher {
            conn,
            channel: Mutex::new(None),
        }
    }

    /// Closes the connection (at shutdown).
    pub async fn close(&self) {
        let _ = self.conn.close(200, "shutdown".into()).await;
    }

    /// Whether the connection is still up.
    pub fn connected(&self) -> bool {
        self.conn.status().connected()
    }

    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut slot = self.channel.lock().await;
        if let Some(ch) = slot.as_ref()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let ch = self.conn.create_channel().await?;
        ch.confirm_select(ConfirmSelectOptions::default()).await?;
        *slot = Some(ch.clone());
        Ok(ch)
    }

    /// Publishes one message and waits for the broker's confirm.
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        mandatory: bool,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), PublishError> {
        let ch = self.channel().await?;
        let opts = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let confirm = ch
            .basic_publish(short(exchange), short(routing_key), opts, body, props)
            .await?;
        match confirm.await? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_)) => Err(PublishError::Returned),
            Confirmation::Nack(_) => Err(PublishError::Nacked),
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }

    /// Whether the broker blocks this connection (`connection.blocked`):
    /// publishes would wait, unconfirmed, until it unblocks.
    pub fn blocked(&self) -> bool {
        self.conn.status().blocked()
    }

    /// Publishes a result to the results exchange (not mandatory: results
    /// never depend on consumers being bound).
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn event(
        &self,
        names: &Names,
        result: &ResultMessage,
        trace: &TraceContext,
    ) -> Result<(), PublishError> {
        let body = serde_json::to_vec(result)?;
        let props = result_properties(result, None, trace);
        self.publish(
            &names.results_exchange,
            result.status.routing_key(),
            false,
            &body,
            props,
        )
        .await
    }

    /// Sends a result to the job's `reply_to` queue through the default
    /// exchange, with its `correlation_id`.
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn reply(
        &self,
        queue: &str,
        correlation_id: Option<&str>,
        result: &ResultMessage,
        trace: &TraceContext,
    ) -> Result<(), PublishError> {
        let body = serde_json::to_vec(result)?;
        let props = result_properties(result, correlation_id, trace);
        self.publish("", queue, false, &body, props).await
    }

    /// Moves a job to its retry queue with the next attempt number.
    ///
    /// # Errors
    /// See [`PublishError`]; a missing queue is [`PublishError::Returned`].
    pub async fn retry(
        &self,
        queue: &str,
        body: &[u8],
        props: &BasicProperties,
        next_attempt: u32,
        trace: &TraceContext,
    ) -> Result<(), PublishError> {
        let headers = trace.apply(headers::with_attempt(
            props.headers().as_ref(),
            next_attempt,
        ));
        let props = headers::moved(props).with_headers(headers);
        self.publish("", queue, true, body, props).await
    }

    /// Defers a job (its public URL is not fetchable): a copy to `queue`
    /// (the longest retry queue) with the attempt unchanged and the first
    /// deferral's time.
    ///
    /// # Errors
    /// See [`PublishError`]; a missing queue is [`PublishError::Returned`].
    pub async fn defer(
        &self,
        queue: &str,
        body: &[u8],
        props: &BasicProperties,
        trace: &TraceContext,
    ) -> Result<(), PublishError> {
        let now = chrono::Utc::now().timestamp_millis();
        let headers = trace.apply(headers::deferred(props.headers().as_ref(), now));
        let props = headers::moved(props).with_headers(headers);
        self.publish("", queue, true, body, props).await
    }

    /// Parks a message in the dead-letter queue with its original bytes and
    /// properties (but no expiration), plus the reason and time.
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn park(
        &self,
        names: &Names,
        body: &[u8],
        props: &BasicProperties,
        reason: &str,
        trace: &TraceContext,
    ) -> Result<(), PublishError> {
        let now = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
        let h = headers::with_text(props.headers().as_ref(), headers::REASON, reason);
        let h = headers::with_text(Some(&h), headers::PARKED_AT, &now);
        let props = headers::moved(props).with_headers(trace.apply(h));
        self.publish("", &names.dead, true, body, props).await
    }

    /// Sends a message to the job queue (for replays), attempts reset.
    ///
    /// # Errors
    /// See [`PublishError`].
    pub async fn requeue(
        &self,
        names: &Names,
        body: &[u8],
        props: &BasicProperties,
    ) -> Result<(), PublishError> {
        let h: FieldTable = headers::reset(props.headers().as_ref());
        let props = headers::moved(props).with_headers(h);
        self.publish("", &names.queue, true, body, props).await
    }

    /// Declares the topology again (after a publish found something missing).
    ///
    /// # Errors
    /// See [`super::topology::TopologyError`].
    pub async fn ensure_topology(
        &self,
        names: &Names,
    ) -> Result<(), super::topology::TopologyError> {
        super::topology::ensure(&self.conn, names).await
    }

    /// Messages waiting in `queue` (a passive declare).
    ///
    /// # Errors
    /// When the queue does not exist or the broker fails.
    pub async fn depth(&self, queue: &str) -> Result<u32, lapin::Error> {
        let ch = self.conn.create_channel().await?;
        let opts = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let q = ch
            .queue_declare(short(queue), opts, FieldTable::default())
            .await;
        let _ = ch.close(200, "ok".into()).await;
        Ok(q?.message_count())
    }
}

/// The properties of a result message: persistent JSON, its own
/// `message_id`, the time, the job's trace context, and the job's
/// `correlation_id` for replies.
fn result_properties(
    result: &ResultMessage,
    correlation_id: Option<&str>,
    trace: &TraceContext,
) -> BasicProperties {
    let props = BasicProperties::default()
        .with_headers(trace.apply(FieldTable::default()))
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(short(&result.message_id()))
        .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
    match correlation_id {
        Some(c) => props.with_correlation_id(short(c)),
        None => props,
    }
}
