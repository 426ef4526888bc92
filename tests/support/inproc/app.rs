//! THE in-process starter: `trustgate::app` (exactly what `trustgate serve` runs: admin
//! listener, proxy, auth gate, reloads, API listener, graceful shutdown) on two listeners bound
//! to 127.0.0.1:0, with a trust clock the test moves.
//!
//! [`TestApp`] is for async tests; [`InProcess`] wraps it in its own runtime for the blocking
//! interop tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot};
use trustgate::app::{App, AppError, Listeners, ReloadTrigger, Started};
use trustgate::config::Config;
use trustgate::proxy::Proxy;

/// The trust clock of a test: frozen at a given time ([`TestClock::at`]) or following the real
/// time ([`TestClock::real`]), moved only by [`TestClock::advance`]. The refresh interval and
/// the expiry of trust data are both measured on it, so moving it replaces sleeping.
#[derive(Clone)]
pub struct TestClock {
    start: Option<OffsetDateTime>,
    offset: Arc<Mutex<time::Duration>>,
}

impl TestClock {
    pub fn at(t: OffsetDateTime) -> TestClock {
        TestClock {
            start: Some(t),
            offset: Arc::default(),
        }
    }

    pub fn real() -> TestClock {
        TestClock {
            start: None,
            offset: Arc::default(),
        }
    }

    pub fn advance(&self, by: time::Duration) {
        *self.offset.lock() += by;
    }

    pub fn clock(&self) -> trustgate::enforce::Clock {
        let (start, offset) = (self.start, self.offset.clone());
        Arc::new(move || start.unwrap_or_else(OffsetDateTime::now_utc) + *offset.lock())
    }
}

/// A running app. Dropping it shuts it down (gracefully, in the background).
pub struct TestApp {
    /// `http://127.0.0.1:<port>` of the registry API (no trailing slash).
    pub base: String,
    /// `http://127.0.0.1:<port>` of the admin listener.
    pub admin: String,
    pub proxy: Arc<Proxy>,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    reload: mpsc::Sender<()>,
    task: Option<tokio::task::JoinHandle<Result<(), AppError>>>,
}

impl TestApp {
    /// Parses `toml` (as if read from `file`; the listen addresses are ignored) and starts it.
    pub async fn from_toml(toml: &str, file: &Path) -> TestApp {
        let config = Config::from_toml(toml, file).unwrap_or_else(|e| panic!("config: {e}"));
        TestApp::start(config, None).await
    }

    /// Starts `config` with the system clock (`None`) or a test clock.
    pub async fn start(config: Config, clock: Option<&TestClock>) -> TestApp {
        let listeners = Listeners::local().await.expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listeners.api.local_addr().expect("api addr"));
        let admin = format!(
            "http://{}",
            listeners.admin.local_addr().expect("admin addr")
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let (reload, reloads) = mpsc::channel(1);
        let (started_tx, started) = oneshot::channel::<Started>();
        let mut app = App::new(config.clone())
            .reloads(ReloadTrigger::Channel(reloads))
            .on_started(started_tx);
        if let Some(c) = clock {
            app = app.clock(c.clock());
        }
        let mut task = tokio::spawn(app.run(listeners, async move {
            let _ = stopped.await;
        }));
        let proxy = match started.await {
            Ok(s) => s.proxy,
            // The app ended before serving: say why.
            Err(_) => match (&mut task).await {
                Ok(Err(e)) => panic!("app: {e}"),
                other => panic!("app ended before serving: {other:?}"),
            },
        };
        TestApp {
            base,
            admin,
            proxy,
            config,
            stop: Some(stop),
            reload,
            task: Some(task),
        }
    }

    /// `base` + `path_and_query` (which starts with `/`).
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// `127.0.0.1:<port>` of the registry API.
    pub fn host(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// What SIGHUP does in production.
    pub async fn reload(&self) {
        self.reload.send(()).await.expect("app running");
    }

    /// Graceful shutdown: stop accepting, let open connections finish, wait for the app; its
    /// result must be Ok.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let r = tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the app ends after shutdown")
                .expect("app task");
            r.expect("app result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// [`TestApp`] for blocking tests: its own runtime, and a clock moved by an offset from the
/// real time.
pub struct InProcess {
    rt: Option<tokio::runtime::Runtime>,
    app: Option<TestApp>,
    pub proxy: Arc<Proxy>,
    clock: TestClock,
}

impl InProcess {
    /// Parse `toml` (as if read from `file`; the listen addresses are ignored) and serve it on
    /// free ports with a clock that [`InProcess::set_clock_offset`] moves.
    pub fn start(toml: &str, file: &Path) -> InProcess {
        let config = Config::from_toml(toml, file).unwrap_or_else(|e| panic!("config: {e}"));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let clock = TestClock::real();
        let app = rt.block_on(TestApp::start(config, Some(&clock)));
        InProcess {
            rt: Some(rt),
            proxy: app.proxy.clone(),
            app: Some(app),
            clock,
        }
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("running")
    }

    pub fn url(&self) -> String {
        self.app().base.clone()
    }

    pub fn host(&self) -> String {
        self.app().host().to_string()
    }

    /// Move the proxy's clock `secs` seconds away from the real time (0 = real time).
    pub fn set_clock_offset(&self, secs: i64) {
        *self.clock.offset.lock() = time::Duration::seconds(secs);
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        drop(self.app.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}
