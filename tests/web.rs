//! `examples/web.rs` over real HTTP on loopback: concurrent requests for one report run the
//! slow query once. (Built by `cargo test` with the `tokio` feature, like every example.)

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};

/// The example's binary, built by `cargo test` beside this test's own.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let bin = profile_dir
        .join("examples")
        .join(format!("web{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(cache_dir: &std::path::Path) -> Server {
    let mut cmd = Command::new(example_binary());
    cmd.env("TIERED_DIR", cache_dir)
        .env("PORT", "0")
        .stdout(Stdio::piped());
    common::default_signals(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Server { child, base }
}

fn get(url: &str) -> String {
    ureq::get(url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

fn queries(server: &Server) -> u64 {
    let stats: serde_json::Value =
        serde_json::from_str(&get(&format!("{}/stats", server.base))).unwrap();
    stats["queries"].as_u64().unwrap()
}

#[test]
fn a_hundred_concurrent_requests_for_one_report_run_the_slow_query_once() {
    let dir = common::tempdir();
    let server = start(dir.path());
    let url = format!("{}/report?city=Paris&day=3", server.base);
    let barrier = Arc::new(Barrier::new(100));
    let answers: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let (barrier, url) = (barrier.clone(), url.clone());
                s.spawn(move || {
                    barrier.wait();
                    get(&url)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(queries(&server), 1, "one query for 100 concurrent requests");
    assert!(answers.iter().all(|a| a == &answers[0]));
    let report: serde_json::Value = serde_json::from_str(&answers[0]).unwrap();
    assert_eq!(report["city"], "Paris");

    // Other parameters are another entry; the same ones again are a hit.
    get(&format!("{}/report?city=Oslo&day=3", server.base));
    get(&url);
    assert_eq!(queries(&server), 2);
}

#[cfg(unix)]
#[test]
fn reports_survive_a_restart_of_the_server() {
    let dir = common::tempdir();
    let url = |s: &Server| format!("{}/report?city=Rome&day=9", s.base);
    let first = {
        let mut server = start(dir.path());
        let body = get(&url(&server));
        // Stopped like a dev server on Ctrl-C: batched writes are committed first.
        let pid = server.child.id() as libc::pid_t;
        // SAFETY: a plain signal to a child process this test started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        server.child.wait().unwrap();
        body
    };
    let server = start(dir.path());
    assert_eq!(get(&url(&server)), first);
    assert_eq!(
        queries(&server),
        0,
        "answered from the disk after the restart"
    );
}
