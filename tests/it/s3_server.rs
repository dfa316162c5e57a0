//! A real S3 server in the test process: `s3s-fs` over a temp dir, spoken to
//! over HTTP with signatures checked. Every request is logged as
//! `METHOD path?query` so tests can count uploads.
//!
//! In front of it sits a [`Gate`], a proxy of the tests' own: it can hold
//! chosen requests (by method and path) until the test releases them one by
//! one, to force interleavings of several writers, and it can refuse
//! `If-None-Match` with 400 as some stores do.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hyper_util::rt::{TokioExecutor, TokioIo};
use rehost::config::S3Config;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[path = "../support/listing_fs.rs"]
mod listing_fs;
use listing_fs::ListingFs;

pub const ACCESS_KEY: &str = "AKIAREHOSTTEST";
pub const SECRET_KEY: &str = "rehost-test-secret-key";
pub const BUCKET: &str = "media";

pub struct S3Server {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    pub log: Arc<Mutex<Vec<String>>>,
    pub gate: Arc<Gate>,
    task: tokio::task::JoinHandle<()>,
}

type Filter = Box<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Holds the requests a filter picks until the test releases them.
#[derive(Default)]
pub struct Gate {
    filter: Mutex<Option<Filter>>,
    held: Mutex<Vec<Held>>,
    arrived: tokio::sync::Notify,
    /// Answer 400 to any request carrying `If-None-Match`.
    refuse_conditions: std::sync::atomic::AtomicBool,
    /// Carry out the next request this picks, then answer 500 as if its
    /// answer were lost (the client retries a request that took effect).
    lose_answer: Mutex<Option<Filter>>,
}

/// One held request: what it is, and how to let it through.
pub struct Held {
    pub method: String,
    pub path: String,
    pub body: bytes::Bytes,
    release: tokio::sync::oneshot::Sender<()>,
}

impl Gate {
    /// Holds every later request for which `f(method, path)` is true.
    pub fn hold(&self, f: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        *self.filter.lock().expect("gate") = Some(Box::new(f));
    }

    /// Holds nothing more and lets every held request through.
    pub fn open(&self) {
        *self.filter.lock().expect("gate") = None;
        for h in self.held.lock().expect("gate").drain(..) {
            let _ = h.release.send(());
        }
    }

    /// Whether the gate is holding at least `n` requests matching `f` by
    /// `within` (a held request counts until it is released).
    pub async fn wait_held(
        &self,
        n: usize,
        within: std::time::Duration,
        f: impl Fn(&Held) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            if self
                .held
                .lock()
                .expect("gate")
                .iter()
                .filter(|h| f(h))
                .count()
                >= n
            {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Lets the first held request matching `f` through; whether there was one.
    pub fn release(&self, f: impl Fn(&Held) -> bool) -> bool {
        let mut held = self.held.lock().expect("gate");
        match held.iter().position(f) {
            Some(i) => {
                let _ = held.remove(i).release.send(());
                true
            }
            None => false,
        }
    }

    /// The bodies of the held requests matching `f`, in arrival order.
    pub fn bodies(&self, f: impl Fn(&Held) -> bool) -> Vec<String> {
        let held = self.held.lock().expect("gate");
        held.iter()
            .filter(|h| f(h))
            .map(|h| String::from_utf8_lossy(&h.body).into_owned())
            .collect()
    }

    /// Carries out the next request `f` picks, then answers 500.
    pub fn lose_next_answer(&self, f: impl Fn(&str, &str) -> bool + Send + Sync + 'static) {
        *self.lose_answer.lock().expect("gate") = Some(Box::new(f));
    }

    /// Answer 400 to `If-None-Match` from now on (`true`) or not.
    pub fn refuse_conditions(&self, on: bool) {
        self.refuse_conditions
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    fn picks(&self, method: &str, path: &str) -> bool {
        self.filter
            .lock()
            .expect("gate")
            .as_ref()
            .is_some_and(|f| f(method, path))
    }

    /// Passes `req` to the server, holding it first if the filter picks it.
    async fn pass(
        &self,
        service: s3s::service::S3Service,
        req: hyper::Request<hyper::body::Incoming>,
    ) -> Result<s3s::HttpResponse, s3s::HttpError> {
        use http_body_util::BodyExt;
        let refused = self
            .refuse_conditions
            .load(std::sync::atomic::Ordering::SeqCst)
            && req.headers().contains_key("if-none-match");
        if refused {
            let mut resp = hyper::Response::new(s3s::Body::from(bytes::Bytes::from_static(
                b"<Error><Code>InvalidArgument</Code><Message>If-None-Match is not supported</Message></Error>",
            )));
            *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
            return Ok(resp);
        }
        let (method, path) = (req.method().to_string(), req.uri().path().to_string());
        let lose = {
            let mut f = self.lose_answer.lock().expect("gate");
            let hit = f.as_ref().is_some_and(|f| f(&method, &path));
            if hit {
                *f = None;
            }
            hit
        };
        if lose {
            let _ = hyper::service::Service::call(&service, req).await;
            let mut resp = hyper::Response::new(s3s::Body::from(bytes::Bytes::from_static(
                b"<Error><Code>InternalError</Code><Message>answer lost</Message></Error>",
            )));
            *resp.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            return Ok(resp);
        }
        if !self.picks(&method, &path) {
            return hyper::service::Service::call(&service, req).await;
        }
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let (release, released) = tokio::sync::oneshot::channel();
        self.held.lock().expect("gate").push(Held {
            method,
            path,
            body: body.clone(),
            release,
        });
        self.arrived.notify_waiters();
        let _ = released.await;
        service
            .call(hyper::Request::from_parts(parts, s3s::Body::from(body)))
            .await
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl S3Server {
    pub async fn start() -> S3Server {
        S3Server::start_with(false).await
    }

    /// A server that ignores `If-None-Match` on PUT, as Garage 1.x does.
    pub async fn start_ignoring_conditions() -> S3Server {
        S3Server::start_with(true).await
    }

    async fn start_with(ignore_conditions: bool) -> S3Server {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket dir");
        let mut fs = ListingFs::new(root.path()).expect("s3s-fs");
        if ignore_conditions {
            fs = fs.ignoring_conditions();
        }
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let task_log = log.clone();
        let gate = Arc::new(Gate::default());
        let task_gate = gate.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                let log = task_log.clone();
                let gate = task_gate.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let line = format!(
                                "{} {}",
                                req.method(),
                                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
                            );
                            log.lock().expect("log").push(line);
                            let service = service.clone();
                            let gate = gate.clone();
                            async move { gate.pass(service, req).await }
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        S3Server {
            addr,
            root,
            log,
            gate,
            task,
        }
    }

    pub fn config(&self) -> S3Config {
        S3Config {
            endpoint: Some(format!("http://{}", self.addr)),
            region: "auto".into(),
            bucket: BUCKET.into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
            force_path_style: true,
            public_base: "https://media.example.net".into(),
        }
    }

    /// The requests seen so far whose line starts with `method`.
    pub fn requests(&self, method: &str) -> Vec<String> {
        let prefix = format!("{method} ");
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|l| l.starts_with(&prefix))
            .cloned()
            .collect()
    }

    pub fn clear_log(&self) {
        self.log.lock().expect("log").clear();
    }

    /// Files of unfinished multipart uploads that s3s-fs keeps in its root.
    pub fn leftover_uploads(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .expect("root")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }

    /// Object files under the bucket (relative keys), without s3s-fs sidecars.
    pub fn objects(&self) -> Vec<String> {
        let mut out = Vec::new();
        let bucket = self.root.path().join(BUCKET);
        collect(&bucket, &bucket, &mut out);
        out.sort();
        out
    }
}

fn collect(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".s3s") || name.ends_with(".s3s-meta") {
            continue;
        }
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            out.push(
                p.strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}
