use serde_json::json;

use super::*;

fn body(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("serialize")
}

fn base() -> serde_json::Value {
    json!({
        "job_id": "job_01",
        "post_id": "post_789",
        "workspace_id": "ws_prod_01",
        "external_id": "cms-4711",
        "accounts": [{"id": "a", "platform": "tiktok", "type": "hosted"},
                     {"id": "b", "platform": "instagram", "type": "byo"}],
        "media": {"type": "slideshow", "urls": ["https://cdn.example.com/a.jpg"]},
        "extra_field_from_the_future": {"ignored": true}
    })
}

fn error_of(v: serde_json::Value) -> JobError {
    match parse(&body(v), None) {
        Parsed::Invalid { error, .. } => error,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn not_a_job(bytes: &[u8]) -> String {
    match parse(bytes, None) {
        Parsed::NotAJob { reason } => reason,
        other => panic!("expected NotAJob, got {other:?}"),
    }
}

#[test]
fn valid_job_parses_and_ignores_unknown_fields() {
    let Parsed::Job(job) = parse(&body(base()), None) else {
        panic!("expected a job");
    };
    assert_eq!(job.ids.job_id, "job_01");
    assert_eq!(job.ids.external_id.as_deref(), Some("cms-4711"));
    assert!(job.rehosts());
    assert_eq!(job.media.kind(), JobKind::Slideshow);
    assert_eq!(job.media.sources()[0].raw, "https://cdn.example.com/a.jpg");
}

#[test]
fn job_id_falls_back_to_message_id_then_post_id() {
    let mut v = base();
    v.as_object_mut().expect("object").remove("job_id");
    let Parsed::Job(job) = parse(&body(v.clone()), Some("msg-1")) else {
        panic!("expected a job");
    };
    assert_eq!(job.ids.job_id, "msg-1");
    let Parsed::Job(job) = parse(&body(v.clone()), Some("not/valid")) else {
        panic!("expected a job");
    };
    assert_eq!(job.ids.job_id, "post_789");
    let Parsed::Job(job) = parse(&body(v), None) else {
        panic!("expected a job");
    };
    assert_eq!(job.ids.job_id, "post_789");
}

#[test]
fn hosted_only_does_not_rehost() {
    let mut v = base();
    v["accounts"] = json!([{"id": "a", "platform": "tiktok", "type": "hosted"}]);
    let Parsed::Job(job) = parse(&body(v), None) else {
        panic!("expected a job");
    };
    assert!(!job.rehosts());
}

#[test]
fn identifiers_must_match_the_pattern() {
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "../x",
        "a b",
        "tab\there",
        "ü",
        &"x".repeat(129),
    ] {
        for field in ["post_id", "workspace_id", "job_id"] {
            let mut v = base();
            v[field] = json!(bad);
            let err = error_of(v);
            assert_eq!(err.code, ErrorCode::InvalidPayload, "{field}={bad:?}");
        }
    }
    let mut v = base();
    v["workspace_id"] = json!("x".repeat(128));
    assert!(matches!(parse(&body(v), None), Parsed::Job(_)));
}

#[test]
fn not_a_job_bodies() {
    assert!(not_a_job(&[0xff, 0xfe, b'{']).contains("UTF-8"));
    assert!(not_a_job(b"{not json").contains("JSON"));
    assert!(not_a_job(b"[1,2]").contains("object"));
    assert!(not_a_job(br#"{"post_id": 5, "workspace_id": "w"}"#).contains("post_id"));
    assert!(not_a_job(br#"{"workspace_id": "w"}"#).contains("post_id"));
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(not_a_job(nested.as_bytes()).contains("JSON"));
    let mut big = body(base());
    big.truncate(big.len() - 1);
    big.extend(std::iter::repeat_n(
        b' ',
        MAX_BODY_BYTES + 1 - big.len() - 1,
    ));
    big.push(b'}');
    assert_eq!(big.len(), MAX_BODY_BYTES + 1);
    assert!(not_a_job(&big).contains("256 KiB"));
}

#[test]
fn body_of_exactly_256_kib_is_still_a_job() {
    let mut b = body(base());
    b.truncate(b.len() - 1);
    b.extend(std::iter::repeat_n(b' ', MAX_BODY_BYTES - b.len() - 1));
    b.push(b'}');
    assert_eq!(b.len(), MAX_BODY_BYTES);
    assert!(matches!(parse(&b, None), Parsed::Job(_)));
}

#[test]
fn payload_rules() {
    type Mutation = fn(&mut serde_json::Value);
    let cases: Vec<(Mutation, ErrorCode)> = vec![
        (|v| v["accounts"] = json!([]), ErrorCode::InvalidPayload),
        (|v| v["accounts"] = json!("byo"), ErrorCode::InvalidPayload),
        (
            |v| v["accounts"][0]["type"] = json!("owned"),
            ErrorCode::InvalidPayload,
        ),
        (
            |v| v["accounts"][0]["id"] = json!(7),
            ErrorCode::InvalidPayload,
        ),
        (
            |v| v["accounts"] = json!(vec![json!({"id":"a","platform":"x","type":"byo"}); 101]),
            ErrorCode::InvalidPayload,
        ),
        (|v| v["external_id"] = json!(12), ErrorCode::InvalidPayload),
        (
            |v| v["external_id"] = json!("e".repeat(257)),
            ErrorCode::InvalidPayload,
        ),
        (|v| v["media"] = json!(null), ErrorCode::InvalidPayload),
        (
            |v| v["media"]["type"] = json!("gif"),
            ErrorCode::InvalidPayload,
        ),
        (
            |v| v["media"] = json!({"type": "video", "urls": ["https://a/b"]}),
            ErrorCode::InvalidPayload,
        ),
        (
            |v| {
                v["media"] = json!({"type": "video", "url": "https://a/b", "urls": ["https://a/b"]})
            },
            ErrorCode::InvalidPayload,
        ),
        (
            |v| v["media"] = json!({"type": "slideshow", "url": "https://a/b"}),
            ErrorCode::InvalidPayload,
        ),
        (
            |v| v["media"]["urls"] = json!([1]),
            ErrorCode::InvalidPayload,
        ),
        (|v| v["media"]["urls"] = json!([]), ErrorCode::NoImages),
        (
            |v| v["media"]["urls"] = json!(vec!["https://a/b.jpg"; 36]),
            ErrorCode::TooManyImages,
        ),
        (
            |v| v["media"]["urls"] = json!(vec!["https://a/b.jpg"; 10_000]),
            ErrorCode::TooManyImages,
        ),
    ];
    for (i, (mutate, code)) in cases.into_iter().enumerate() {
        let mut v = base();
        mutate(&mut v);
        assert_eq!(error_of(v).code, code, "case {i}");
    }
    let mut v = base();
    v["media"]["urls"] = json!(vec!["https://a/b.jpg"; 35]);
    assert!(matches!(parse(&body(v), None), Parsed::Job(_)));
    let mut v = base();
    v["external_id"] = json!("é".repeat(256));
    assert!(matches!(parse(&body(v), None), Parsed::Job(_)));
}

#[test]
fn url_rules() {
    let long = format!("https://a.example/{}", "p".repeat(2048));
    for bad in [
        "ftp://a.example/x.jpg",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "not a url",
        "https://user:pw@a.example/x.jpg",
        "https://user@a.example/x.jpg",
        "http://good.example@127.0.0.1/",
        long.as_str(),
    ] {
        let err = source_url(bad).expect_err(bad);
        assert_eq!(err.code, ErrorCode::InvalidUrl, "{bad}");
    }
    assert!(source_url("http://a.example/x.jpg?sig=1").is_ok());
    let mut v = base();
    v["media"]["urls"] = json!(["https://ok.example/a.jpg", "gopher://x/", "ftp://y/"]);
    let err = error_of(v);
    assert_eq!(
        (err.code, err.asset_index),
        (ErrorCode::InvalidUrl, Some(1))
    );
}

#[test]
fn ids_are_echoed_even_when_invalid() {
    let mut v = base();
    v["workspace_id"] = json!("../../etc");
    match parse(&body(v), None) {
        Parsed::Invalid { ids, error, .. } => {
            assert_eq!(ids.workspace_id, "../../etc");
            assert_eq!(error.code, ErrorCode::InvalidPayload);
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn an_invalid_job_keeps_its_accounts_only_when_they_are_base() {
    let mut bad_media = base();
    bad_media["media"] = json!({"type": "video"});
    let Parsed::Invalid { accounts, .. } = parse(&body(bad_media), None) else {
        panic!("invalid");
    };
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[1].platform, "instagram");
    let mut bad_accounts = base();
    bad_accounts["accounts"] = json!([{"id": "a", "platform": "x", "type": "other"}]);
    let Parsed::Invalid { accounts, .. } = parse(&body(bad_accounts), None) else {
        panic!("invalid");
    };
    assert!(accounts.is_empty());
}

#[test]
fn limits_are_inclusive() {
    // Exactly 100 accounts is a job; 101 is not (payload_rules).
    let mut v = base();
    v["accounts"] = json!(vec![
        json!({"id":"a","platform":"x","type":"byo"});
        MAX_ACCOUNTS
    ]);
    let Parsed::Job(job) = parse(&body(v), None) else {
        panic!("100 accounts must parse");
    };
    assert_eq!(job.accounts.len(), MAX_ACCOUNTS);
}

#[test]
fn a_video_job_parses_and_null_means_absent() {
    let mut v = base();
    v["media"] = json!({"type": "video", "url": "https://cdn.example.com/v.mp4", "urls": null});
    let Parsed::Job(job) = parse(&body(v), None) else {
        panic!("a video job with urls: null must parse");
    };
    let Media::Video(src) = &job.media else {
        panic!("expected a video, got {:?}", job.media);
    };
    assert_eq!(src.raw, "https://cdn.example.com/v.mp4");
    let mut v = base();
    v["media"] =
        json!({"type": "slideshow", "url": null, "urls": ["https://cdn.example.com/a.jpg"]});
    assert!(matches!(parse(&body(v), None), Parsed::Job(_)));
}

#[test]
fn a_url_of_exactly_2048_characters_is_allowed() {
    let prefix = "https://cdn.example.com/";
    let at_limit = format!("{prefix}{}", "a".repeat(MAX_URL_CHARS - prefix.len()));
    assert_eq!(at_limit.chars().count(), MAX_URL_CHARS);
    assert!(source_url(&at_limit).is_ok());
    let over = format!("{at_limit}a");
    assert_eq!(
        source_url(&over).map(|_| ()).map_err(|e| e.code),
        Err(ErrorCode::InvalidUrl)
    );
}
