//! The OS signals `trustgate serve` answers: SIGINT and SIGTERM stop it gracefully; SIGHUP
//! reloads ([`super::ReloadTrigger::sighup`]).

/// SIGINT or SIGTERM: stop accepting, let in-flight responses finish (for `server.shutdown_grace`
/// at most). The handlers are installed when this is called, not when the future is first
/// polled, so a signal that arrives as soon as a port is open is not lost.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = term => {},
                _ = int => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown requested: no new connections; finishing in-flight requests");
    }
}
