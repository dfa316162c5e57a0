//! Process signals: SIGTERM and SIGINT both ask for a clean stop.
//!
//! The handlers are installed by [`Signals::install`] at the very start of
//! the process, so a SIGTERM that arrives while the worker is still starting
//! (sweeping, connecting) is kept and answered with a clean stop, not the
//! default action (death).

use std::io;

/// Installed handlers for SIGTERM and SIGINT.
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside a Tokio runtime).
    ///
    /// # Errors
    /// When the operating system refuses a handler.
    pub fn install() -> io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on the first SIGTERM or SIGINT (including one that arrived
    /// before this was called).
    pub async fn recv(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
