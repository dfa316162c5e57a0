//! `rehost check-config`: the effective settings (secrets redacted), and
//! whether the broker and the store answer.

use std::time::Duration;

use crate::broker::{self, Names};
use crate::config::{Config, redact_url};
use crate::store::Store;

pub async fn run(config: &Config) -> u8 {
    for (name, value) in config.describe() {
        println!("{name}={value}");
    }
    println!();
    match config.budgets() {
        Ok(b) => println!(
            "budgets: a delivery is acked or handed back within {} s of arriving; {} s of slack for store holds and intake",
            b.delivery.as_secs(),
            b.slack.as_secs()
        ),
        Err(e) => {
            println!("rehost: {e}");
            return crate::app::EXIT_USAGE;
        }
    }
    let mut ok = true;
    let names = Names::from_config(config);
    let url = redact_url(&config.broker.amqp_url);
    match tokio::time::timeout(
        Duration::from_secs(10),
        broker::connect(&config.broker.amqp_url),
    )
    .await
    {
        Ok(Ok(conn)) => {
            let conn = std::sync::Arc::new(conn);
            let publisher = broker::publisher::Publisher::new(conn.clone());
            match publisher.depth(&names.queue).await {
                Ok(n) => println!(
                    "broker: ok ({url}); queue {} holds {n} messages",
                    names.queue
                ),
                Err(_) => println!(
                    "broker: ok ({url}); queue {} does not exist yet (the worker declares it unless REHOST_DECLARE=false)",
                    names.queue
                ),
            }
            publisher.close().await;
        }
        Ok(Err(e)) => {
            ok = false;
            println!("broker: FAIL ({url}): {e}");
        }
        Err(_) => {
            ok = false;
            println!("broker: FAIL ({url}): no answer within 10 s");
        }
    }
    let base = crate::public::startup_check(config).await;
    match &config.store {
        None => println!(
            "store: none configured (rehost ingest uses ./rehost-data; rehost worker needs REHOST_STORE_DIR or S3_BUCKET)"
        ),
        // The start-up checks need no store: say what is wrong even while
        // the store is down.
        Some(_) if let Err(e) = &base => {
            println!("public URLs: FAIL: {e}");
            ok = false;
        }
        Some(cfg) => match Store::open(cfg, config).await {
            Ok(store) => match tokio::time::timeout(Duration::from_secs(20), store.check()).await {
                Ok(Ok(())) => {
                    println!("store: ok ({store:?})");
                    ok &= probe_public_urls(config, &store).await;
                }
                Ok(Err(e)) => {
                    ok = false;
                    println!("store: FAIL: {e}");
                }
                Err(_) => {
                    ok = false;
                    println!("store: FAIL: no answer within 20 s");
                }
            },
            Err(e) => {
                ok = false;
                println!("store: FAIL: {e}");
            }
        },
    }
    u8::from(!ok)
}

/// One probe of the public URLs (unless off).
async fn probe_public_urls(config: &Config, store: &Store) -> bool {
    if config.public.probe == crate::config::ProbeMode::Off {
        println!("public URLs: not probed (REHOST_PUBLIC_PROBE=off)");
        return true;
    }
    let http = match crate::public::probe::client() {
        Ok(c) => c,
        Err(e) => {
            println!("public URLs: FAIL: no probe client: {e}");
            return false;
        }
    };
    let p = crate::public::probe::probe(store, &http).await;
    for w in &p.warnings {
        println!("public URLs: warning: {w}");
    }
    match p.result {
        Ok(()) => {
            println!("public URLs: ok ({} fetched anonymously)", p.url);
            true
        }
        Err(why) => {
            println!("public URLs: FAIL: {}: {why}", store.public_base());
            false
        }
    }
}
