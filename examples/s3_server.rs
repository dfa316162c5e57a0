//! A standalone S3 server for benchmarks, fault runs and local runs:
//! `s3s-fs` over a directory (plus `ListMultipartUploads`), with signature
//! checks, in its own process.
//!
//! ```sh
//! cargo run --release --example s3_server -- --root /tmp/s3 --addr 127.0.0.1:9000 \
//!     --access-key rehost --secret-key rehost-secret --bucket media [--ignore-conditions]
//! ```

use hyper_util::rt::{TokioExecutor, TokioIo};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[path = "../tests/support/listing_fs.rs"]
mod listing_fs;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::PathBuf::from(arg(&args, "--root", "/tmp/rehost-s3"));
    let addr = arg(&args, "--addr", "127.0.0.1:9000");
    let bucket = arg(&args, "--bucket", "media");
    std::fs::create_dir_all(root.join(&bucket))?;
    let mut fs = listing_fs::ListingFs::new(&root)?;
    if args.iter().any(|a| a == "--ignore-conditions") {
        // Behave like Garage 1.x: If-None-Match on PUT is ignored.
        fs = fs.ignoring_conditions();
    }
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(
        arg(&args, "--access-key", "rehost"),
        arg(&args, "--secret-key", "rehost-secret"),
    ));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "s3 server: http://{} serving {} (bucket {bucket})",
        listener.local_addr()?,
        root.display()
    );
    loop {
        let (sock, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), service)
                .await;
        });
    }
}
