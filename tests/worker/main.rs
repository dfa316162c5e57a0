//! Worker tests against the real RabbitMQ at 127.0.0.1:5672: random names per
//! test, a timeout on every wait. Under `CI=true` they fail when the broker is
//! missing; elsewhere they print that they were skipped.

mod helpers;
#[allow(dead_code)]
#[path = "../it/s3_server.rs"]
mod s3_server;

mod flow;
mod outages;
mod parking;
mod process;
mod public;
mod recovery;
