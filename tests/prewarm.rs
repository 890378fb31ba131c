//! `examples/prewarm.rs` run while an app holds the folder: the app serves every entry the
//! job wrote, at its next read, without a restart.

#![cfg(unix)]

mod common;

use std::process::Command;
use std::time::Duration;

use tiered::Cache;

/// The example, built by `cargo test` beside this test binary.
fn prewarm() -> Command {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    Command::new(dir.join("examples").join("prewarm"))
}

#[test]
fn a_prewarm_job_fills_the_running_apps_cache() {
    let dir = common::tempdir();
    // This process is the app: it holds the folder and reads the namespace before the job.
    let app = Cache::builder()
        .path(dir.path())
        .open_timeout(Duration::from_secs(20))
        .open()
        .unwrap();
    let prices = app.namespace("prices");
    assert!(prices.get::<_, Vec<f64>>(&17u32).unwrap().is_none());

    let out = prewarm()
        .arg(dir.path())
        .arg("10000")
        .output()
        .expect("run the prewarm example (built by cargo test)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("writing through it"), "{stdout}");

    let before = app.stats();
    for day in 0..10_000u32 {
        let v = prices
            .get::<_, Vec<f64>>(&day)
            .unwrap()
            .unwrap_or_else(|| panic!("day {day} was pre-warmed"));
        assert_eq!(v[0], f64::from(day));
    }
    let after = app.stats();
    let hits = (after.memory_hits + after.disk_hits) - (before.memory_hits + before.disk_hits);
    assert_eq!(hits, 10_000, "every read was a hit");
    assert_eq!(after.misses, before.misses);
    // The day read as missing before the job is no longer a miss either.
    assert!(prices.get::<_, Vec<f64>>(&17u32).unwrap().is_some());
}
