//! `rehost replay-dead`: parked messages back to the job queue.

use crate::broker::Names;
use crate::broker::replay::{ReplayOptions, replay};
use crate::config::Config;

pub async fn run(config: &Config, opts: &ReplayOptions) -> u8 {
    let names = Names::from_config(config);
    match replay(&config.broker.amqp_url, &names, opts).await {
        Ok(list) => {
            for p in &list {
                println!(
                    "{}  {}  parked_at={}  message_id={}  bytes={}  reason={}",
                    if p.replayed { "replayed" } else { "parked  " },
                    names.dead,
                    p.parked_at.as_deref().unwrap_or("-"),
                    p.message_id.as_deref().unwrap_or("-"),
                    p.bytes,
                    p.reason
                );
            }
            let moved = list.iter().filter(|p| p.replayed).count();
            eprintln!(
                "{} {moved} of {} matching messages{}",
                if opts.dry_run {
                    "would replay"
                } else {
                    "replayed"
                },
                list.len(),
                if opts.dry_run {
                    " (dry run: nothing moved)"
                } else {
                    ""
                }
            );
            0
        }
        Err(e) => {
            eprintln!("rehost: replay failed: {e:#}");
            1
        }
    }
}
