//! Broker-wide faults (memory alarms, dead-letter targets that refuse or
//! vanish) against the real RabbitMQ. They touch every connection on the
//! broker, so they live in their own test binary (cargo runs test binaries
//! one after another) and run one at a time; every broker setting they
//! change is restored when the test ends, whatever happens.

#[path = "../worker/helpers.rs"]
#[allow(dead_code)]
mod helpers;

mod alarms;
mod dead_letters;

/// One broker-wide fault at a time.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads a `rabbit` application setting (`rabbitmqctl eval`), as Erlang text.
pub fn broker_env(key: &str) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["eval", &format!("application:get_env(rabbit, {key}).")])
        .output()
        .expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl eval {key}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
