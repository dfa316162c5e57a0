//! AMQP headers rehost reads and writes.
//!
//! Everything that came from a message is built with fallible constructors:
//! lapin's `ShortString::from` panics above 255 bytes.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::trace::{TRACEPARENT, TRACESTATE, TraceContext};

pub const ATTEMPT: &str = "x-rehost-attempt";
pub const REASON: &str = "x-rehost-reason";
pub const PARKED_AT: &str = "x-rehost-parked-at";
/// When a job was first deferred for an unfetchable public URL (ms since
/// the Unix epoch); kept across deferrals, dropped when the job moves on.
pub const DEFERRED_AT: &str = "x-rehost-deferred-at";

/// The try this delivery is (absent or unreadable: 1).
pub fn attempt(headers: Option<&FieldTable>) -> u32 {
    number(headers, ATTEMPT)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// When the job was first deferred, if it was (ms since the epoch).
pub fn deferred_at(headers: Option<&FieldTable>) -> Option<i64> {
    number(headers, DEFERRED_AT)
}

/// A whole-number header, in any of the integer or text forms clients use.
fn number(headers: Option<&FieldTable>, key: &str) -> Option<i64> {
    let v = headers.and_then(|h| h.inner().get(key))?;
    match v {
        AMQPValue::ShortShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse().ok()),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        _ => None,
    }
}

/// A string header value, if present.
pub fn text(headers: Option<&FieldTable>, key: &str) -> Option<String> {
    match headers?.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// The trace context of a delivery (see [`crate::trace`]).
pub fn trace_context(headers: Option<&FieldTable>) -> TraceContext {
    TraceContext::from_parts(
        text(headers, TRACEPARENT).as_deref(),
        text(headers, TRACESTATE),
    )
}

/// Why the broker dead-lettered a message (`x-death[0].reason`), if it did.
pub fn death_reason(headers: Option<&FieldTable>) -> Option<String> {
    let AMQPValue::FieldArray(deaths) = headers?.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// `headers` with `key` set to a string value.
pub fn with_text(headers: Option<&FieldTable>, key: &'static str, value: &str) -> FieldTable {
    let mut t = headers.cloned().unwrap_or_default();
    t.insert(
        ShortString::from(key),
        AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
    );
    t
}

/// The broker's dead-letter history: dropped when the worker moves a job,
/// since a retry queue that finds itself in `x-death` takes the move for a
/// dead-letter cycle and keeps the job forever.
const DEATH_HISTORY: &[&str] = &[
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// `headers` without the broker's dead-letter history, with the attempt
/// counter set (a first deferral's time is kept: "since its first
/// deferral" survives the retries of a job that failed for it).
pub fn with_attempt(headers: Option<&FieldTable>, attempt: u32) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in headers.map(FieldTable::inner).into_iter().flatten() {
        if !DEATH_HISTORY.contains(&k.as_str()) {
            t.insert(k.clone(), v.clone());
        }
    }
    t.insert(
        ShortString::from(ATTEMPT),
        AMQPValue::LongLongInt(i64::from(attempt)),
    );
    t
}

/// `headers` of a deferred job: the attempt unchanged, the first
/// deferral's time kept (or `now_ms` on the first, or when the header lies
/// in the future), no death history.
pub fn deferred(headers: Option<&FieldTable>, now_ms: i64) -> FieldTable {
    let first = deferred_at(headers)
        .filter(|t| *t <= now_ms)
        .unwrap_or(now_ms);
    let mut t = with_attempt(headers, attempt(headers));
    t.insert(
        ShortString::from(DEFERRED_AT),
        AMQPValue::LongLongInt(first),
    );
    t
}

/// `headers` without rehost's own keys and the broker's death history
/// (a replayed message starts over).
pub fn reset(headers: Option<&FieldTable>) -> FieldTable {
    let mut t = FieldTable::default();
    if let Some(h) = headers {
        for (k, v) in h.inner() {
            if ![ATTEMPT, REASON, PARKED_AT, DEFERRED_AT].contains(&k.as_str())
                && !DEATH_HISTORY.contains(&k.as_str())
            {
                t.insert(k.clone(), v.clone());
            }
        }
    }
    t
}

/// The properties of a message the worker moves (to a retry queue, the
/// parking lot, or back to the job queue): the job's own, persistent, but
/// without `expiration` (a short job TTL would cut a retry delay short or
/// let a parked job expire silently) and without `user_id` (the broker
/// checks it against the connection's user).
pub fn moved(p: &BasicProperties) -> BasicProperties {
    let mut out = BasicProperties::default().with_delivery_mode(2);
    let copy = |out: BasicProperties,
                v: &Option<ShortString>,
                set: fn(BasicProperties, ShortString) -> BasicProperties| match v {
        Some(v) => set(out, v.clone()),
        None => out,
    };
    out = copy(out, p.content_type(), BasicProperties::with_content_type);
    out = copy(
        out,
        p.content_encoding(),
        BasicProperties::with_content_encoding,
    );
    out = copy(
        out,
        p.correlation_id(),
        BasicProperties::with_correlation_id,
    );
    out = copy(out, p.reply_to(), BasicProperties::with_reply_to);
    out = copy(out, p.message_id(), BasicProperties::with_message_id);
    out = copy(out, p.kind(), BasicProperties::with_type);
    out = copy(out, p.app_id(), BasicProperties::with_app_id);
    if let Some(h) = p.headers() {
        out = out.with_headers(h.clone());
    }
    if let Some(prio) = p.priority() {
        out = out.with_priority(*prio);
    }
    if let Some(ts) = p.timestamp() {
        out = out.with_timestamp(*ts);
    }
    out
}

/// A short string from untrusted text, cut (at a char boundary) to fit.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_header_in_any_integer_form() {
        assert_eq!(attempt(None), 1);
        for (v, want) in [
            (AMQPValue::LongLongInt(3), 3),
            (AMQPValue::LongInt(2), 2),
            (AMQPValue::ShortShortUInt(4), 4),
            (AMQPValue::ShortShortInt(6), 6),
            (AMQPValue::ShortInt(7), 7),
            (AMQPValue::ShortUInt(8), 8),
            (AMQPValue::LongUInt(9), 9),
            (AMQPValue::ShortString(ShortString::from(" 10 ")), 10),
            (AMQPValue::LongString(LongString::from(b"5".to_vec())), 5),
            (AMQPValue::LongLongInt(-1), 1),
            (AMQPValue::Boolean(true), 1),
        ] {
            let mut t = FieldTable::default();
            t.insert(ShortString::from(ATTEMPT), v);
            assert_eq!(attempt(Some(&t)), want);
        }
    }

    /// Regression (review): a retry move dropped the first deferral's time,
    /// so a job that failed for a long deferral was deferred anew for
    /// another full period on each retry.
    #[test]
    fn the_first_deferral_survives_moves_and_never_lies_in_the_future() {
        let now = 1_000_000;
        let first = deferred(None, now);
        assert_eq!(deferred_at(Some(&first)), Some(now));
        assert_eq!(attempt(Some(&first)), 1, "attempt unchanged");
        let again = deferred(Some(&first), now + 5_000);
        assert_eq!(deferred_at(Some(&again)), Some(now), "since the first");
        let moved = with_attempt(Some(&again), 2);
        assert_eq!(deferred_at(Some(&moved)), Some(now), "a retry keeps it");
        assert_eq!(attempt(Some(&moved)), 2);
        let future = deferred(Some(&deferred(None, now + 60_000)), now);
        assert_eq!(
            deferred_at(Some(&future)),
            Some(now),
            "a future time is now"
        );
        assert_eq!(
            deferred_at(Some(&reset(Some(&moved)))),
            None,
            "a replay starts over"
        );
    }

    #[test]
    fn short_strings_never_panic() {
        assert_eq!(short(&"é".repeat(300)).as_str().len(), 254);
        assert_eq!(short("ok").as_str(), "ok");
    }

    #[test]
    fn moved_messages_keep_the_job_but_not_its_expiration() {
        let props = BasicProperties::default()
            .with_expiration(short("1000"))
            .with_user_id(short("someone-else"))
            .with_message_id(short("m1"))
            .with_correlation_id(short("c1"))
            .with_reply_to(short("replies"))
            .with_timestamp(1_700_000_000)
            .with_headers(with_attempt(None, 2));
        let m = moved(&props);
        assert_eq!(m.expiration(), &None);
        assert_eq!(m.user_id(), &None);
        assert_eq!(m.delivery_mode(), &Some(2));
        assert_eq!(m.message_id().as_ref().map(ShortString::as_str), Some("m1"));
        assert_eq!(
            m.correlation_id().as_ref().map(ShortString::as_str),
            Some("c1")
        );
        assert_eq!(
            m.reply_to().as_ref().map(ShortString::as_str),
            Some("replies")
        );
        assert_eq!(m.timestamp(), &Some(1_700_000_000));
        assert_eq!(attempt(m.headers().as_ref()), 2);
    }

    #[test]
    fn reset_drops_history() {
        let t = with_attempt(Some(&with_text(None, REASON, "x")), 4);
        let mut t2 = t.clone();
        t2.insert(ShortString::from("keep"), AMQPValue::Boolean(true));
        let r = reset(Some(&t2));
        assert!(r.inner().get(ATTEMPT).is_none() && r.inner().get(REASON).is_none());
        assert!(r.inner().get("keep").is_some());
    }
}
