//! The `tiered` binary on folders filled with the library: what scripts rely on (JSON fields,
//! exit codes) and what each command does to the folder.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tiered::{Cache, Options};

fn tiered(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(args)
        .output()
        .expect("run tiered")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// Runs `tiered ARGS --json`, expects success, and parses its stdout.
fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = tiered(&args);
    assert_eq!(
        code(&out),
        0,
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn path(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 temp path")
}

/// A folder with four live entries (two tagged "prices", one in namespace "reports") and one
/// expired, "old". The sweeper of the process that opens the folder may reclaim "old" at any
/// moment, so tests accept it listed (as expired) or gone.
fn filled() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    let prices = Options::new().tags(["prices"]);
    cache.insert("paris", 2_100_000u64).unwrap();
    cache
        .insert_with(&("prices", 3u32), 1.5f64, &prices)
        .unwrap();
    cache
        .insert_with(&("prices", 4u32), 2.5f64, &prices)
        .unwrap();
    cache
        .namespace("reports")
        .insert("q1", "text".to_string())
        .unwrap();
    // Expired on arrival it would not be stored: it expires just after.
    cache
        .insert_with(
            "old",
            1u8,
            &Options::new().expires_at(SystemTime::now() + Duration::from_millis(300)),
        )
        .unwrap();
    drop(cache);
    std::thread::sleep(Duration::from_millis(400));
    dir
}

/// The keys of the live entries listed.
fn keys(ls: &Value) -> Vec<String> {
    let mut keys: Vec<String> = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["expired"] == false)
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

#[test]
fn stats_json_has_the_sizes() {
    let dir = filled();
    let s = json(&["stats", path(dir.path())]);
    assert_eq!(s["live_entries"], 4);
    let expired = s["expired_entries"].as_u64().unwrap();
    assert!(expired <= 1);
    assert!(s["entries"].as_u64().unwrap() >= 4 + expired);
    assert!(s["disk_bytes"].as_u64().unwrap() > 0);
    assert!(s["disk_file_bytes"].as_u64().unwrap() >= s["disk_bytes"].as_u64().unwrap());
    assert!(s["memory_bytes"].is_u64());
    // The table for people.
    let out = tiered(&["stats", path(dir.path())]);
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("live entries"));
}

#[test]
fn ls_lists_readable_keys_and_filters() {
    let dir = filled();
    let d = path(dir.path());
    let all = json(&["ls", d]);
    assert_eq!(
        keys(&all),
        [
            r#""paris""#,
            r#""q1""#,
            r#"("prices", 3)"#,
            r#"("prices", 4)"#
        ]
    );
    let prices = json(&["ls", d, "--tag", "prices"]);
    assert_eq!(keys(&prices), [r#"("prices", 3)"#, r#"("prices", 4)"#]);
    assert_eq!(prices["entries"][0]["tags"][0], "prices");
    let reports = json(&["ls", d, "--namespace", "reports"]);
    assert_eq!(keys(&reports), [r#""q1""#]);
    assert_eq!(reports["entries"][0]["namespace"], "reports");
    let expired = json(&["ls", d, "--expired"]);
    for e in expired["entries"].as_array().unwrap() {
        assert_eq!(
            (e["key"].as_str(), &e["expired"]),
            (Some(r#""old""#), &Value::Bool(true))
        );
        assert!(e["expires_ms"].is_u64());
    }
    let limited = json(&["ls", d, "--limit", "2"]);
    assert!(limited["total"].as_u64().unwrap() >= 4);
    assert_eq!(limited["entries"].as_array().unwrap().len(), 2);
    let out = tiered(&["ls", d]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"("prices", 3)"#));
}

#[test]
fn ls_shows_memoized_calls_and_the_bookkeeping_only_with_all() {
    const PRICES: tiered::Memoized = tiered::Memoized::new("app::load_prices", 4);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    PRICES.call(&cache, &Options::new(), PRICES.key(&("eu", 1u32)), || {
        2.5f64
    });
    drop(cache);
    let d = path(dir.path());
    let ls = json(&["ls", d]);
    let entries = ls["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "the code version note is hidden: {ls}");
    assert_eq!(entries[0]["call"], r#"load_prices("eu", 1)"#);
    assert_eq!(entries[0]["key"], r#"(4, ("eu", 1))"#);
    let table = String::from_utf8_lossy(&tiered(&["ls", d]).stdout).to_string();
    assert!(table.contains(r#"load_prices("eu", 1)"#), "{table}");
    assert!(!table.contains("memoize-versions"), "{table}");
    let all = json(&["ls", d, "--all"]);
    assert_eq!(all["entries"].as_array().unwrap().len(), 2, "{all}");
    assert_eq!(json(&["stats", d])["live_entries"], 1);
}

#[test]
fn a_reader_that_stops_early_ends_ls_quietly() {
    // `tiered ls DIR | head`: the output is larger than a pipe holds, and the reader goes.
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for i in 0..3000u32 {
        cache.insert(&("report", i), i).unwrap();
    }
    drop(cache);
    for json in [false, true] {
        let mut args = vec!["ls", path(dir.path())];
        if json {
            args.push("--json");
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_tiered"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 64];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // A command that fails keeps its exit code when nobody reads its output.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(["--json", "stats", "/nonexistent/tiered-folder"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(3), "a missing folder");
}

#[test]
fn explain_says_live_or_not_with_its_exit_code() {
    let dir = filled();
    let d = path(dir.path());
    let live = json(&["explain", d, "paris"]);
    assert_eq!(live["live"], true);
    let out = tiered(&["explain", d, "q1", "--namespace", "reports"]);
    assert_eq!(code(&out), 0);
    let out = tiered(&["explain", d, "old", "--json"]);
    assert_eq!(code(&out), 4);
    let why: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(why["live"], false);
    let out = tiered(&["explain", d, "nothing"]);
    assert_eq!(code(&out), 4);
}

#[test]
fn explain_takes_keys_of_any_type_as_ls_shows_them() {
    let dir = filled();
    let d = path(dir.path());
    // As listed, quoted or not; a number without a width matches the stored u32.
    for key in [
        r#"("prices", 3)"#,
        r#"("prices",3u32)"#,
        r#""paris""#,
        "paris",
    ] {
        let why = json(&["explain", d, key]);
        assert_eq!(why["live"], true, "{key}: {why}");
    }
    // A negative number is a key, not an option.
    let out = tiered(&["explain", d, "-2i64"]);
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    for key in [r#"("prices", 3u64)"#, r#"("prices", 5)"#, r#""q1""#] {
        let out = tiered(&["explain", d, key]);
        assert_eq!(code(&out), 4, "{key}");
    }
    // A text that is neither a key as shown nor a stored string: never written, and why
    // the text was not read as a key.
    let out = tiered(&["explain", d, r#"("prices", 3"#]);
    assert_eq!(code(&out), 4);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("as `tiered ls` shows them"), "{err}");
}

#[test]
fn clear_by_each_selector() {
    let dir = filled();
    let d = path(dir.path());
    let r = json(&["clear", d, "--tag", "prices"]);
    assert_eq!(
        (r["selector"].as_str(), r["entries"].as_u64()),
        (Some("tag"), Some(2))
    );
    assert_eq!(keys(&json(&["ls", d])), [r#""paris""#, r#""q1""#]);

    let r = json(&["clear", d, "--namespace", "reports"]);
    assert_eq!(r["entries"], 1);
    assert_eq!(keys(&json(&["ls", d])), [r#""paris""#]);

    let r = json(&["clear", d, "--expired"]);
    assert!(r["entries"].as_u64().unwrap() <= 1);
    assert_eq!(json(&["ls", d, "--expired"])["total"], 0);
    assert_eq!(keys(&json(&["ls", d])), [r#""paris""#]);

    let r = json(&["clear", d, "--all"]);
    assert_eq!(r["entries"], 1);
    assert_eq!(json(&["ls", d])["total"], 0);
    // The library sees the same.
    let cache = Cache::open(dir.path()).unwrap();
    assert!(!cache.contains_key("paris").unwrap());
}

#[test]
fn purge_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path()).unwrap();
    for i in 0..2_000u32 {
        cache.insert(&i, vec![7u8; 1_000]).unwrap();
    }
    cache.clear().unwrap();
    drop(cache);
    let d = path(dir.path());
    let r = json(&["purge", d]);
    assert!(
        r["file_bytes_after"].as_u64().unwrap() < r["file_bytes_before"].as_u64().unwrap(),
        "{r}"
    );
    assert!(r["file_bytes_after"].as_u64().unwrap() < 1 << 20, "{r}");
}

#[test]
fn export_then_import_round_trips() {
    let dir = filled();
    let target = tempfile::tempdir().unwrap();
    let file = target.path().join("cache.export");
    let into = target.path().join("copy");
    let r = json(&["export", path(dir.path()), file.to_str().unwrap()]);
    assert_eq!(r["exported"], 4);
    let r = json(&["import", into.to_str().unwrap(), file.to_str().unwrap()]);
    assert_eq!(r["imported"], 4);

    let copy = Cache::open(&into).unwrap();
    assert_eq!(
        copy.get::<_, u64>("paris").unwrap().as_deref(),
        Some(&2_100_000)
    );
    assert_eq!(
        copy.namespace("reports")
            .get::<_, String>("q1")
            .unwrap()
            .as_deref()
            .map(String::as_str),
        Some("text")
    );
    copy.invalidate_tag("prices").unwrap();
    assert!(!copy.contains_key(&("prices", 3u32)).unwrap());
}

#[test]
fn export_to_stdout_and_import_from_stdin() {
    let dir = filled();
    let out = tiered(&["export", path(dir.path()), "-"]);
    assert_eq!(code(&out), 0);
    assert!(out.stdout.starts_with(b"tiered-export 1\n"));
    let target = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tiered"))
        .args(["import", path(target.path()), "-", "--json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&out.stdout).unwrap();
    let done = child.wait_with_output().unwrap();
    assert_eq!(code(&done), 0);
    let r: Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(r["imported"], 4);
}

#[test]
fn a_damaged_export_fails_with_a_message() {
    let dir = filled();
    let target = tempfile::tempdir().unwrap();
    let file = target.path().join("cut.export");
    json(&["export", path(dir.path()), file.to_str().unwrap()]);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 20]).unwrap();
    let into = target.path().join("copy");
    let out = tiered(&[
        "import",
        into.to_str().unwrap(),
        file.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code(&out), 1);
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        err["error"].as_str().unwrap().contains("truncated"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}

#[test]
fn a_missing_folder_is_exit_3_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    for cmd in ["stats", "ls", "purge"] {
        let out = tiered(&[cmd, missing.to_str().unwrap()]);
        assert_eq!(code(&out), 3, "{cmd}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("no cache at"));
    }
    let out = tiered(&["export", missing.to_str().unwrap(), "-", "--json"]);
    assert_eq!(code(&out), 3);
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(err["error"].as_str().unwrap().contains("no cache at"));
    assert!(!missing.exists());
    // An empty folder is no cache either.
    assert_eq!(code(&tiered(&["stats", path(dir.path())])), 3);
}

#[test]
fn usage_errors_are_exit_2() {
    let dir = filled();
    let d = path(dir.path());
    assert_eq!(code(&tiered(&["clear", d])), 2);
    assert_eq!(code(&tiered(&["clear", d, "--tag", "a", "--all"])), 2);
    assert_eq!(code(&tiered(&["frobnicate"])), 2);
    assert_eq!(code(&tiered(&["--help"])), 0);
    // A watch period out of range is refused, never a panic (1e20 s overflowed a Duration).
    for secs in ["0", "0.05", "nan", "inf", "1e20", "1e-300", "100000"] {
        let out = tiered(&["stats", d, &format!("--watch={secs}")]);
        assert_eq!(code(&out), 2, "--watch {secs}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("from 0.1 to 86400"), "--watch {secs}: {err}");
    }
}

/// The tags of the live entry `key` as `tiered ls DIR --json` shows them.
fn listed_tags(dir: &Path, key: &str) -> Vec<String> {
    let ls = json(&["ls", path(dir)]);
    let entry = ls["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == key)
        .unwrap_or_else(|| panic!("{key} not listed: {ls}"));
    serde_json::from_value(entry["tags"].clone()).unwrap()
}

#[test]
fn an_import_keeps_tag_names_for_ls_and_a_new_export() {
    let dir = filled();
    let target = tempfile::tempdir().unwrap();
    let (first, second) = (
        target.path().join("1.export"),
        target.path().join("2.export"),
    );
    let (b, c) = (target.path().join("b"), target.path().join("c"));
    let key = r#"("prices", 3)"#;
    assert_eq!(listed_tags(dir.path(), key), ["prices"]);
    json(&["export", path(dir.path()), first.to_str().unwrap()]);
    json(&["import", path(&b), first.to_str().unwrap()]);
    assert_eq!(listed_tags(&b, key), ["prices"]);
    json(&["export", path(&b), second.to_str().unwrap()]);
    json(&["import", path(&c), second.to_str().unwrap()]);
    assert_eq!(listed_tags(&c, key), ["prices"]);
}

#[test]
fn an_import_of_a_garbage_file_leaves_no_new_folder_and_says_nothing_was_imported() {
    let target = tempfile::tempdir().unwrap();
    let garbage = target.path().join("garbage");
    std::fs::write(&garbage, b"PK\x03\x04 not an export at all").unwrap();
    let new = target.path().join("new");
    let into = new.join("cache");
    let out = tiered(&["import", path(&into), path(&garbage)]);
    assert_eq!(code(&out), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    assert!(!stderr.contains("before that point"), "{stderr}");
    assert!(
        !new.exists(),
        "the folder the import created is left: {stderr}"
    );

    // A missing input creates no folder either.
    let out = tiered(&["import", path(&into), path(&target.path().join("nope"))]);
    assert_eq!(code(&out), 1);
    assert!(!new.exists());

    // A folder that was there before stays.
    let out = tiered(&["import", path(target.path()), path(&garbage)]);
    assert_eq!(code(&out), 1);
    assert!(garbage.exists() && target.path().is_dir());
}

#[test]
fn stats_on_a_file_says_it_is_not_a_folder() {
    let target = tempfile::tempdir().unwrap();
    let file = target.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = tiered(&["stats", path(&file)]);
    assert_eq!(code(&out), 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a folder"), "{stderr}");
    assert!(!stderr.contains("no such folder"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn an_export_file_is_readable_by_its_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = filled();
    let target = tempfile::tempdir().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let file = target.path().join("new.export");
    json(&["export", path(dir.path()), path(&file)]);
    assert_eq!(mode(&file), 0o600);
    // One an earlier build left open to others is made private when written again.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    json(&["export", path(dir.path()), path(&file)]);
    assert_eq!(mode(&file), 0o600);
}
