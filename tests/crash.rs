//! A process killed with SIGKILL while inserting loses nothing that was acknowledged, and the
//! cache reopens without error.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tiered::{Cache, Durability};

const ROUNDS: u64 = 24;
const WRITERS: u64 = 4;

fn value(key: u64) -> String {
    format!("value-{key}-{}", "x".repeat((key % 200) as usize))
}

/// Child: WRITERS threads insert with `Durability::Immediate` and print each key once its insert
/// returned Ok, until killed.
#[test]
#[ignore = "child process of kill_9_while_inserting_keeps_every_acknowledged_insert"]
fn child_inserting() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let base: u64 = std::env::var("TIERED_BASE").unwrap().parse().unwrap();
    let cache = Cache::builder()
        .path(&dir)
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    println!("ready");
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let handles: Vec<_> = (0..WRITERS)
        .map(|t| {
            let (cache, out) = (cache.clone(), out.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let key = base + i * WRITERS + t;
                    cache.insert(&key, value(key)).unwrap();
                    let mut out = out.lock().unwrap();
                    writeln!(out, "{key}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[cfg(unix)]
#[test]
fn kill_9_while_inserting_keeps_every_acknowledged_insert() {
    let dir = common::tempdir();
    let mut acknowledged: Vec<u64> = Vec::new();
    for round in 0..ROUNDS {
        let base = round * 1_000_000_000;
        let mut child = common::spawn_child(
            "child_inserting",
            dir.path(),
            &[("TIERED_BASE", base.to_string())],
        );
        let mut out = BufReader::new(child.stdout.take().unwrap());
        common::wait_for_line(&mut out, "ready");
        let reader = std::thread::spawn(move || {
            let mut keys = Vec::new();
            let mut line = Vec::new();
            loop {
                line.clear();
                match out.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return keys,
                    // A line cut by the kill has no newline: that insert was not acknowledged.
                    Ok(_) if line.last() == Some(&b'\n') => {
                        let text = std::str::from_utf8(&line[..line.len() - 1]).unwrap();
                        if let Ok(key) = text.parse::<u64>() {
                            keys.push(key);
                        }
                    }
                    Ok(_) => return keys,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(rand::random_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let keys = reader.join().unwrap();
        acknowledged.extend(keys);

        let cache = Cache::open(dir.path()).expect("reopen after SIGKILL");
        for key in &acknowledged {
            let got = cache.get::<_, String>(key).unwrap();
            assert_eq!(
                got.as_deref(),
                Some(&value(*key)),
                "round {round}: acknowledged insert {key} lost"
            );
        }
    }
    assert!(
        acknowledged.len() as u64 > ROUNDS,
        "the children acknowledged too few inserts to test anything"
    );
}
