//! Helpers shared by the test files: temporary folders, clocks, and child processes.
//!
//! A test that needs a second process re-runs its own test binary on one `#[ignore]`d test
//! (the child), passing the cache folder in `TIERED_CHILD_DIR`.

#![allow(dead_code)]

pub mod app;
pub mod damage;
#[cfg(feature = "redis")]
pub mod redis;
pub mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::SystemTime;

use tiered::{Cache, Durability, ManualClock};

pub const CHILD_DIR: &str = "TIERED_CHILD_DIR";

/// Gives the child the default action for the signals tests send it. A shell starts the
/// commands it runs in the background with SIGINT and SIGQUIT ignored, and a child inherits
/// that: a test sending SIGINT would then wait forever for a child that goes on.
pub fn default_signals(cmd: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: `signal` is async-signal-safe, the only kind of call allowed between fork
        // and exec.
        unsafe {
            cmd.pre_exec(|| {
                for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = cmd;
}

/// The folder a child was given, or `None` when the test runs as an ordinary (ignored) test.
pub fn child_dir() -> Option<PathBuf> {
    std::env::var_os(CHILD_DIR).map(PathBuf::from)
}

/// Starts this test binary running only `test`, with `dir` and extra environment; its stderr
/// goes to ours.
pub fn spawn_child(test: &str, dir: &Path, env: &[(&str, String)]) -> Child {
    child_command(test, dir, env)
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child test process")
}

/// The command that runs `test` of this test binary as a child, stdout piped.
fn child_command(test: &str, dir: &Path, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        test,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_DIR, dir)
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    default_signals(&mut cmd);
    cmd
}

/// Reads the child's stdout until a line ending with `marker` (the test harness prints
/// `test NAME ... ` without a newline before the test's own output).
pub fn wait_for_line(out: &mut BufReader<ChildStdout>, marker: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read child output");
        assert!(n > 0, "child exited before printing {marker:?}");
        if line.trim_end().ends_with(marker) {
            return;
        }
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary folder")
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(SystemTime::now()))
}

/// A disk cache in `dir` reading time from `clock` (a [`ManualClock`] or a [`GatedClock`]),
/// committing each write before it returns.
pub fn open<C: tiered::Clock>(dir: &Path, clock: &Arc<C>) -> Cache {
    Cache::builder()
        .path(dir)
        .clock(clock.clone())
        .durability(Durability::Immediate)
        .open()
        .expect("open cache")
}

/// Like [`open`], without the warm restart: after a reopen, every first read comes from disk
/// (for tests about disk hits and promotion; `tests/warm.rs` tests the warm restart).
pub fn open_cold<C: tiered::Clock>(dir: &Path, clock: &Arc<C>) -> Cache {
    Cache::builder()
        .path(dir)
        .clock(clock.clone())
        .durability(Durability::Immediate)
        .warm_restart(0)
        .open()
        .expect("open cache")
}

/// `Cache::open(dir)`, without the warm restart (see [`open_cold`]).
pub fn cold(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .warm_restart(0)
        .open()
        .expect("open cache")
}

/// Polls `f` until it holds, for at most `secs` seconds (for work done in the background).
pub fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Runs `first` on a thread paused at its gate (a gated `Deserialize` or clock read), runs
/// `second` while it is paused, then lets `first` finish; returns what `first` got. Fails if
/// `first` never reached its gate (the test would no longer open the window it is about).
pub fn race<R: Send + 'static>(
    first: impl FnOnce() -> R + Send + 'static,
    second: impl FnOnce(),
) -> R {
    let (control, armed) = gate::new();
    let paused = std::thread::spawn(move || {
        armed.arm();
        let got = first();
        assert!(
            !gate::disarm(),
            "the paused thread never reached its gate: the test no longer opens the window"
        );
        got
    });
    control.wait_started();
    second();
    control.release();
    paused.join().expect("paused thread")
}

/// The body of a child that opens its folder, says `ready`, holds the folder for
/// `TIERED_HOLD_MS`, then exits (each test file names its own `#[ignore]`d entry point).
pub fn hold_folder_as_child() {
    let Some(dir) = child_dir() else {
        return;
    };
    let hold: u64 = std::env::var("TIERED_HOLD_MS").unwrap().parse().unwrap();
    let cache = Cache::open(&dir).unwrap();
    cache.insert("from-child", 1u8).unwrap();
    cache.flush().unwrap();
    println!("ready");
    std::thread::sleep(std::time::Duration::from_millis(hold));
}

/// Like [`spawn_child`], but with stderr piped too, so that the parent can look for panics.
pub fn spawn_child_piped(test: &str, dir: &Path, env: &[(&str, String)]) -> Child {
    child_command(test, dir, env)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn child test process")
}

/// What a child printed, and how it ended.
pub struct Finished {
    /// `None` when the child was killed for running past its time.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// Both outputs, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Waits for a child spawned by [`spawn_child_piped`] (killing it past `timeout`) and
/// collects its outputs, read concurrently so that neither pipe fills up.
pub fn finish(mut child: Child, timeout: std::time::Duration) -> Finished {
    use std::io::Read;
    fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = r.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let join = |h: Option<std::thread::JoinHandle<String>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    Finished {
        status,
        stdout: join(out),
        stderr: join(err),
    }
}

/// Sends `signal` to a child (SIGINT, SIGTERM, SIGKILL...).
#[cfg(unix)]
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill({}, {signal})", child.id());
}

/// The peak resident set size of a live process, in KiB (`VmHWM` in /proc/<pid>/status).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

/// This process's resident set size now, in KiB (`VmRSS`).
pub fn rss_kib() -> u64 {
    status_kib(std::process::id(), "VmRSS:").expect("VmRSS in /proc/self/status")
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Sets this process's soft limit on the size of the files it writes (`RLIMIT_FSIZE`), and
/// ignores SIGXFSZ so that a write past it fails with EFBIG instead of killing the process.
/// `None` raises the soft limit back to the hard limit.
#[cfg(unix)]
pub fn limit_file_size(bytes: Option<u64>) {
    // SAFETY: plain calls on this process's own limits and signal disposition.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = match bytes {
            Some(b) => (b as libc::rlim_t).min(lim.rlim_max),
            None => lim.rlim_max,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0, "setrlimit");
    }
}

/// Names in `dir` that start with `prefix`.
pub fn files_starting_with(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Aborts the whole test process with a message if not dropped within `secs`: a test that
/// could hang (a deadlock regression) fails instead of stalling CI.
pub struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn watchdog(what: &'static str, secs: u64) -> Watchdog {
    let (done, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(std::time::Duration::from_secs(secs))
        {
            // Straight to stderr: the test harness captures `eprintln!`, and an abort loses it.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "WATCHDOG: {what} did not finish within {secs} s (a hang); aborting"
            );
            std::process::abort();
        }
    });
    Watchdog {
        done: Some(done),
        thread: Some(thread),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A one-shot pause in user code called by the cache (a `Deserialize`, a [`GatedClock`]),
/// armed for one thread: the first [`gate::pass`] on that thread tells the test it started,
/// then waits until the test releases it. Other threads (the writer, other tests) pass freely.
pub mod gate {
    use std::cell::RefCell;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::time::Duration;

    thread_local! {
        static ARMED: RefCell<Option<(Sender<()>, Receiver<()>)>> = const { RefCell::new(None) };
    }

    /// The test's side of a gate.
    pub struct Control {
        started: Receiver<()>,
        release: Sender<()>,
    }

    /// The paused thread's side: give it to [`Armed::arm`] on that thread.
    pub struct Armed {
        started: Sender<()>,
        release: Receiver<()>,
    }

    pub fn new() -> (Control, Armed) {
        let (started_tx, started_rx) = channel();
        let (release_tx, release_rx) = channel();
        (
            Control {
                started: started_rx,
                release: release_tx,
            },
            Armed {
                started: started_tx,
                release: release_rx,
            },
        )
    }

    impl Armed {
        /// Arms the gate on the calling thread.
        pub fn arm(self) {
            ARMED.with(|a| *a.borrow_mut() = Some((self.started, self.release)));
        }
    }

    /// Disarms a gate the calling thread never reached.
    pub fn disarm() -> bool {
        ARMED.with(|a| a.borrow_mut().take().is_some())
    }

    impl Control {
        /// Waits until the armed thread is paused in the gate.
        pub fn wait_started(&self) {
            self.started
                .recv_timeout(Duration::from_secs(30))
                .expect("the armed thread never reached its gate");
        }

        /// Lets the paused thread go on.
        pub fn release(&self) {
            let _ = self.release.send(());
        }
    }

    /// Called from user code: pauses if a gate is armed on this thread (once).
    pub fn pass() {
        let armed = ARMED.with(|a| a.borrow_mut().take());
        if let Some((started, release)) = armed {
            let _ = started.send(());
            let _ = release.recv_timeout(Duration::from_secs(30));
        }
    }
}

/// A [`ManualClock`] whose reads pass the calling thread's [`gate`]: pauses a reader right
/// where the cache first reads the time (after it read a record, before it judges it).
#[derive(Debug)]
pub struct GatedClock(pub ManualClock);

impl GatedClock {
    pub fn new() -> Arc<GatedClock> {
        Arc::new(GatedClock(ManualClock::new(SystemTime::now())))
    }
}

impl tiered::Clock for GatedClock {
    fn now_ms(&self) -> u64 {
        gate::pass();
        tiered::Clock::now_ms(&self.0)
    }
}

/// A value whose `Deserialize` passes the decoding thread's [`gate`]: a slow decode on demand.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct Slow(pub u64);

impl<'de> serde::Deserialize<'de> for Slow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(d)?;
        gate::pass();
        Ok(Slow(v))
    }
}

/// Bytes of every file under `dir`.
pub fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => folder_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
