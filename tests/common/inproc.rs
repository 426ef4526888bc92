//! trustgate run in-process (`Proxy::with_clock` + `api::server::serve` on 127.0.0.1:0), for
//! what a process cannot show: a clock moved past the trust data's expiry, and the proxy's
//! counters (`Proxy::audit_would_refuse`).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use trustgate::config::Config;
use trustgate::proxy::Proxy;

pub struct InProcess {
    rt: Option<tokio::runtime::Runtime>,
    pub proxy: Arc<Proxy>,
    port: u16,
    offset_secs: Arc<AtomicI64>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcess {
    /// Parse `toml` (as if read from `file`; `[server] listen` is ignored) and serve it on a free
    /// port with a clock that [`InProcess::set_clock_offset`] moves.
    pub fn start(toml: &str, file: &Path) -> InProcess {
        let config = Config::from_toml(toml, file).unwrap_or_else(|e| panic!("config: {e}"));
        std::fs::create_dir_all(&config.storage.path).expect("storage dir");
        let offset_secs = Arc::new(AtomicI64::new(0));
        let clock: trustgate::enforce::Clock = {
            let off = offset_secs.clone();
            Arc::new(move || {
                time::OffsetDateTime::now_utc()
                    + time::Duration::seconds(off.load(Ordering::Relaxed))
            })
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let proxy = rt
            .block_on(async { Proxy::with_clock(&config, clock).await })
            .unwrap_or_else(|e| panic!("proxy: {e}"));
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let p = proxy.clone();
        rt.spawn(async move {
            let _ = trustgate::api::server::serve(listener, p, async {
                let _ = rx.await;
            })
            .await;
        });
        InProcess {
            rt: Some(rt),
            proxy,
            port,
            offset_secs,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Move the proxy's clock `secs` seconds away from the real time (0 = real time).
    pub fn set_clock_offset(&self, secs: i64) {
        self.offset_secs.store(secs, Ordering::Relaxed);
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}
