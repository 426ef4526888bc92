//! The `trustgate` command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trustgate::config::{Config, CONFIG_ENV, DEFAULT_CONFIG_PATH};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Serve { config } => serve(&config.config),
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(c) => {
                println!(
                    "{}: valid ({} upstream{}, listening on {})",
                    file.display(),
                    c.upstreams.len(),
                    if c.upstreams.len() == 1 { "" } else { "s" },
                    c.server.listen
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("invalid configuration: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("invalid configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("trustgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), String> {
    std::fs::create_dir_all(&config.storage.path).map_err(|e| {
        format!(
            "storage.path {}: cannot create it: {e}",
            config.storage.path.display()
        )
    })?;
    let proxy = trustgate::proxy::Proxy::new(&config).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| format!("server.listen {}: cannot listen: {e}", config.server.listen))?;
    let upstreams: Vec<String> = config
        .upstreams
        .iter()
        .map(|u| format!("{} ({})", u.name, u.url))
        .collect();
    tracing::info!(listen = %config.server.listen, upstreams = %upstreams.join(", "), storage = %config.storage.path.display(), "trustgate serving");
    trustgate::api::server::serve(listener, proxy, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// SIGINT or SIGTERM: stop accepting, let in-flight responses finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
