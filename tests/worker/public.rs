//! Contract v4 public URLs against a worker: a loopback server in front of
//! the S3 test server's files plays the public domain, switchable between
//! serving, 403, a redirect, a wrong `Content-Type` and down. While the
//! probe fails, re-hosted jobs are deferred (no `ready` with dead links),
//! hosted jobs run, `/readyz` says why; once it serves, the deferred jobs
//! finish `ready` with URLs it serves.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rehost::result::Status;

use crate::helpers::*;
use crate::s3_server::S3Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Serve,
    Forbidden,
    Redirect,
    WrongType,
    Down,
}

/// The public domain: `GET /{key}` from the S3 server's bucket directory.
pub struct PublicDomain {
    pub addr: SocketAddr,
    pub mode: Arc<Mutex<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PublicDomain {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PublicDomain {
    pub async fn start(bucket_dir: PathBuf, mode: Mode) -> PublicDomain {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mode = Arc::new(Mutex::new(mode));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                if *m.lock().expect("mode") == Mode::Down {
                    drop(sock);
                    continue;
                }
                let (m, dir) = (m.clone(), bucket_dir.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let mode = *m.lock().expect("mode");
                            let path = dir.join(req.uri().path().trim_start_matches('/'));
                            async move {
                                Ok::<_, Infallible>(answer(
                                    mode,
                                    &path,
                                    req.headers().contains_key("range"),
                                ))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        PublicDomain { addr, mode, task }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(mode: Mode, path: &std::path::Path, ranged: bool) -> hyper::Response<Full<Bytes>> {
    let mut r = hyper::Response::builder();
    let body = match (mode, std::fs::read(path)) {
        (Mode::Forbidden, _) => {
            return r
                .status(403)
                .body(Full::new(Bytes::new()))
                .expect("response");
        }
        (Mode::Redirect, _) => {
            return r
                .status(302)
                .header("location", "https://login.example.net/")
                .body(Full::new(Bytes::new()))
                .expect("response");
        }
        (_, Err(_)) => {
            return r
                .status(404)
                .body(Full::new(Bytes::new()))
                .expect("response");
        }
        (_, Ok(b)) => b,
    };
    let ctype = match (mode, path.extension().and_then(|e| e.to_str())) {
        (Mode::WrongType, _) => "text/html",
        (_, Some("png")) => "image/png",
        (_, Some("jpg")) => "image/jpeg",
        _ => "application/octet-stream",
    };
    r = r.header("content-type", ctype);
    if ranged {
        r = r
            .status(206)
            .header("content-range", format!("bytes 0-0/{}", body.len()));
        return r
            .body(Full::new(Bytes::from(body[..1].to_vec())))
            .expect("response");
    }
    r.body(Full::new(Bytes::from(body))).expect("response")
}

async fn s3_with_public(mode: Mode) -> (S3Server, PublicDomain) {
    let s3 = S3Server::start().await;
    let public = PublicDomain::start(s3.root.path().join("media"), mode).await;
    (s3, public)
}

fn s3_settings(s3: &S3Server, public: &PublicDomain) -> Vec<(&'static str, String)> {
    let c = s3.config();
    vec![
        ("S3_BUCKET", c.bucket),
        ("S3_ENDPOINT", c.endpoint.expect("endpoint")),
        ("S3_ACCESS_KEY_ID", c.access_key_id),
        ("S3_SECRET_ACCESS_KEY", c.secret_access_key),
        ("PUBLIC_BASE_URL", public.base()),
        ("REHOST_PUBLIC_PROBE", "enforce".into()),
        ("REHOST_ALLOW_PRIVATE_NETWORKS", "127.0.0.1/32".into()),
    ]
}

/// `rehost check-config` with these settings: exit status and output.
async fn check_config(settings: Vec<(&'static str, String)>) -> (Option<i32>, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_rehost"))
            .arg("check-config")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn check_config_says_what_each_broken_public_domain_does() {
    let (s3, public) = s3_with_public(Mode::Serve).await;
    let mut settings = s3_settings(&s3, &public);
    settings.push(("AMQP_URL", AMQP.into()));
    for (mode, why) in [
        (Mode::Serve, ""),
        (Mode::Forbidden, "answers 403"),
        (Mode::Redirect, "redirect to https://login.example.net/"),
        (Mode::WrongType, "Content-Type \"text/html\""),
        (Mode::Down, "cannot be fetched"),
    ] {
        public.set(mode);
        let (code, out) = check_config(settings.clone()).await;
        if mode == Mode::Serve {
            assert_eq!(code, Some(if broker_up() { 0 } else { 1 }), "{out}");
            assert!(out.contains("public URLs: ok"), "{out}");
            continue;
        }
        assert_eq!(code, Some(1), "{mode:?}: {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("public URLs: FAIL"))
            .unwrap_or("");
        assert!(line.contains(why), "{mode:?}: {out}");
    }
    // Nothing of the probes is left in the bucket.
    let left: Vec<_> = s3
        .objects()
        .into_iter()
        .filter(|o| o.contains("probe"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn broker_up() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5672".parse().expect("addr"),
        Duration::from_secs(2),
    )
    .is_ok()
}

async fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let (_, text) = http_get(addr, "/metrics").await;
    text.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn a_dead_public_domain_defers_rehosted_jobs_until_it_serves() {
    if !broker_or_skip("a_dead_public_domain_defers_rehosted_jobs_until_it_serves") {
        return;
    }
    let (s3, public) = s3_with_public(Mode::Forbidden).await;
    let origin = origin().await;
    let settings = s3_settings(&s3, &public);
    let extra: Vec<(&'static str, &str)> = settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([("REHOST_RETRY_DELAYS", "200ms,1s")])
        .filter(|(k, _)| *k != "REHOST_STORE_DIR")
        .collect();
    let mut b = Bench::new(&extra).await;
    b.settings.retain(|(k, _)| *k != "REHOST_STORE_DIR");
    let w = b.start_worker_unready().await;
    eventually("readyz names the 403", || async {
        let (code, body) = http_get(w.http_addr, "/readyz").await;
        code == 503 && body.contains("403")
    })
    .await;
    assert_eq!(metric(w.http_addr, "rehost_public_url_ok").await, Some(0.0));
    assert_eq!(
        http_get(w.http_addr, "/healthz").await.0,
        200,
        "a restart fixes no DNS record"
    );
    b.publish(&job("byo-1", &[origin.url("photo.jpg")], true))
        .await;
    b.publish(&job("hosted-1", &[origin.url("small.jpg")], false))
        .await;
    let hosted = b.next_result().await;
    assert_eq!(
        (hosted.job_id.as_str(), hosted.status),
        ("hosted-1", Status::Ready)
    );
    assert!(
        b.try_next_result(Duration::from_secs(3)).await.is_none(),
        "no result for the re-hosted job while its URLs would be dead"
    );
    eventually("the job was deferred", || async {
        metric(w.http_addr, "rehost_jobs_deferred_total")
            .await
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    public.set(Mode::Serve);
    let ready = b.next_result().await;
    assert_eq!(
        (ready.job_id.as_str(), ready.status),
        ("byo-1", Status::Ready),
        "{:?}",
        ready.error
    );
    assert_eq!(ready.attempts, 1, "deferrals are not tries");
    for u in ready.assets.expect("assets").iter().map(|a| a.url.clone()) {
        assert!(u.starts_with(&public.base()), "{u}");
        let r = reqwest::get(&u).await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "{u} is served");
    }
    assert_eq!(http_get(w.http_addr, "/readyz").await.0, 200);
    assert_eq!(metric(w.http_addr, "rehost_public_url_ok").await, Some(1.0));
    w.stop().await;
    b.cleanup().await;
}

#[tokio::test]
async fn a_job_deferred_too_long_fails_retryably_naming_the_public_url() {
    if !broker_or_skip("a_job_deferred_too_long_fails_retryably_naming_the_public_url") {
        return;
    }
    let (s3, public) = s3_with_public(Mode::Down).await;
    let origin = origin().await;
    let settings = s3_settings(&s3, &public);
    let extra: Vec<(&'static str, &str)> = settings
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([
            ("REHOST_RETRY_DELAYS", "200ms"),
            ("REHOST_DEFER_MAX_SECS", "60"),
            ("REHOST_MAX_ATTEMPTS", "1"),
        ])
        .collect();
    let mut b = Bench::new(&extra).await;
    b.settings.retain(|(k, _)| *k != "REHOST_STORE_DIR");
    let w = b.start_worker_unready().await;
    eventually("the probe failed", || async {
        w.health.public_unfetchable()
    })
    .await;
    // A job first deferred two minutes ago (its header says so).
    let first = chrono::Utc::now().timestamp_millis() - 120_000;
    let mut headers = lapin::types::FieldTable::default();
    headers.insert(
        "x-rehost-deferred-at".into(),
        lapin::types::AMQPValue::LongLongInt(first),
    );
    let body = serde_json::to_vec(&job("old-1", &[origin.url("photo.jpg")], true)).expect("json");
    b.publish_raw(
        &body,
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await;
    let r = b.next_result().await;
    assert_eq!(r.status, Status::Failed, "one attempt: gave up");
    let e = r.error.expect("error");
    assert_eq!(
        (e.code.as_str(), e.retryable),
        ("storage_unavailable", true)
    );
    assert!(e.message.contains(&public.base()), "{}", e.message);
    w.stop().await;
    b.cleanup().await;
}
