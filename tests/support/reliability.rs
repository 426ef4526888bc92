//! The reliability suite's shared protocol (issue 15): how long a case runs, and how it reports.
//!
//! Every reliability case is an ordinary `#[test]` (so CI runs the short mode with the rest of
//! the suite). `TRUSTGATE_RELIABILITY=long` selects the long mode (longer loads and soaks, longer
//! fuzzing). Each case, when it has passed its assertions, calls [`report`] once; the line it
//! prints is what `scripts/reliability.sh` collects into RELIABILITY.md, so a case that failed
//! prints nothing and the table shows it as missing.
use std::time::Duration;

/// Short (CI, the default) or long (on demand, for RELIABILITY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Short,
    Long,
}

/// The mode from `TRUSTGATE_RELIABILITY` (`long`; anything else or unset is short).
pub fn mode() -> Mode {
    match std::env::var("TRUSTGATE_RELIABILITY").as_deref() {
        Ok("long") => Mode::Long,
        _ => Mode::Short,
    }
}

/// `short` in the short mode, `long` in the long one: the length of a load or soak.
pub fn pick(short: Duration, long: Duration) -> Duration {
    match mode() {
        Mode::Short => short,
        Mode::Long => long,
    }
}

/// Prints the result line of a passed case: `reliability-case<TAB>group<TAB>case<TAB>figures`.
/// `group` is the RELIABILITY.md section (`load`, `flood`, `faults`, `protocol`, `trust`),
/// `case` a short name, `figures` what was measured and what the client, the log and `/readyz`
/// showed, in one line of plain text. Run the tests with `--nocapture` to see it.
pub fn report(group: &str, case: &str, figures: &str) {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    println!(
        "reliability-case\t{}\t{}\t{}",
        clean(group),
        clean(case),
        clean(figures)
    );
}
