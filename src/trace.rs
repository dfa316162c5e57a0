//! W3C trace context across the queue: a job's `traceparent` (and
//! `tracestate`) AMQP header makes the job's span a child of the caller's
//! trace, so every log line of the job carries the caller's trace id; every
//! message the worker publishes for the job (result, `reply_to` copy, retry
//! move, parked body) carries a `traceparent` naming the job's span. A job
//! without one (or with a malformed one) starts a new trace.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The trace a job belongs to, and its own span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// This job's span: 16 lowercase hex digits.
    pub span_id: String,
    /// The caller's span, when the job carried one.
    pub parent_id: Option<String>,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
    /// The caller's `tracestate`, passed on unchanged.
    pub state: Option<String>,
}

fn random_hex(bytes: usize) -> String {
    loop {
        let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
        if v.iter().any(|b| *b != 0) {
            return hex::encode(v);
        }
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl TraceContext {
    /// A new trace (sampled), with a new span for the job.
    pub fn new_trace() -> TraceContext {
        TraceContext {
            trace_id: random_hex(16),
            span_id: random_hex(8),
            parent_id: None,
            flags: 1,
            state: None,
        }
    }

    /// The job's context from its `traceparent` and `tracestate` headers
    /// (read by `broker::headers::trace_context`): a child of the caller's
    /// span when `traceparent` is valid, else a new trace.
    pub fn from_parts(traceparent: Option<&str>, tracestate: Option<String>) -> TraceContext {
        let Some(parent) = traceparent.and_then(parse) else {
            return TraceContext::new_trace();
        };
        TraceContext {
            state: tracestate.filter(|s| !s.is_empty() && s.len() <= 512),
            ..parent
        }
    }

    /// `traceparent` for a message published within this job's span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }

    /// `headers` with this job's `traceparent` (and the caller's `tracestate`).
    pub fn apply(&self, mut headers: FieldTable) -> FieldTable {
        let long = |s: &str| AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()));
        headers.insert(ShortString::from(TRACEPARENT), long(&self.traceparent()));
        if let Some(state) = &self.state {
            headers.insert(ShortString::from(TRACESTATE), long(state));
        }
        headers
    }
}

/// Parses `00-{trace 32 hex}-{parent 16 hex}-{flags 2 hex}` (version 00, or a
/// later version's first four fields); all-zero ids are invalid.
fn parse(text: &str) -> Option<TraceContext> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [version, trace, parent, flags, ..] = parts.as_slice() else {
        return None;
    };
    let valid = is_hex(version, 2)
        && *version != "ff"
        && (*version != "00" || parts.len() == 4)
        && is_hex(trace, 32)
        && is_hex(parent, 16)
        && is_hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| TraceContext {
        trace_id: (*trace).to_string(),
        span_id: random_hex(8),
        parent_id: Some((*parent).to_string()),
        flags: u8::from_str_radix(flags, 16).unwrap_or(0),
        state: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&str, &str)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(
                ShortString::from(*k),
                AMQPValue::LongString(LongString::from(v.as_bytes().to_vec())),
            );
        }
        t
    }

    #[test]
    fn a_job_joins_its_callers_trace() {
        let h = headers(&[(TRACEPARENT, PARENT), (TRACESTATE, "vendor=x")]);
        let t = crate::broker::headers::trace_context(Some(&h));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_ne!(t.span_id, "00f067aa0ba902b7", "the job has its own span");
        assert_eq!(t.flags, 1);
        let out = t.apply(FieldTable::default());
        let tp = crate::broker::headers::text(Some(&out), TRACEPARENT).expect("traceparent");
        assert_eq!(
            tp,
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", t.span_id)
        );
        assert_eq!(
            crate::broker::headers::text(Some(&out), TRACESTATE).as_deref(),
            Some("vendor=x")
        );
    }

    #[test]
    fn malformed_or_absent_context_starts_a_new_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let t = crate::broker::headers::trace_context(Some(&headers(&[(TRACEPARENT, bad)])));
            assert_eq!(t.parent_id, None, "{bad:?}");
            assert!(is_hex(&t.trace_id, 32) && is_hex(&t.span_id, 16));
        }
        let a = crate::broker::headers::trace_context(None);
        let b = crate::broker::headers::trace_context(None);
        assert_ne!(a.trace_id, b.trace_id);
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future";
        let t = crate::broker::headers::trace_context(Some(&headers(&[(TRACEPARENT, later)])));
        assert!(
            t.parent_id.is_some(),
            "a later version's first fields are used"
        );
    }
}
