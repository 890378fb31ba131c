//! A throwaway `redis-server` on a free loopback port, for the Redis tier's tests
//! (`tests/redis.rs`, `cli/tests/redis.rs`) and `benches/redis.rs`, which include this file.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether `redis-server` is installed. Missing, it fails a CI run (`CI` set) and is said
/// loudly elsewhere, where the caller then skips.
pub fn available() -> bool {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
    {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "redis-server is not installed: CI must run the Redis tests (.ci/run installs it)"
    );
    eprintln!(
        "\n*** SKIPPED: redis-server is not installed; the Redis tier is untested here \
         (apt-get install redis-server) ***\n"
    );
    false
}

/// A loopback port no one listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `redis-server` with no persistence, its files in `dir`, listening (plain or TLS,
/// as `args` say) on `port` of the loopback address; returns once it accepts connections
/// (at most 10 s).
pub fn spawn(port: u16, dir: &Path, args: &[&str]) -> Child {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < until,
            "redis-server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}
