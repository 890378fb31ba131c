//! A `redis-server` of a test's own and what the Redis tests do with it
//! (`tests/redis.rs`, `tests/redis_folder.rs`).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tiered::Cache;

use super::redis_server;

/// A `redis-server` of the test's own, stopped when dropped.
pub struct Server {
    pub port: u16,
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// A fresh server, or `None` (said loudly) where `redis-server` is not installed outside
    /// CI.
    pub fn start() -> Option<Server> {
        if !redis_server::available() {
            return None;
        }
        let mut server = Server {
            port: redis_server::free_port(),
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        server.launch();
        Some(server)
    }

    pub fn launch(&mut self) {
        let port = self.port.to_string();
        self.child = Some(redis_server::spawn(
            self.port,
            self.dir.path(),
            &["--port", &port],
        ));
        let until = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < until, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs a command with `redis-cli`; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// How many times the server ran `command` (`INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        let info = self.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Kills the caches' listener connections (`CLIENT KILL ID`); how many.
    pub fn kill_listeners(&self) -> usize {
        let list = self.cli(&["CLIENT", "LIST"]);
        let ids: Vec<&str> = list
            .lines()
            .filter(|l| l.contains("name=tiered-listener"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .collect();
        for id in &ids {
            self.cli(&["CLIENT", "KILL", "ID", id]);
        }
        ids.len()
    }

    /// `SHUTDOWN NOSAVE`, as an operator restarting it would, then waits for it to end.
    pub fn shutdown(&mut self) {
        self.cli(&["SHUTDOWN", "NOSAVE"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Two caches over this server, both hearing the other's writes.
    pub fn pair(&self) -> (Cache, Cache) {
        let pair = (self.cache(), self.cache());
        listening(self, 2);
        pair
    }

    /// Two caches over this server, each with its folder in front (`path` and `redis`),
    /// both hearing the other's writes.
    pub fn pair_with_folders(&self, a: &std::path::Path, b: &std::path::Path) -> (Cache, Cache) {
        let pair = (self.cache_in(a), self.cache_in(b));
        listening(self, 2);
        pair
    }

    /// A cache with the folder `dir` in front of this server, as one machine would open it.
    pub fn cache_in(&self, dir: &std::path::Path) -> Cache {
        Cache::builder()
            .path(dir)
            .redis(self.url())
            .redis_timeouts(Duration::from_millis(500), Duration::from_millis(500))
            .open()
            .unwrap()
    }

    /// A cache over this server, as one machine would open it.
    pub fn cache(&self) -> Cache {
        Cache::builder()
            .redis(self.url())
            .redis_timeouts(Duration::from_millis(500), Duration::from_millis(500))
            .open()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (a bound, not a timing goal) until `f` holds; whether it did.
pub fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Inserts and waits until the write was sent.
pub fn put<V>(cache: &Cache, key: &str, value: V)
where
    V: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    cache.insert(key, value).unwrap();
    cache.flush().unwrap();
}

pub fn get(cache: &Cache, key: &str) -> Option<String> {
    cache
        .get::<_, String>(key)
        .expect("a read never fails because of Redis")
        .map(|v| (*v).clone())
}

/// Every cache hears the others' writes: `caches` connections track with a redirect to a
/// live listener.
pub fn listening(server: &Server, caches: usize) {
    let ok = eventually(|| {
        let list = server.cli(&["CLIENT", "LIST"]);
        let listeners: Vec<String> = list
            .lines()
            .filter(|l| l.contains("name=tiered-listener"))
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
            .map(str::to_string)
            .collect();
        let tracking = list
            .lines()
            .filter(|l| {
                l.split(' ')
                    .any(|f| f.starts_with("flags=") && f.contains('t'))
            })
            .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("redir=")))
            .filter(|redir| listeners.iter().any(|id| id == redir))
            .count();
        tracking >= caches
    });
    assert!(
        ok,
        "the caches do not track: {}",
        server.cli(&["CLIENT", "LIST"])
    );
}

/// Reads `key` until the read is a memory hit (of `want`).
pub fn held_in_memory(cache: &Cache, key: &str, want: &str) -> bool {
    eventually(|| {
        let before = cache.stats().memory_hits;
        get(cache, key).as_deref() == Some(want) && cache.stats().memory_hits > before
    })
}
