//! Videos written concurrently by several writers on a store that ignores
//! conditional writes: every URL a writer reports must stay fetchable, even
//! after the sweep (contract v4: two objects for the same bytes are allowed,
//! a dangling URL never is). The interleavings are forced with the test
//! server's gate, which holds chosen requests until released.

use std::time::Duration;

use bytes::Bytes;
use rehost::config::StoreConfig;
use rehost::media::Format;
use rehost::store::{Store, Stored};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::s3_server::{Held, S3Server};

const WS: &str = "ws_dedup";
const SOON: Duration = Duration::from_secs(2);

fn index_put(h: &Held) -> bool {
    h.method == "PUT" && h.path.contains("/.rehost/index/")
}

fn index_get(h: &Held) -> bool {
    h.method == "GET" && h.path.contains("/.rehost/index/")
}

async fn store(server: &S3Server) -> Store {
    let config = config(&[]);
    Store::open(&StoreConfig::S3(server.config()), &config)
        .await
        .expect("store")
}

/// One writer of `bytes`, as a BYO video is written: begin, write, finish.
fn writer(store: &Store, bytes: &Bytes) -> tokio::task::JoinHandle<Stored> {
    let (store, bytes) = (store.clone(), bytes.clone());
    tokio::spawn(async move {
        let sha = hex::encode(Sha256::digest(&bytes));
        let mut up = store
            .begin(WS, Format::Mp4, Some(bytes.len() as u64))
            .await
            .expect("begin");
        up.write(bytes).await.expect("write");
        up.finish(&sha).await.expect("finish")
    })
}

/// Every reported key still holds an object.
fn assert_all_exist(server: &S3Server, stored: &[Stored], when: &str) {
    let objects = server.objects();
    for s in stored {
        let path = format!("media/{}", s.key);
        assert!(
            objects.iter().any(|o| o.ends_with(&s.key) || *o == path),
            "{when}: {} was reported but is gone; objects: {objects:?}",
            s.url
        );
    }
}

/// Regression: the claim on such stores was read, write, read back, and a
/// writer that read back another's key deleted its own copy. With three
/// writers: A and B write the index, A reads back B and deletes A; C
/// overwrites; B reads back C and deletes B: A's URL pointed at nothing.
#[tokio::test]
async fn three_writers_of_one_video_never_leave_a_dangling_url() {
    let server = S3Server::start_ignoring_conditions().await;
    let store = store(&server).await;
    let bytes = Bytes::from(fixture("clip.mp4"));
    server
        .gate
        .hold(|m, p| m == "PUT" && p.contains("/.rehost/index/"));
    let writers: Vec<_> = (0..3).map(|_| writer(&store, &bytes)).collect();
    assert!(
        server
            .gate
            .wait_held(3, Duration::from_secs(20), index_put)
            .await,
        "all three reach their index write"
    );
    // From here the read-backs are held too.
    server
        .gate
        .hold(|m, p| (m == "PUT" || m == "GET") && p.contains("/.rehost/index/"));
    let keys = server.gate.bodies(index_put);
    let put_of = |k: String| move |h: &Held| index_put(h) && String::from_utf8_lossy(&h.body) == k;
    // A writes, then (if it reads back) waits; B writes, likewise.
    assert!(server.gate.release(put_of(keys[0].clone())));
    let a_reads = server.gate.wait_held(1, SOON, index_get).await;
    assert!(server.gate.release(put_of(keys[1].clone())));
    let b_reads = server
        .gate
        .wait_held(if a_reads { 2 } else { 1 }, SOON, index_get)
        .await;
    // A reads back (B's key), C overwrites, B reads back (C's key).
    if a_reads {
        assert!(server.gate.release(index_get));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(server.gate.release(put_of(keys[2].clone())));
    if b_reads {
        server.gate.wait_held(2, SOON, index_get).await;
        assert!(server.gate.release(index_get));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.gate.open();
    let mut stored = Vec::new();
    for w in writers {
        stored.push(
            tokio::time::timeout(Duration::from_secs(20), w)
                .await
                .expect("writer ends")
                .expect("writer ok"),
        );
    }
    assert_all_exist(&server, &stored, "after the writes");
    // Leftover settlement must not take a reported copy either.
    store.sweep(Duration::ZERO).await.expect("sweep");
    assert_all_exist(&server, &stored, "after the sweep");
    // A later writer of the same bytes reuses a copy that exists.
    let later = writer(&store, &bytes).await.expect("writer");
    assert!(!later.new, "the index names a copy: {later:?}");
    assert_all_exist(&server, &[later], "a later writer");
}

fn probes(server: &S3Server) -> usize {
    server
        .requests("PUT")
        .iter()
        .filter(|l| l.contains("/.rehost/pending/probe-"))
        .count()
}

/// Regression: the conditional-write probe cached whatever it concluded,
/// and a store answering 400 to `If-None-Match` failed every BYO write.
/// Only a definite answer is kept; until then writes take the path that is
/// safe on any store.
#[tokio::test]
async fn only_a_definite_probe_answer_decides_the_path() {
    let server = S3Server::start().await;
    server.gate.refuse_conditions(true);
    let origin = origin().await;
    let h = harness(Options {
        store: TestStore::Config(rehost::config::StoreConfig::S3(server.config())),
        settings: verbatim(),
        ..Options::default()
    })
    .await;
    let video_job = |seed: u32| video(&origin.url(&format!("gen/v.mp4?mib=1&seed={seed}")), true);
    let r = h.run(&video_job(1)).await;
    assert_eq!(r.status, rehost::result::Status::Ready, "{:?}", r.error);
    let image = h.run(&slideshow(&[origin.url("photo.jpg")], true)).await;
    assert_eq!(
        image.status,
        rehost::result::Status::Ready,
        "{:?}",
        image.error
    );
    let after_refusals = probes(&server);
    assert!(after_refusals >= 1, "probed");
    // The store starts honouring the condition: the next probe says so and
    // is the last one.
    server.gate.refuse_conditions(false);
    for seed in [2, 3] {
        let r = h.run(&video_job(seed)).await;
        assert_eq!(r.status, rehost::result::Status::Ready, "{:?}", r.error);
    }
    assert_eq!(
        probes(&server),
        after_refusals + 2,
        "one more probe (two PUTs), then the answer is kept"
    );
}

/// Regression: a conditional index write that took effect but whose answer
/// was lost is retried by the SDK and refused with 412; the index then
/// names our own copy, which the writer deleted as if another had won.
#[tokio::test]
async fn a_claim_whose_answer_was_lost_keeps_its_own_copy() {
    let server = S3Server::start().await;
    let store = store(&server).await;
    let bytes = Bytes::from(fixture("clip.mp4"));
    // Learn first that the store honours the condition.
    let first = writer(&store, &Bytes::from(fixture("fs-phone.mov")))
        .await
        .expect("writer");
    assert!(first.new);
    server
        .gate
        .lose_next_answer(|m, p| m == "PUT" && p.contains("/.rehost/index/"));
    let stored = writer(&store, &bytes).await.expect("writer");
    assert!(stored.new, "ours: {stored:?}");
    assert_all_exist(&server, &[stored, first], "after a lost answer");
}
