//! Processes: free ports, a child that is stopped by its own PID on drop, and one-shot commands
//! with a deadline.
//!
//! Every server a test starts listens on 127.0.0.1 and is stopped by the test itself: kill (or
//! SIGTERM first, for daemons that own children, such as dockerd and its containerd), then wait.
//! Nothing here ever signals a process by name.

use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// The listener is dropped before the port is handed out, so another process could take it in
/// between; the window is short and the servers we start fail loudly when the bind fails. Within
/// one test binary a port is never handed out twice (tests run in parallel threads).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The state letter of `/proc/PID/stat` (R, S, D, Z, ...), or `None` when the process is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: the state follows the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

/// True while `pid` exists and is not a zombie. On this machine exited processes stay zombies for
/// about 2 s (measured when the harness was written), so `Z` counts as gone.
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Send a signal by PID with the `kill` utility (no libc dependency in the tests).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How a [`ChildGuard`] stops its process.
#[derive(Clone, Copy, Debug)]
pub enum StopMode {
    /// SIGKILL at once.
    Kill,
    /// SIGTERM, then SIGKILL if still alive after the grace period. For daemons that must stop
    /// their own children (dockerd stops its managed containerd only on SIGTERM).
    Term(Duration),
}

/// A spawned server process with stdout/stderr captured to files; stopped by PID on drop.
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    pid: u32,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    stop_mode: StopMode,
}

impl ChildGuard {
    /// Spawn `cmd`, sending its stdout and stderr to `LOG_DIR/NAME.stdout` and `.stderr`.
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> ChildGuard {
        fs::create_dir_all(log_dir).expect("create log dir");
        let stdout_path = log_dir.join(format!("{name}.stdout"));
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let out = File::create(&stdout_path).expect("create stdout log");
        let err = File::create(&stderr_path).expect("create stderr log");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({:?}): {e}", cmd.get_program()));
        let pid = child.id();
        ChildGuard {
            name: name.to_string(),
            child: Some(child),
            pid,
            stdout_path,
            stderr_path,
            stop_mode: StopMode::Kill,
        }
    }

    pub fn with_stop_mode(mut self, mode: StopMode) -> Self {
        self.stop_mode = mode;
        self
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// True while the process runs (reaps it if it has exited).
    pub fn is_alive(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(c) => match c.try_wait() {
                Ok(Some(_)) => false,
                Ok(None) => pid_alive(self.pid),
                Err(_) => false,
            },
        }
    }

    /// The exit status if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Both logs, for panic messages.
    pub fn logs(&self) -> String {
        format!(
            "---- {} stdout ----\n{}\n---- {} stderr ----\n{}",
            self.name,
            tail(&self.stdout(), 8000),
            self.name,
            tail(&self.stderr(), 8000)
        )
    }

    /// Stop the process (see [`StopMode`]) and wait for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if let StopMode::Term(grace) = self.stop_mode {
            signal(self.pid, "TERM");
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The last `max` bytes of `s` (on a char boundary).
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The result of a one-shot command.
#[derive(Debug)]
pub struct CmdOutput {
    pub program: String,
    pub args: Vec<String>,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timed_out: bool,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.status.map(|s| s.success()).unwrap_or(false)
    }

    /// Panic with the whole output unless the command succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "command failed: {self}");
        self
    }

    /// Panic unless the command failed.
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "command unexpectedly succeeded: {self}");
        self
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}\n  status: {:?}{} after {:?}\n  stdout: {}\n  stderr: {}",
            self.program,
            self.args.join(" "),
            self.status,
            if self.timed_out { " (TIMED OUT)" } else { "" },
            self.elapsed,
            tail(&self.stdout, 4000),
            tail(&self.stderr, 4000)
        )
    }
}

/// Run `cmd` to completion with a deadline (killed by PID when it passes), capturing its output
/// through files in `scratch` (so a chatty child cannot block on a full pipe).
pub fn run(mut cmd: Command, timeout: Duration, scratch: &Path) -> CmdOutput {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    fs::create_dir_all(scratch).expect("create scratch dir");
    let out_path = scratch.join(format!("cmd-{n}.stdout"));
    let err_path = scratch.join(format!("cmd-{n}.stderr"));
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("create stdout file"))
        .stderr(File::create(&err_path).expect("create stderr file"));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {program} {}: {e}", args.join(" ")));
    let deadline = start + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) => {}
            Err(_) => break None,
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().ok();
        }
        thread::sleep(Duration::from_millis(20));
    };
    CmdOutput {
        program,
        args,
        status: if timed_out { None } else { status },
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: start.elapsed(),
        timed_out,
    }
}

/// Poll `cond` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
