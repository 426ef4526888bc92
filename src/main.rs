//! The `trustgate` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use trustgate::api::server::{Frontend, ListenOptions};
use trustgate::api::tls::{ReloadableTls, TlsFiles};
use trustgate::config::{Config, LogFormat, CONFIG_ENV, DEFAULT_CONFIG_PATH};

#[derive(Parser)]
#[command(
    name = "trustgate",
    version,
    about = "A pull-through registry proxy that serves only content signed with Docker Content Trust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--config` as every subcommand takes it: flag, then $TRUSTGATE_CONFIG, then the default path.
#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file.
    #[arg(long, short = 'c', env = CONFIG_ENV, default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry proxy.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a configuration file and exit: 0 when valid, 1 with the file, key and problem
    /// otherwise.
    CheckConfig {
        /// The file to check.
        file: PathBuf,
    },
    /// Show the signed tags of an image, like `docker trust inspect --pretty`; with a tag, exit
    /// non-zero (with the reason) unless that tag is trusted.
    Verify {
        /// Image as clients name it: `alpine`, `registry.example:5000/team/app:v1`.
        image: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Pull every image listed in FILE (one reference per line, `#` comments) through the
    /// verifying path into the store, for an air-gapped mirror. Exit 1 if any image failed.
    Seed {
        file: PathBuf,
        /// Only these platforms of multi-arch images (`linux/amd64`, `linux/arm64/v8`);
        /// repeatable. Default: all platforms.
        #[arg(long = "platform")]
        platforms: Vec<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Re-hash every object in the store and remove those that no longer match their digest
    /// (disk corruption, tampering on disk). Exit 1 when any was removed.
    CheckStore {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Manage pinned trust data.
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
}

#[derive(Subcommand)]
enum TrustCommand {
    /// Forget the pinned root and versions of a repository (after its trust data was deleted
    /// and re-created under a new root). The next pull pins whatever root it finds then.
    Reset {
        /// The repository's GUN: `<upstream name>/<repository>`, e.g. `docker.io/library/alpine`.
        gun: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => serve(&config.config),
        Command::Verify { image, config } => verify(&config.config, &image),
        Command::CheckStore { config } => check_store(&config.config),
        Command::Seed {
            file,
            platforms,
            config,
        } => seed(&config.config, &file, platforms),
        Command::Trust {
            command: TrustCommand::Reset { gun, config },
        } => trust_reset(&config.config, &gun),
        Command::CheckConfig { file } => check_config(&file),
    }
}

/// `check-config FILE`: load and validate the file and every file it names, as `serve` would
/// (`trustgate::check`); print a summary.
fn check_config(file: &std::path::Path) -> ExitCode {
    init_tracing(LogFormat::Text);
    match trustgate::check::check_config(file) {
        Ok(summary) => {
            println!("{}: {summary}", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Log lines go to stderr, as text or JSON (`[log] format`), filtered by `RUST_LOG`.
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (never made today) must not abort: keep the first subscriber.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // One object per line: the event's fields at the top level, the request span's id
        // under "span".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Loads the configuration, then starts logging in the format it names (problems with the file
/// itself are printed as text).
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => {
            init_tracing(c.log.format);
            Ok(c)
        }
        Err(e) => {
            init_tracing(LogFormat::Text);
            eprintln!("invalid configuration: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Loads the configuration and runs `f` on a multi-threaded runtime: the frame of every
/// subcommand that works on a configuration.
fn with_config<F, Fut>(path: &std::path::Path, f: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(f(config)),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

fn trust_reset(path: &std::path::Path, gun: &str) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let store = trustgate::enforce::TrustStore::new(&config.storage.path);
    match store.reset(gun) {
        Ok(true) => {
            println!("forgot the pinned trust data of {gun}; the next pull trusts the root it finds then (or the pins of its policy)");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!(
                "nothing was pinned for {gun} (looked for {})",
                store.path_for(gun).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn verify(path: &std::path::Path, image: &str) -> ExitCode {
    with_config(path, |config| async move {
        let proxy = match trustgate::proxy::Proxy::new(&config).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        match proxy.inspect(image).await {
            Err(e) => {
                eprintln!("{image} is not trusted: {}", e.message);
                ExitCode::FAILURE
            }
            Ok(report) => {
                print!("{}", render_inspection(&report));
                match &report.tag {
                    Some((tag, Err(e))) => {
                        eprintln!("{}:{tag} is not trusted: {}", report.gun, e.message);
                        ExitCode::FAILURE
                    }
                    Some((tag, Ok(t))) => {
                        println!(
                            "\n{}:{tag} is trusted: {} ({} bytes, signed by {})",
                            report.gun,
                            t.digest(),
                            t.length,
                            t.role
                        );
                        ExitCode::SUCCESS
                    }
                    None => ExitCode::SUCCESS,
                }
            }
        }
    })
}

struct Bar(indicatif::ProgressBar);

impl trustgate::seed::Progress for Bar {
    fn set_total(&self, bytes: u64) {
        self.0.set_length(bytes);
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn message(&self, text: &str) {
        self.0.set_message(text.to_string());
    }
}

fn seed(path: &std::path::Path, file: &std::path::Path, platforms: Vec<String>) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the seed list: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let images = trustgate::seed::parse_seed_file(&text);
    if images.is_empty() {
        eprintln!("{}: lists no images", file.display());
        return ExitCode::FAILURE;
    }
    let filter = trustgate::seed::PlatformFilter(platforms);
    with_config(path, |config| async move {
        let proxy = match trustgate::proxy::Proxy::new(&config).await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let bars = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:30!} {bar:30} {bytes:>10}/{total_bytes:10} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let mut rows = Vec::new();
        for image in &images {
            let bar = bars.add(indicatif::ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(image.clone());
            let result =
                trustgate::seed::seed_image(&proxy, image, &filter, &Bar(bar.clone())).await;
            bar.finish_with_message(if result.is_ok() {
                "verified"
            } else {
                "refused"
            });
            rows.push((image.clone(), result));
        }
        println!("\n{:<40} {:<9} {:>12}  DETAIL", "IMAGE", "RESULT", "BYTES");
        let mut failed = 0;
        for (image, result) in &rows {
            match result {
                Ok(r) => println!(
                    "{:<40} {:<9} {:>12}  {} ({} manifests, {} blobs)",
                    image,
                    "verified",
                    r.bytes,
                    r.digest.as_deref().unwrap_or("-"),
                    r.manifests,
                    r.blobs
                ),
                Err(why) => {
                    failed += 1;
                    println!("{:<40} {:<9} {:>12}  {}", image, "refused", 0, why)
                }
            }
        }
        if failed > 0 {
            eprintln!("{failed} of {} images could not be seeded", rows.len());
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn check_store(path: &std::path::Path) -> ExitCode {
    with_config(path, |config| async move {
        // No max_size here: a check must not evict.
        let store = match trustgate::store::Store::open(&config.storage.path, None).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("storage.path: {e}");
                return ExitCode::FAILURE;
            }
        };
        let root = config.storage.path.join("blobs/sha256");
        let mut digests = Vec::new();
        if let Ok(prefixes) = std::fs::read_dir(&root) {
            for prefix in prefixes.flatten() {
                if let Ok(files) = std::fs::read_dir(prefix.path()) {
                    for f in files.flatten() {
                        let name = f.file_name().to_string_lossy().to_string();
                        if let Ok(d) =
                            trustgate::reference::Digest::parse(&format!("sha256:{name}"))
                        {
                            digests.push(d);
                        }
                    }
                }
            }
        }
        let (mut good, mut removed) = (0, 0);
        for d in &digests {
            match store.check(d).await {
                Ok(true) => good += 1,
                Ok(false) => {
                    removed += 1;
                    println!("removed {d}: its bytes no longer match the digest");
                }
                Err(e) => eprintln!("{d}: {e}"),
            }
        }
        println!("{good} objects intact, {removed} removed");
        if removed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn serve(path: &std::path::Path) -> ExitCode {
    with_config(path, |config| async move {
        match run(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("trustgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.storage.path).map_err(|e| {
        format!(
            "storage.path {}: cannot create it: {e}",
            config.storage.path.display()
        )
    })?;
    // TLS first: a bad key should not wait for anything else.
    let tls = match TlsFiles::from_config(&config.server) {
        None => None,
        Some(files) => {
            let (tls, summary) = ReloadableTls::load(files).map_err(|e| e.to_string())?;
            tracing::info!(certificate = %summary, "TLS loaded");
            Some(Arc::new(tls))
        }
    };
    // Signal handlers before any port opens: SIGHUP's default action is to exit, and a SIGTERM
    // sent as soon as a port answers must reach the graceful path.
    let hangups = hangup_signals();
    let shutdown = shutdown_signal();
    // The admin listener comes first: /healthz answers, and /readyz says "starting", while a
    // large store is being indexed.
    let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .map_err(|e| format!("admin.listen {}: cannot listen: {e}", config.admin.listen))?;
    let health = std::sync::Arc::new(trustgate::admin::Health::new(&config.storage.path));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let admin = tokio::spawn(trustgate::admin::serve(
        admin_listener,
        health.clone(),
        until_stopped(stopped.clone()),
    ));
    // One signal stops both listeners, and start-up too (indexing a large store takes time).
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let proxy = tokio::select! {
        proxy = trustgate::proxy::Proxy::new(&config) => proxy.map_err(|e| e.to_string())?,
        _ = until_stopped(stopped.clone()) => {
            tracing::info!("stopped before serving");
            return Ok(());
        }
    };
    // Loading hashes one made-up password at the file's cost: off the async workers.
    let auth_config = config.auth.clone();
    let gate =
        tokio::task::spawn_blocking(move || trustgate::auth::Gate::from_config(&auth_config))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("auth.htpasswd: {e}"))?
            .map(Arc::new);
    // What SIGHUP re-reads; each entry logs its own outcome.
    let mut reloads: Vec<Reload> = Vec::new();
    if let Some(gate) = &gate {
        tracing::info!(htpasswd = %gate.htpasswd_path().display(), realm = %config.auth.realm, "clients must log in");
        let gate = gate.clone();
        let auth_config = config.auth.clone();
        reloads.push(Reload {
            what: "client logins (auth.htpasswd)",
            run: Box::new(move || {
                gate.reload(&auth_config)
                    .map_err(|e| format!("{}: {e}", e.config_key()))
            }),
        });
    }
    if let Some(tls) = &tls {
        let tls = tls.clone();
        reloads.push(Reload {
            what: "server TLS (tls_cert, tls_key, client_ca)",
            run: Box::new(move || tls.reload().map_err(|e| e.to_string())),
        });
    }
    let reloading = tokio::spawn(reload_on_sighup(hangups, reloads));
    health.set_started();
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("server.listen {}: cannot listen: {e}", config.server.listen))?;
    let upstreams: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| format!("{} ({})", u.name, u.url))
        .collect();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %format!("{scheme}://{}", config.server.listen), admin = %config.admin.listen, upstreams = %upstreams.join(", "), storage = %config.storage.path.display(), "trustgate serving");
    let frontend = Frontend { proxy, auth: gate };
    let options = ListenOptions::from_config(&config.server, tls);
    let result = trustgate::api::server::serve_with(
        listener,
        Arc::new(frontend),
        options,
        until_stopped(stopped),
    )
    .await;
    reloading.abort();
    result.map_err(|e| e.to_string())?;
    if let Ok(Err(e)) = admin.await {
        tracing::warn!(error = %e, "admin listener ended with an error");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Completes once shutdown was requested.
async fn until_stopped(mut stopped: tokio::sync::watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// One thing SIGHUP re-reads from disk: `run` returns a line for the log, or the problem (naming
/// the key and the file) while the previous state stays in use.
struct Reload {
    what: &'static str,
    run: Box<dyn Fn() -> Result<String, String> + Send + Sync>,
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

fn hangup_signals() -> Hangups {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloads need a restart");
                None
            }
        }
    }
    #[cfg(not(unix))]
    None
}

/// On every SIGHUP, runs each reload in turn and logs its outcome. Open connections are not
/// touched: what a reload changes applies to what comes after it.
async fn reload_on_sighup(hangups: Hangups, reloads: Vec<Reload>) {
    #[cfg(unix)]
    {
        let Some(mut hup) = hangups else { return };
        while hup.recv().await.is_some() {
            if reloads.is_empty() {
                tracing::info!("SIGHUP: nothing to reload");
            }
            for r in &reloads {
                match (r.run)() {
                    Ok(summary) => tracing::info!(what = r.what, %summary, "SIGHUP: reloaded"),
                    Err(e) => tracing::error!(
                        what = r.what,
                        "SIGHUP: reload failed, keeping the previous one: {e}"
                    ),
                }
            }
        }
    }
    #[cfg(not(unix))]
    drop((hangups, reloads));
}

/// SIGINT or SIGTERM: stop accepting, let in-flight responses finish (for `server.shutdown_grace`
/// at most). The handlers are installed when this is called, not when the future is first
/// polled, so a signal that arrives as soon as a port is open is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
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

// Moved from src/proxy (issue 11: rendering is the CLI's); H2's src/cli/ takes it over.
/// Docker's name for a signer role: `targets/releases` → `releases`, `targets` → `Repo Admin`.
fn signer_name(role: &str) -> String {
    match role.strip_prefix("targets/") {
        Some(r) => r.to_string(),
        None => "(Repo Admin)".to_string(),
    }
}

/// The `docker trust inspect --pretty`-like text of an inspection.
fn render_inspection(report: &trustgate::proxy::Inspection) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Signatures for {}\n", report.gun);
    let _ = writeln!(out, "{:<24}{:<67}SIGNERS", "SIGNED TAG", "DIGEST");
    let mut targets = report.repo.signed_targets();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    for t in &targets {
        let _ = writeln!(
            out,
            "{:<24}{:<67}{}",
            t.name,
            hex::encode(t.sha256),
            signer_name(&t.role)
        );
    }
    let delegations: Vec<_> = report
        .repo
        .roles
        .iter()
        .filter(|r| r.name != "targets")
        .collect();
    if !delegations.is_empty() {
        let _ = writeln!(
            out,
            "\nList of signers and their keys for {}:\n",
            report.gun
        );
        let _ = writeln!(out, "{:<24}KEYS", "SIGNER");
        for r in delegations {
            let keys: Vec<&str> = r.signers.iter().map(|k| k.canonical_id.as_str()).collect();
            let _ = writeln!(out, "{:<24}{}", signer_name(&r.name), keys.join(", "));
        }
    }
    let _ = writeln!(out, "\nAdministrative keys for {}:\n", report.gun);
    if let Some(t) = report.repo.role("targets") {
        let keys: Vec<&str> = t.signers.iter().map(|k| k.canonical_id.as_str()).collect();
        let _ = writeln!(out, "  Repository Key:\t{}", keys.join(", "));
    }
    let roots: Vec<&str> = report
        .repo
        .root_signers
        .iter()
        .map(|k| k.canonical_id.as_str())
        .collect();
    let _ = writeln!(out, "  Root Key:\t{}", roots.join(", "));
    out
}
