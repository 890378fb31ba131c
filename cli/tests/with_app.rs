//! The `tiered` command while an app process holds the folder: it works through the app's
//! process, sees the app's entries, and its changes reach the app at the app's next read.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;
use tiered::{Cache, Durability, Options};

const DIR: &str = "TIERED_CLI_APP_DIR";

/// Child: the app. Opens the folder, fills it, then answers `get NS KEY` with `=> hit` or
/// `=> miss` until its stdin closes.
#[test]
#[ignore = "child process of the with_app tests"]
fn child_app() {
    let Ok(dir) = std::env::var(DIR) else { return };
    let cache = Cache::builder()
        .path(&dir)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    let prices = cache.namespace("prices");
    let tagged = Options::new().tags(["prices"]);
    for day in 1..=3u32 {
        prices
            .insert_with(&("eu", day), 100.0 + f64::from(day), &tagged)
            .unwrap();
    }
    cache.insert("motd", "hello".to_string()).unwrap();
    cache.insert(&("user", 7u64), "ann".to_string()).unwrap();
    println!("ready");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["price", day] => {
                let day: u32 = day.parse().unwrap();
                prices.get::<_, f64>(&("eu", day)).unwrap().is_some()
            }
            ["motd"] => cache.get::<_, String>("motd").unwrap().is_some(),
            ["remove", "motd"] => cache.remove("motd").unwrap(),
            other => panic!("unknown command {other:?}"),
        };
        println!("=> {}", if answer { "hit" } else { "miss" });
    }
}

struct App {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl App {
    fn start(dir: &std::path::Path) -> App {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "child_app",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR, dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        let mut app = App {
            child,
            input,
            output,
        };
        app.line_ending("ready");
        app
    }

    fn line_ending(&mut self, marker: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.output.read_line(&mut line).unwrap() > 0,
                "the app exited"
            );
            if line.trim_end().ends_with(marker) || line.contains(marker) {
                return line;
            }
        }
    }

    /// Closes the app's input, so that it closes its cache and exits, and waits for it.
    fn quit(self) {
        let App {
            mut child, input, ..
        } = self;
        drop(input);
        child.wait().unwrap();
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.input, "{command}").unwrap();
        self.input.flush().unwrap();
        let line = self.line_ending("=> ");
        line.trim_end().rsplit("=> ").next().unwrap().to_string()
    }
}

fn tiered_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tiered {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_command_sees_the_apps_entries_and_its_clear_reaches_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let mut app = App::start(dir.path());
    assert_eq!(app.ask("price 2"), "hit");

    let stats = tiered_json(&["stats", path]);
    assert_eq!(stats["entries"], 5, "{stats}");
    assert!(stats["disk_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats.get("memory_bytes").is_some(), "{stats}");

    let listed = tiered_json(&["ls", path]);
    assert_eq!(listed["total"], 5, "{listed}");
    let keys: Vec<String> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5, "{listed}");
    assert!(keys.contains(&"(\"eu\", 2)".to_string()), "{keys:?}");
    assert!(keys.contains(&"\"motd\"".to_string()), "{keys:?}");
    // The app's tags by name, though none was ever invalidated.
    let eu2 = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "(\"eu\", 2)")
        .unwrap();
    assert_eq!(eu2["tags"], serde_json::json!(["prices"]), "{eu2}");
    let tagged = tiered_json(&["ls", path, "--tag", "prices"]);
    assert_eq!(tagged["total"], 3, "{tagged}");

    tiered_json(&["clear", path, "--tag", "prices"]);
    // The app's next reads: the tagged entries are gone from its memory too.
    for day in 1..=3 {
        assert_eq!(app.ask(&format!("price {day}")), "miss");
    }
    assert_eq!(app.ask("motd"), "hit");
    let stats = tiered_json(&["stats", path]);
    assert!(stats["entries"].as_u64().unwrap() >= 2, "{stats}");

    drop(app.input);
    app.child.wait().unwrap();
}

/// The `processes` entry of `stats --json` for process `pid`, once its figures match `ready`
/// (a client reports its counters once a second): polled for up to 20 s.
fn figures_of(path: &str, pid: u32, ready: impl Fn(&Value) -> bool) -> (Value, Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let stats = tiered_json(&["stats", path]);
        let found = stats["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .cloned();
        if let Some(p) = found.filter(|p| ready(p)) {
            return (p, stats);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never showed the expected figures: {stats}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn stats_shows_each_running_process_hits_and_misses_and_their_totals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    // The first app holds the folder; the second is its client.
    let mut first = App::start(dir.path());
    assert_eq!(first.ask("price 2"), "hit"); // in its memory: a memory hit
    assert_eq!(first.ask("price 9"), "miss");
    let mut second = App::start(dir.path());
    assert_eq!(second.ask("price 3"), "hit"); // its own insert: a memory hit
    assert_eq!(second.ask("price 9"), "miss");
    assert_eq!(second.ask("price 8"), "miss");
    // The second app rewrote the prices, so the first reads day 1 from the disk.
    assert_eq!(first.ask("price 1"), "hit");

    let (a, _) = figures_of(path, first.child.id(), |p| p["misses"] == 1);
    assert_eq!(a["holds_folder"], true, "{a}");
    assert_eq!(
        (&a["memory_hits"], &a["disk_hits"], &a["misses"]),
        (&1.into(), &1.into(), &1.into()),
        "{a}"
    );
    assert_eq!(a["inserts"], 5, "{a}");
    let (b, stats) = figures_of(path, second.child.id(), |p| p["misses"] == 2);
    assert_eq!(b["holds_folder"], false, "{b}");
    assert_eq!(
        (&b["memory_hits"], &b["disk_hits"], &b["misses"]),
        (&1.into(), &0.into(), &2.into()),
        "{b}"
    );
    // The command's own process is not listed: only the two apps, and their totals.
    assert_eq!(stats["processes"].as_array().unwrap().len(), 2, "{stats}");
    let totals = &stats["totals"];
    assert_eq!(
        (
            &totals["memory_hits"],
            &totals["disk_hits"],
            &totals["misses"]
        ),
        (&2.into(), &1.into(), &3.into()),
        "{stats}"
    );
    assert_eq!(totals["hit_ratio"], 0.5, "{stats}");

    // An app that closed its cache is no longer listed.
    second.quit();
    let stats = tiered_json(&["stats", path]);
    let pids: Vec<&Value> = stats["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["pid"])
        .collect();
    assert_eq!(pids, [&Value::from(first.child.id())], "{stats}");
    first.quit();
}

#[test]
fn stats_watch_refreshes_until_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let mut app = App::start(dir.path());
    let mut watch = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(["stats", "--watch=0.1", path, "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    // One JSON document per refresh; the app's hit shows up in a later one.
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["processes"][0]["pid"], app.child.id(), "{first}");
    assert_eq!(app.ask("price 1"), "hit");
    let seen = lines.any(|line| {
        let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
        v["totals"]["memory_hits"] == 1
    });
    assert!(seen, "the watch ended before showing the app's hit");
    // It runs until its reader goes away (`| head`): then it ends, and lets go of the folder.
    assert!(watch.try_wait().unwrap().is_none());
    drop(lines);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            watch.kill().unwrap();
            panic!("the watch went on after its reader went away");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    app.quit();
}

#[test]
fn explain_tells_what_a_running_app_dropped_and_keeps_it_after_the_app_exits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    // The first app holds the folder; the second, its client, removes a key.
    let first = App::start(dir.path());
    let mut second = App::start(dir.path());
    assert_eq!(second.ask("remove motd"), "hit");
    assert_eq!(explained(path, "motd")["kind"], "removed");
    first.quit();
    second.quit();
    // No app runs: the fate was saved in the folder by the app that held it.
    assert_eq!(explained(path, "motd")["kind"], "removed");
}

/// `tiered explain DIR KEY --json`, live or not.
fn explained(path: &str, key: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(["explain", path, key, "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}
