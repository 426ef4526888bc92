//! The whole server, assembled: what `trustgate serve` runs and what the in-process integration
//! tests start, the same code on both paths (issue 11; the shape of tokio's mini-redis, whose
//! binary and tests call one `server::run`).
//!
//! [`run`] takes a loaded [`Config`], two bound listeners and a shutdown future, and in order:
//! creates the storage folder, loads the TLS files (a bad key fails before anything else
//! waits), serves the admin listener (`/healthz` answers and `/readyz` says "starting" while a
//! large store is indexed), builds the [`Proxy`] and the client-authentication [`Gate`],
//! listens for reloads (SIGHUP, see [`reload`]), serves the registry API, and on shutdown stops
//! accepting and lets in-flight responses finish. [`App`] is the same with the hooks tests need:
//! an injected trust [`Clock`], a reload trigger, and the built proxy handed back.
//!
//! Binding the listeners and catching the OS signals is the caller's part (`main.rs` binds the
//! configured addresses; tests bind `127.0.0.1:0`).

pub mod reload;
pub mod signals;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::admin::{self, Health};
use crate::api::server::{Frontend, ListenOptions};
use crate::api::tls::{ReloadableTls, TlsFiles};
use crate::auth::Gate;
use crate::config::Config;
use crate::enforce::Clock;
use crate::proxy::Proxy;
pub use reload::ReloadTrigger;

/// The two listeners, bound by the caller: the registry API (`[server] listen`) and the
/// operator's endpoints (`[admin] listen`).
pub struct Listeners {
    pub api: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds the addresses `config` names; the error names the key.
    pub async fn bind(config: &Config) -> Result<Listeners, AppError> {
        let admin = TcpListener::bind(config.admin.listen).await.map_err(|e| {
            AppError(format!(
                "admin.listen {}: cannot listen: {e}",
                config.admin.listen
            ))
        })?;
        let api = TcpListener::bind(config.server.listen).await.map_err(|e| {
            AppError(format!(
                "server.listen {}: cannot listen: {e}",
                config.server.listen
            ))
        })?;
        Ok(Listeners { api, admin })
    }

    /// Both on `127.0.0.1:0` (tests).
    pub async fn local() -> std::io::Result<Listeners> {
        Ok(Listeners {
            api: TcpListener::bind("127.0.0.1:0").await?,
            admin: TcpListener::bind("127.0.0.1:0").await?,
        })
    }
}

/// Why the server could not start or stopped with an error: one line for the operator, naming
/// the key or file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AppError(pub String);

/// What a running app hands back once the proxy is built (tests read its counters and trust
/// state through it).
#[derive(Clone)]
pub struct Started {
    pub proxy: Arc<Proxy>,
    pub auth: Option<Arc<Gate>>,
}

/// The app with its hooks: `App::new(config).clock(c).run(listeners, shutdown)`.
pub struct App {
    config: Config,
    config_file: Option<PathBuf>,
    clock: Option<Clock>,
    reloads: Option<ReloadTrigger>,
    started: Option<tokio::sync::oneshot::Sender<Started>>,
}

/// Serves `config` on `listeners` until `shutdown` completes: exactly what `trustgate serve`
/// runs, with the system clock and SIGHUP reloads of the files the configuration names.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AppError> {
    App::new(config).run(listeners, shutdown).await
}

impl App {
    pub fn new(config: Config) -> App {
        App {
            config,
            config_file: None,
            clock: None,
            reloads: None,
            started: None,
        }
    }

    /// The file `config` was read from: a reload re-reads it (without it, a reload re-reads
    /// only the files the configuration names: TLS and htpasswd).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> App {
        self.config_file = Some(path.into());
        self
    }

    /// The time trust data is checked against (tests move it; default: the system clock).
    pub fn clock(mut self, clock: Clock) -> App {
        self.clock = Some(clock);
        self
    }

    /// What triggers a reload (default: SIGHUP, caught from the moment [`App::run`] is called;
    /// `main` passes the SIGHUP handler it installed before binding).
    pub fn reloads(mut self, trigger: ReloadTrigger) -> App {
        self.reloads = Some(trigger);
        self
    }

    /// Sends the built proxy and gate once the API is about to be served.
    pub fn on_started(mut self, tx: tokio::sync::oneshot::Sender<Started>) -> App {
        self.started = Some(tx);
        self
    }

    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AppError> {
        let App {
            config,
            config_file,
            clock,
            reloads,
            started,
        } = self;
        // Caught before anything slow: SIGHUP's default action is to exit.
        let reloads = reloads.unwrap_or_else(ReloadTrigger::sighup);
        std::fs::create_dir_all(&config.storage.path).map_err(|e| {
            AppError(format!(
                "storage.path {}: cannot create it: {e}",
                config.storage.path.display()
            ))
        })?;
        // TLS first: a bad key should not wait for anything else.
        let tls = match TlsFiles::from_config(&config.server) {
            None => None,
            Some(files) => {
                let (tls, summary) =
                    ReloadableTls::load(files).map_err(|e| AppError(e.to_string()))?;
                tracing::info!(certificate = %summary, "TLS loaded");
                Some(Arc::new(tls))
            }
        };
        let Listeners {
            api: api_listener,
            admin: admin_listener,
        } = listeners;
        let api_addr = api_listener.local_addr().ok();
        let admin_addr = admin_listener.local_addr().ok();
        let health = Arc::new(Health::new(&config.storage.path));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let admin = tokio::spawn(admin::serve(
            admin_listener,
            health.clone(),
            until_stopped(stopped.clone()),
        ));
        // One shutdown stops both listeners, and start-up too (indexing a large store takes
        // time).
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let build = async {
            match clock {
                Some(clock) => Proxy::with_clock(&config, clock).await,
                None => Proxy::new(&config).await,
            }
        };
        let proxy = tokio::select! {
            proxy = build => proxy.map_err(|e| AppError(e.to_string()))?,
            _ = until_stopped(stopped.clone()) => {
                tracing::info!("stopped before serving");
                return Ok(());
            }
        };
        // Loading hashes one made-up password at the file's cost: off the async workers.
        let auth_config = config.auth.clone();
        let gate = tokio::task::spawn_blocking(move || Gate::from_config(&auth_config))
            .await
            .map_err(|e| AppError(e.to_string()))?
            .map_err(|e| AppError(format!("auth.htpasswd: {e}")))?
            .map(Arc::new);
        if let Some(gate) = &gate {
            tracing::info!(htpasswd = %gate.htpasswd_path().display(), realm = %config.auth.realm, "clients must log in");
        }
        // Expired cache entries leave memory even when no request comes to push them out.
        tokio::spawn(crate::housekeeping::run(
            proxy.clone(),
            gate.clone(),
            until_stopped(stopped.clone()),
        ));
        let reloader = reload::Reloader {
            file: config_file,
            current: config.clone(),
            tls: tls.clone(),
            gate: gate.clone(),
        };
        let reloading = tokio::spawn(reloader.run(reloads));
        if let Some(shared) = proxy.content().shared() {
            health.set_shared(shared.clone());
            // `[storage.shared] max_size`/`max_age`: one replica of the fleet sweeps at a time.
            if let Some(sh) = &config.storage.shared {
                shared.spawn_sweeper(
                    sh.bounds(),
                    sh.sweep_interval.as_duration(),
                    until_stopped(stopped.clone()),
                );
            }
        }
        health.set_store(proxy.store().clone());
        health.set_upstreams(proxy.upstream_clients());
        // The fleet's peer endpoint, on its own listener (never the client one).
        if let Some(f) = &config.fleet {
            let secret = f.read_secret().map_err(AppError)?;
            let listener = TcpListener::bind(f.listen)
                .await
                .map_err(|e| AppError(format!("fleet.listen {}: {e}", f.listen)))?;
            tracing::info!(listen = %f.listen, advertise = %f.advertise, "fleet peer endpoint listening");
            tokio::spawn(crate::store::shared::peer::serve(
                listener,
                proxy.store().clone(),
                secret,
                until_stopped(stopped.clone()),
            ));
        }
        health.set_started();
        let upstreams: Vec<String> = config
            .upstreams
            .iter()
            .map(|u| format!("{} ({})", u.name, u.url))
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let show =
            |a: Option<std::net::SocketAddr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
        tracing::info!(listen = %format!("{scheme}://{}", show(api_addr)), admin = %show(admin_addr), upstreams = %upstreams.join(", "), storage = %config.storage.path.display(), "trustgate serving");
        if let Some(tx) = started {
            let _ = tx.send(Started {
                proxy: proxy.clone(),
                auth: gate.clone(),
            });
        }
        let frontend = Frontend { proxy, auth: gate };
        let options = ListenOptions::from_config(&config.server, tls);
        let result = crate::api::server::serve_with(
            api_listener,
            Arc::new(frontend),
            options,
            until_stopped(stopped),
        )
        .await;
        reloading.abort();
        result.map_err(|e| AppError(e.to_string()))?;
        if let Ok(Err(e)) = admin.await {
            tracing::warn!(error = %e, "admin listener ended with an error");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes once shutdown was requested.
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
