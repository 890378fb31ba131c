//! `tiered --redis URL`: `stats`, `ls`, `clear`, `explain`, `export` and `import` on a cache
//! shared through Redis, against a real `redis-server` started on a free loopback port.
//! Without one the tests say so loudly and pass, except under `CI=true`.

#![cfg(feature = "redis")]

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tiered::{Cache, Options};

#[path = "../../tests/common/redis_server.rs"]
mod redis_server;

/// A `redis-server` of the test's own, stopped when dropped.
struct Server {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Option<Server> {
        if !redis_server::available() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = redis_server::free_port();
        let child = redis_server::spawn(port, dir.path(), &["--port", &port.to_string()]);
        Some(Server {
            port,
            child,
            _dir: dir,
        })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tiered(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(args)
        .env_remove("TIERED_REDIS_URL")
        .output()
        .expect("run tiered")
}

fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = tiered(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn ls_stats_and_clear_work_on_a_cache_shared_through_redis() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let app = Cache::builder().redis(&url).open().unwrap();
    let prices = Options::new().tags(["prices"]);
    app.insert_with("eu", 1.5f64, &prices).unwrap();
    app.insert_with("us", 2.5f64, &prices).unwrap();
    app.insert("plain", 7u32).unwrap();
    app.flush().unwrap();

    let listed = json(&["ls", "--redis", &url]);
    let keys: Vec<&str> = listed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(keys.len(), 3, "{listed}");
    // Tags by name, as the app gave them (the command never used them itself).
    let tagged = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "prices"))
        })
        .count();
    assert_eq!(tagged, 2, "{listed}");
    let stats = json(&["stats", "--redis", &url]);
    assert_eq!(stats["live_entries"], 3, "{stats}");
    assert_eq!(stats["entries"], 3, "the records in Redis: {stats}");
    let listed_bytes: u64 = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["bytes"].as_u64().expect("bytes"))
        .sum();
    assert!(listed_bytes > 0);
    assert_eq!(stats["disk_bytes"], listed_bytes, "{stats}");
    assert!(stats["disk_file_bytes"].is_null(), "no files: {stats}");

    // The app holds the values in memory; a clear from the command reaches it.
    assert!(app.get::<_, f64>("eu").unwrap().is_some());
    json(&["clear", "--redis", &url, "--tag", "prices"]);
    let until = Instant::now() + Duration::from_secs(10);
    while app.get::<_, f64>("eu").unwrap().is_some() {
        assert!(
            Instant::now() < until,
            "the app kept serving a cleared value"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*app.get::<_, u32>("plain").unwrap().unwrap(), 7);
    let listed = json(&["ls", "--redis", &url]);
    assert_eq!(listed["entries"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn an_unreachable_server_is_an_error_that_never_shows_the_password() {
    let port = redis_server::free_port();
    let url = format!("redis://user:s3cret@127.0.0.1:{port}");
    let out = tiered(&["stats", "--redis", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot be reached"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    let out = tiered(&["stats"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no folder and no --redis is a usage error"
    );
}

#[test]
fn explain_export_and_import_work_on_a_cache_in_redis_and_purge_says_why_not() {
    let Some(server) = Server::start() else {
        return;
    };
    let url = server.url();
    let app = Cache::builder().redis(&url).open().unwrap();
    app.insert("answer", 42u64).unwrap();
    app.namespace("user:7")
        .insert("name", "ada".to_string())
        .unwrap();
    app.flush().unwrap();

    // explain KEY, the folder left out.
    let why = json(&["explain", "--redis", &url, "answer"]);
    assert_eq!(why["live"], true, "{why}");
    let out = tiered(&["explain", "--redis", &url, "never-written"]);
    assert_ne!(out.status.code(), Some(0), "a missing key is not live");

    // export FILE, then import FILE into another prefix of the same server.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.tiered");
    let file = file.to_str().unwrap();
    json(&["export", "--redis", &url, file]);
    json(&["import", "--redis", &url, "--redis-prefix", "copy:", file]);
    let copy = Cache::builder()
        .redis(&url)
        .redis_prefix("copy:")
        .open()
        .unwrap();
    assert_eq!(copy.get::<_, u64>("answer").unwrap().as_deref(), Some(&42));
    assert_eq!(
        copy.namespace("user:7")
            .get::<_, String>("name")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("ada")
    );

    // An empty TIERED_REDIS_URL is no Redis: one argument is then a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(["import", file])
        .env("TIERED_REDIS_URL", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = tiered(&["import", "--redis", "", file]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "an empty --redis is refused: {out:?}"
    );
    // One argument and no Redis: a usage error that says what to give.
    let out = tiered(&["explain", "answer"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--redis URL and KEY"), "{err}");
    let out = tiered(&["purge", "--redis", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Redis frees its own memory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
