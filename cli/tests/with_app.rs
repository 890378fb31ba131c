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
