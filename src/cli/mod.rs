//! The subcommands other than `serve` (which is [`crate::app`]) and what they print: logging
//! set-up, `check-config`, `verify` (the `docker trust inspect --pretty`-like table), `seed`
//! (progress bars and the result table), `check-store` and `trust reset`. `main.rs` parses the
//! arguments and calls these.

use std::process::ExitCode;

use crate::config::{Config, LogConfig, LogFormat};
use crate::trust::VerifiedRepository;

/// `check-config FILE`: load and validate the file and every file it names, as `serve` would
/// (`trustgate::check`); print a summary.
pub fn check_config(file: &std::path::Path) -> ExitCode {
    init_tracing(&LogConfig::default());
    match crate::check::check_config(file) {
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

/// The log writer's thread, kept until [`flush_logs`]: dropping it writes out every queued line.
static LOG_WRITER: parking_lot::Mutex<Option<tracing_appender::non_blocking::WorkerGuard>> =
    parking_lot::Mutex::new(None);

/// Log lines go to stderr, as text or JSON (`[log] format`), filtered by `RUST_LOG`.
///
/// They are written by a thread of their own, not by the request's (a blocking `write(2)` per
/// line cost about 30 % of the CPU of a warm tag: issue 16). The queue is lossless: when it is
/// full, the thread that logs waits for room instead of dropping the line, because an audit
/// trail that loses lines under load is a security defect. [`flush_logs`] writes out what is
/// still queued; `main` calls it before the process exits (SIGTERM's drain included).
pub fn init_tracing(log: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(log.queue_lines)
        .thread_name("trustgate-log")
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let installed = match log.format {
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
    // A second call (never made today) must not abort: the first subscriber and its writer stay.
    if installed.is_ok() {
        *LOG_WRITER.lock() = Some(guard);
    }
}

/// Writes out every log line still queued and stops the writer thread. Lines logged after this
/// are dropped, so call it last.
pub fn flush_logs() {
    drop(LOG_WRITER.lock().take());
}

/// Loads the configuration, then starts logging in the format it names (problems with the file
/// itself are printed as text).
pub fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    match Config::load(path) {
        Ok(c) => {
            init_tracing(&c.log);
            Ok(c)
        }
        Err(e) => {
            init_tracing(&LogConfig::default());
            eprintln!("invalid configuration: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Loads the configuration and runs `f` on a multi-threaded runtime: the frame of every
/// subcommand that works on a configuration.
pub fn with_config<F, Fut>(path: &std::path::Path, f: F) -> ExitCode
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

/// [`with_config`], then the proxy built from it: the frame of `verify` and `seed`.
fn with_proxy<F, Fut>(path: &std::path::Path, f: F) -> ExitCode
where
    F: FnOnce(std::sync::Arc<crate::proxy::Proxy>) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    with_config(path, |config| async move {
        match crate::proxy::Proxy::new(&config).await {
            Ok(proxy) => f(proxy).await,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    })
}

pub fn trust_reset(path: &std::path::Path, gun: &str) -> ExitCode {
    let gun = gun.to_string();
    with_config(path, |config| async move {
        let store = crate::enforce::TrustStore::new(&config.storage.path);
        let local = match store.reset(&gun) {
            Ok(forgot) => forgot,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        // A fleet (issue 14): the shared pins go too, or the next pull would bring them back.
        let fleet = match &config.storage.shared {
            None => false,
            Some(sh) => {
                let reset = async {
                    let shared = crate::store::SharedStore::from_config(sh)?;
                    crate::enforce::FleetTrust::new(shared).reset(&gun).await
                };
                match reset.await {
                    Ok(forgot) => forgot,
                    Err(e) => {
                        eprintln!("the fleet's pins of {gun} could not be removed: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        };
        if local || fleet {
            let whom = if config.storage.shared.is_some() {
                " fleet-wide"
            } else {
                ""
            };
            println!("forgot the pinned trust data of {gun}{whom}; the next pull trusts the root it finds then (or the pins of its policy)");
        } else {
            println!(
                "nothing was pinned for {gun} (looked for {})",
                store.path_for(&gun).display()
            );
        }
        ExitCode::SUCCESS
    })
}

pub fn verify(path: &std::path::Path, image: &str) -> ExitCode {
    with_proxy(path, |proxy| async move {
        match proxy.inspect_signatures(image).await {
            Err(e) => {
                eprintln!("{image} is not trusted: {}", e.message);
                return ExitCode::FAILURE;
            }
            Ok(Some(report)) => {
                print!("{}", render_signatures(&report));
                return match &report.verdict {
                    Ok(signers) => {
                        println!(
                            "\n{} is trusted: {} (signed by {signers})",
                            report.image, report.digest
                        );
                        ExitCode::SUCCESS
                    }
                    Err(why) => {
                        eprintln!("\n{} is not trusted: {why}", report.image);
                        ExitCode::FAILURE
                    }
                };
            }
            Ok(None) => {}
        }
        match proxy.inspect(image).await {
            Err(e) => {
                eprintln!("{image} is not trusted: {}", e.message);
                ExitCode::FAILURE
            }
            Ok(report) => {
                print!("{}", render_inspection(&report.gun, &report.repo));
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

impl crate::seed::Progress for Bar {
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

pub fn seed(path: &std::path::Path, file: &std::path::Path, platforms: Vec<String>) -> ExitCode {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: cannot read the seed list: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let images = crate::seed::parse_seed_file(&text);
    if images.is_empty() {
        eprintln!("{}: lists no images", file.display());
        return ExitCode::FAILURE;
    }
    let filter = crate::seed::PlatformFilter(platforms);
    with_proxy(path, |proxy| async move {
        let bars = indicatif::MultiProgress::new();
        let style = indicatif::ProgressStyle::with_template(
            "{prefix:30!} {bar:30} {bytes:>10}/{total_bytes:10} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        let mut rows = Vec::new();
        for image in &images {
            let bar = bars.add(indicatif::ProgressBar::new(0).with_style(style.clone()));
            bar.set_prefix(image.clone());
            let result = crate::seed::seed_image(&proxy, image, &filter, &Bar(bar.clone())).await;
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

pub fn check_store(path: &std::path::Path) -> ExitCode {
    with_config(path, |config| async move {
        // No max_size here: a check must not evict.
        let store = match crate::store::Store::open(&config.storage.path, None).await {
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
                        if let Ok(d) = crate::reference::Digest::parse(&format!("sha256:{name}")) {
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
        // The shared tier (issue 14): every object is re-read and hashed; bad ones are named,
        // not removed (another replica may be serving them; the operator decides).
        let mut shared_bad = 0;
        if let Some(sh) = &config.storage.shared {
            let checked = match crate::store::SharedStore::from_config(sh) {
                Ok(shared) => shared.check_content(true).await,
                Err(e) => Err(e),
            };
            match checked {
                Ok((n, bytes, bad)) => {
                    for b in &bad {
                        println!("shared store: {b}");
                    }
                    shared_bad = bad.len();
                    println!(
                        "shared store {}: {} objects ({bytes} bytes), {shared_bad} bad",
                        sh.url, n
                    );
                }
                Err(e) => {
                    eprintln!("shared store {}: {e}", sh.url);
                    return ExitCode::FAILURE;
                }
            }
        }
        if removed > 0 || shared_bad > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

fn signer_name(role: &str) -> String {
    match role.strip_prefix("targets/") {
        Some(r) => r.to_string(),
        None => "(Repo Admin)".to_string(),
    }
}

/// The `docker trust inspect --pretty`-like text of the verified trust data of `gun`.
pub fn render_inspection(gun: &str, repo: &VerifiedRepository) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "Signatures for {gun}\n");
    let _ = writeln!(out, "{:<24}{:<67}SIGNERS", "SIGNED TAG", "DIGEST");
    let mut targets = repo.signed_targets();
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
    let delegations: Vec<_> = repo.roles.iter().filter(|r| r.name != "targets").collect();
    if !delegations.is_empty() {
        let _ = writeln!(out, "\nList of signers and their keys for {gun}:\n");
        let _ = writeln!(out, "{:<24}KEYS", "SIGNER");
        for r in delegations {
            let keys: Vec<&str> = r.signers.iter().map(|k| k.canonical_id.as_str()).collect();
            let _ = writeln!(out, "{:<24}{}", signer_name(&r.name), keys.join(", "));
        }
    }
    let _ = writeln!(out, "\nAdministrative keys for {gun}:\n");
    if let Some(t) = repo.role("targets") {
        let keys: Vec<&str> = t.signers.iter().map(|k| k.canonical_id.as_str()).collect();
        let _ = writeln!(out, "  Repository Key:\t{}", keys.join(", "));
    }
    let roots: Vec<&str> = repo
        .root_signers
        .iter()
        .map(|k| k.canonical_id.as_str())
        .collect();
    let _ = writeln!(out, "  Root Key:\t{}", roots.join(", "));
    out
}

/// The table `trustgate verify` prints under digest verifiers: one block per signature found,
/// one line per verifier.
pub fn render_signatures(r: &crate::proxy::SignatureReport) -> String {
    let mut out = format!(
        "Signatures for {} ({})\nverifiers: {}\n",
        r.image, r.digest, r.policy
    );
    if r.signatures.is_empty() {
        out.push_str("\nno signature found\n");
    }
    for (i, s) in r.signatures.iter().enumerate() {
        out.push_str(&format!("\n#{} {} at {}\n", i + 1, s.kind, s.location));
        for (verifier, outcome) in &s.checks {
            match outcome {
                Ok((signer, issuer)) => out.push_str(&format!(
                    "  {verifier}: accepted, signed by {signer}{}\n",
                    issuer
                        .as_ref()
                        .map(|i| format!(" (issuer {i})"))
                        .unwrap_or_default()
                )),
                Err(why) => out.push_str(&format!("  {verifier}: rejected: {why}\n")),
            }
        }
    }
    for note in &r.ignored {
        out.push_str(&format!("\nset aside: {note}\n"));
    }
    out
}
