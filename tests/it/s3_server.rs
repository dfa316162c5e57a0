//! A real S3 server in the test process: `s3s-fs` over a temp dir, spoken to
//! over HTTP with signatures checked. Every request is logged as
//! `METHOD path?query` so tests can count uploads.

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
    task: tokio::task::JoinHandle<()>,
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
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                let log = task_log.clone();
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
                            async move { hyper::service::Service::call(&service, req).await }
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
