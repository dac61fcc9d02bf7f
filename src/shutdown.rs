//! Waiting for the signals that end a process (SIGINT, SIGTERM). Owns no
//! state beyond the signal listeners; callers decide what stopping means.

/// Listens for SIGINT and SIGTERM from its creation on, so a signal that
/// arrives between two waits is not missed.
pub struct Terminate {
    #[cfg(unix)]
    streams: Option<(
        actix_rt::signal::unix::Signal,
        actix_rt::signal::unix::Signal,
    )>,
}

impl Terminate {
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use actix_rt::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) {
                (Ok(int), Ok(term)) => Some((int, term)),
                (Err(e), _) | (_, Err(e)) => {
                    log::error!("cannot listen for SIGTERM ({e}); waiting for Ctrl-C only");
                    None
                }
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Completes on the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.streams {
            tokio::select! {
                _ = int.recv() => log::info!("SIGINT received"),
                _ = term.recv() => log::info!("SIGTERM received"),
            }
            return;
        }
        let _ = actix_rt::signal::ctrl_c().await;
    }
}

impl Default for Terminate {
    fn default() -> Self {
        Self::new()
    }
}

/// Completes on the first SIGINT or SIGTERM from now on.
pub async fn signal() {
    Terminate::new().recv().await
}
