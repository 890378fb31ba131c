//! A child process that obeys commands on its stdin: the test file's `child_app` test, run
//! again from the test binary, answering each command with a line `=> ANSWER`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// A running `child_app` of this test binary.
/// The `open_timeout` a child app is given: `ATTACK_TIMEOUT_MS` if set, else 20 s.
pub fn child_open_timeout() -> std::time::Duration {
    std::env::var("ATTACK_TIMEOUT_MS")
        .ok()
        .map(|s| std::time::Duration::from_millis(s.parse().unwrap()))
        .unwrap_or(std::time::Duration::from_secs(20))
}

pub struct App {
    pub child: Child,
    /// `None` once closed (by the drop).
    input: Option<ChildStdin>,
    pub output: BufReader<ChildStdout>,
}

impl App {
    /// Starts `child_app` on `dir` and waits for its `ready`.
    pub fn start(dir: &Path) -> App {
        Self::start_env(dir, &[])
    }

    pub fn start_env(dir: &Path, env: &[(&str, &str)]) -> App {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new(exe);
        cmd.args([
            "child_app",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(super::CHILD_DIR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        super::default_signals(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let input = Some(child.stdin.take().unwrap());
        let mut output = BufReader::new(child.stdout.take().unwrap());
        super::wait_for_line(&mut output, "ready");
        App {
            child,
            input,
            output,
        }
    }

    /// Sends a command and returns its answer.
    pub fn ask(&mut self, command: &str) -> String {
        self.send(command);
        self.answer()
    }

    pub fn send(&mut self, command: &str) {
        let input = self.input.as_mut().expect("stdin is open until the drop");
        writeln!(input, "{command}").unwrap();
        input.flush().unwrap();
    }

    /// The next answer line's answer.
    pub fn answer(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.output.read_line(&mut line).unwrap();
            assert!(n > 0, "the app child exited");
            if let Some(answer) = line.trim_end().rsplit_once("=> ") {
                return answer.1.to_string();
            }
        }
    }

    pub fn wait_line(&mut self, marker: &str) {
        super::wait_for_line(&mut self.output, marker);
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn quit(mut self) {
        self.send("quit");
        self.child.wait().unwrap();
    }
}

impl Drop for App {
    /// A child still running when its test ends sees its stdin close, and ends as its command
    /// loop does at the end of input; it is waited for (killed after 10 s) while its stdout is
    /// still open, so that its test harness never writes into a closed pipe: libtest reports
    /// that as an error line in a passing run.
    fn drop(&mut self) {
        drop(self.input.take());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
