//! The `trustgate` command line: argument parsing; `serve` is [`trustgate::app`], the other
//! subcommands [`trustgate::cli`].
#![forbid(unsafe_code)]
// No unwrap or expect in the server: a bad byte from the network is an error answer, never a
// panic (unit tests may unwrap what they built: clippy.toml allows it in tests).
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use trustgate::app::{self, App, Listeners, ReloadTrigger};
use trustgate::cli::{self, check_config, check_store, seed, trust_reset, verify};
use trustgate::config::{CONFIG_ENV, DEFAULT_CONFIG_PATH};

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
    let code = match cli.command {
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
    };
    // The log writer is a thread of its own: every queued line is out before the process ends.
    cli::flush_logs();
    code
}

/// `serve`: the OS signals caught first (SIGHUP's default action is to exit, and a SIGTERM sent
/// as soon as a port answers must reach the graceful path), then the configured addresses
/// bound, then the app.
fn serve(path: &std::path::Path) -> ExitCode {
    let file = path.to_path_buf();
    cli::with_config(path, |config| async move {
        let hangups = ReloadTrigger::sighup();
        let shutdown = app::signals::shutdown_signal();
        let result = match Listeners::bind(&config).await {
            Ok(listeners) => {
                App::new(config)
                    .config_file(file)
                    .reloads(hangups)
                    .run(listeners, shutdown)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                eprintln!("trustgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}
