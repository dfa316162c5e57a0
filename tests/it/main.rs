//! Integration tests: real HTTP origins on loopback, a real store, the real
//! pipeline. One binary, a module per area.

mod helpers;

mod byo;
mod codes;
mod dedup;
mod faststart;
mod garage;
mod guard;
mod hosted;
mod hostile;
mod hosts;
mod platforms;
mod s3;
mod s3_server;
