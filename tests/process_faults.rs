//! Many processes under faults: three child processes do random operations on one folder
//! (small and 100 KB values, `Durability::Immediate` and `Batched` + `flush()`, insert,
//! remove, get, get_or_insert_with, invalidate_tag) while the current owner is killed
//! (SIGKILL, then replaced) or stopped (SIGSTOP for 0.5-3 s, then SIGCONT) at random points.
//! Each child prints what it began and what each call acknowledged; the parent then checks
//! the folder, reopened once every process is gone, and the reads made during the run,
//! against those acknowledgements.
//!
//! The run is seeded: the seed is printed, and `TIERED_FAULT_SEED` replays one (the faults
//! land at other points of the children's work, so a replay is close, not exact).
//! `TIERED_FAULT_SECS` sets how long the faults go on (default 40 s).
//!
//! What is checked, sound under concurrency:
//! - Each child incarnation has its own keys for insert/remove (`o<child>-<n>`), untagged, so
//!   the last write of that child to a key decides its final state. A write is promised once
//!   acknowledged with `Immediate`, or (with `Batched`) once a later `flush()` returned Ok.
//!   After the run, each key holds its last promised write, or a write begun after it (a
//!   write that failed or was never answered may still have been applied), never an older
//!   one, never a value of another key, never damaged bytes.
//! - Reads of a child's own key: never older than its last promised write; never older than
//!   its last acknowledged write unless an owner was killed since (a `Batched` write not yet
//!   flushed may go with the owner); a miss where a value was promised only while an owner
//!   was stopped (its calls time out).
//! - Shared keys (`s<n>` written with tags, `g<n>` computed by `get_or_insert_with`): every
//!   value read is one a process wrote or computed for that very key.
//! - Every error is `Error::OwnerNotAnswering`, and each child exits when told to.
//!
//! A `Batched` client's writes acknowledged by an owner killed before it committed them are
//! lost; the client's next `flush()` then returns `Error::WritesLost` (it returned Ok, found
//! by this test: about half of the 40 s runs failed), and a flush that returns Ok promises
//! every write acknowledged before it began.
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tiered::{Cache, Durability, Error, Options};

const OWN_KEYS: u64 = 16;
const SHARED_KEYS: u64 = 8;
const TAGS: u64 = 3;
const LARGE: usize = 100_000;
const SMALL: usize = 48;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A value that says which key it was written for, by which child, at which step: its
/// first line is `key|child|seq|len`, the rest bytes derived from that line.
fn value(key: &str, child: u64, seq: u64, len: usize) -> Vec<u8> {
    let head = format!("{key}|{child}|{seq}|{len}\n");
    let mut v = head.clone().into_bytes();
    let mut x = xxhash_rust::xxh3::xxh3_64(head.as_bytes());
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(x as u8);
    }
    v
}

/// `key|child|seq|len` of a value made by [`value`], or `bad:<why>` if its bytes are not.
fn identify(v: &[u8]) -> String {
    let Some(end) = v.iter().position(|&b| b == b'\n') else {
        return format!("bad:no-header({} bytes)", v.len());
    };
    let head = String::from_utf8_lossy(&v[..end]).into_owned();
    let parts: Vec<&str> = head.split('|').collect();
    let parsed = match parts.as_slice() {
        [k, c, s, l] => match (c.parse(), s.parse(), l.parse()) {
            (Ok(c), Ok(s), Ok(l)) => Some(value(k, c, s, l)),
            _ => None,
        },
        _ => None,
    };
    match parsed {
        Some(expected) if expected == v => head,
        _ => format!("bad:{head}({} bytes)", v.len()),
    }
}

fn describe(r: &tiered::Result<Option<Arc<Vec<u8>>>>) -> String {
    match r {
        Ok(Some(v)) => identify(v),
        Ok(None) => "none".into(),
        Err(e) => format!("err:{}", error_kind(e)),
    }
}

fn error_kind(e: &Error) -> String {
    match e {
        Error::OwnerNotAnswering { .. } => "not-answering".into(),
        // A flush after an owner died with acknowledged batched writes uncommitted.
        Error::WritesLost { .. } => "writes-lost".into(),
        other => format!("unexpected:{}", other.to_string().replace('\n', " ")),
    }
}

/// Child: one incarnation (`TIERED_CHILD`), seeded by `TIERED_SEED`, doing random operations
/// until the file `stop` appears in `TIERED_CONTROL`; then a last flush, and exit.
#[test]
#[ignore = "child process of the fault tests"]
fn child_faulty_worker() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let me: u64 = std::env::var("TIERED_CHILD").unwrap().parse().unwrap();
    let seed: u64 = std::env::var("TIERED_SEED").unwrap().parse().unwrap();
    let control = PathBuf::from(std::env::var("TIERED_CONTROL").unwrap());
    let mut rng = StdRng::seed_from_u64(seed ^ me.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let batched = rng.random_bool(0.5);
    let cache = Cache::builder()
        .path(&dir)
        .durability(if batched {
            Durability::Batched(Duration::from_millis(50))
        } else {
            Durability::Immediate
        })
        .open_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(1))
        .open()
        .unwrap();
    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    say(format!(
        "ready {}",
        if batched { "batched" } else { "immediate" }
    ));
    let done = |r: &tiered::Result<()>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            // The owner does not answer: calls fail at once until it does; don't spin.
            std::thread::sleep(Duration::from_millis(20));
            format!("err:{}", error_kind(e))
        }
    };
    for seq in 0u64.. {
        if seq % 16 == 0 && control.join("stop").exists() {
            let t0 = now_ms();
            say(format!("B {seq} F - {t0}"));
            let r = cache.flush();
            say(format!("A {seq} {} {}", now_ms(), done(&r)));
            say("exiting".into());
            break;
        }
        let roll = rng.random_range(0..100u32);
        let len = if rng.random_bool(0.3) { LARGE } else { SMALL };
        let t0 = now_ms();
        match roll {
            0..=29 => {
                let key = format!("o{me}-{}", rng.random_range(0..OWN_KEYS));
                say(format!("B {seq} I {key} {t0}"));
                let r = cache.insert(&key, value(&key, me, seq, len));
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
            30..=37 => {
                let key = format!("o{me}-{}", rng.random_range(0..OWN_KEYS));
                say(format!("B {seq} R {key} {t0}"));
                let r = cache.remove(&key).map(|_| ());
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
            38..=57 => {
                let key = format!("o{me}-{}", rng.random_range(0..OWN_KEYS));
                let r = cache.get::<_, Vec<u8>>(&key);
                say(format!("G {seq} {key} {t0} {} {}", now_ms(), describe(&r)));
            }
            58..=62 => {
                say(format!("B {seq} F - {t0}"));
                let r = cache.flush();
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
            63..=72 => {
                let n = rng.random_range(0..SHARED_KEYS);
                let key = format!("s{n}");
                let tag = format!("t{}", n % TAGS);
                say(format!("B {seq} I {key} {t0}"));
                let r =
                    cache.insert_with(&key, value(&key, me, seq, len), &Options::new().tags([tag]));
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
            73..=74 => {
                let key = format!("s{}", rng.random_range(0..SHARED_KEYS));
                say(format!("B {seq} R {key} {t0}"));
                let r = cache.remove(&key).map(|_| ());
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
            75..=84 => {
                let key = format!("s{}", rng.random_range(0..SHARED_KEYS));
                let r = cache.get::<_, Vec<u8>>(&key);
                say(format!("G {seq} {key} {t0} {} {}", now_ms(), describe(&r)));
            }
            85..=96 => {
                let n = rng.random_range(0..SHARED_KEYS);
                let key = format!("g{n}");
                let tag = format!("t{}", n % TAGS);
                let r = cache.get_or_insert_with(&key, &Options::new().tags([tag]), || {
                    say(format!("B {seq} C {key} {}", now_ms()));
                    value(&key, me, seq, len)
                });
                let r = r.map(Some);
                say(format!("G {seq} {key} {t0} {} {}", now_ms(), describe(&r)));
            }
            _ => {
                let tag = format!("t{}", rng.random_range(0..TAGS));
                say(format!("B {seq} T {tag} {t0}"));
                let r = cache.invalidate_tag(&tag);
                say(format!("A {seq} {} {}", now_ms(), done(&r)));
            }
        }
    }
}

/// A call a child began: `op` is I (insert), R (remove), F (flush), C (computed), T
/// (invalidate); `result` is `None` until the child said how it ended.
#[derive(Clone, Debug)]
struct Call {
    op: char,
    key: String,
    began: u64,
    ended: Option<u64>,
    result: Option<String>,
}

/// A read a child made.
#[derive(Clone, Debug)]
struct Read {
    seq: u64,
    key: String,
    began: u64,
    ended: u64,
    got: String,
}

/// What one child incarnation said.
#[derive(Default, Debug)]
struct Said {
    batched: bool,
    calls: BTreeMap<u64, Call>,
    reads: Vec<Read>,
    exited: bool,
    other: Vec<String>,
}

fn parse(said: &mut Said, line: &str) {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.as_slice() {
        ["ready", mode] => said.batched = *mode == "batched",
        ["B", seq, "C", key, t] => {
            said.calls.insert(
                seq.parse().unwrap(),
                Call {
                    op: 'C',
                    key: key.to_string(),
                    began: t.parse().unwrap(),
                    ended: None,
                    result: Some("ok".into()),
                },
            );
        }
        ["B", seq, op, key, t] => {
            said.calls.insert(
                seq.parse().unwrap(),
                Call {
                    op: op.chars().next().unwrap(),
                    key: key.to_string(),
                    began: t.parse().unwrap(),
                    ended: None,
                    result: None,
                },
            );
        }
        ["A", seq, t, result] => {
            let call = said.calls.get_mut(&seq.parse().unwrap()).unwrap();
            call.ended = Some(t.parse().unwrap());
            call.result = Some(result.to_string());
        }
        ["G", seq, key, t0, t1, got] => said.reads.push(Read {
            seq: seq.parse().unwrap(),
            key: key.to_string(),
            began: t0.parse().unwrap(),
            ended: t1.parse().unwrap(),
            got: got.to_string(),
        }),
        ["exiting"] => said.exited = true,
        // The test harness's own lines ("ok" once the child returns).
        [first, ..] if !["A", "B", "G"].contains(first) => {}
        _ => said.other.push(line.to_string()),
    }
}

struct Worker {
    id: u64,
    child: Child,
    reading: std::thread::JoinHandle<()>,
}

fn start(dir: &Path, control: &Path, seed: u64, id: u64, said: &Arc<Mutex<Vec<Said>>>) -> Worker {
    said.lock().unwrap().push(Said::default());
    let mut child = common::spawn_child(
        "child_faulty_worker",
        dir,
        &[
            ("TIERED_CHILD", id.to_string()),
            ("TIERED_SEED", seed.to_string()),
            ("TIERED_CONTROL", control.display().to_string()),
        ],
    );
    let out = BufReader::new(child.stdout.take().unwrap());
    let said = said.clone();
    let reading = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            // The test harness prints `test NAME ... ` without a newline before our lines.
            let line = match line.find("... ") {
                Some(i) if line.starts_with("test ") => line[i + 4..].to_string(),
                _ => line,
            };
            if line.is_empty() || line.starts_with("running ") || line.starts_with("test result") {
                continue;
            }
            parse(&mut said.lock().unwrap()[id as usize], &line);
        }
    });
    Worker { id, child, reading }
}

fn owner_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join("owner"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the parent did, with times in ms since the epoch.
#[derive(Debug)]
enum Fault {
    Kill { at: u64 },
    Stop { from: u64, to: u64 },
}

fn parse_identity(got: &str) -> Option<(String, u64, u64)> {
    let p: Vec<&str> = got.split('|').collect();
    match p.as_slice() {
        [k, c, s, _] => Some((k.to_string(), c.parse().ok()?, s.parse().ok()?)),
        _ => None,
    }
}

/// For child `c`'s own key `key`: the seq of its last promised write (insert or remove) as of
/// its call number `before` (`u64::MAX`: the end), if any.
///
/// A flush that returned Ok promises the writes acknowledged before it began; one that
/// returned `WritesLost` promises nothing of them.
fn last_promised(said: &Said, key: &str, before: u64) -> Option<u64> {
    let mut last = None;
    let mut pending: Vec<u64> = Vec::new();
    for (&seq, call) in said.calls.range(..before) {
        if call.op == 'F' && call.result.as_deref() == Some("err:writes-lost") {
            pending.retain(|&p| p > seq);
            continue;
        }
        if call.result.as_deref() != Some("ok") {
            continue;
        }
        match call.op {
            'I' | 'R' if call.key == key => {
                if said.batched {
                    pending.push(seq);
                } else {
                    last = Some(seq);
                }
            }
            // A flush promises the writes acknowledged before it began.
            'F' if said.batched => {
                if let Some(&p) = pending.iter().filter(|&&p| p < seq).max() {
                    last = Some(last.map_or(p, |l: u64| l.max(p)));
                }
                pending.retain(|&p| p > seq);
            }
            _ => {}
        }
    }
    last
}

/// The seq of child's last acknowledged write to `key` before its call number `before`.
fn last_acked(said: &Said, key: &str, before: u64) -> Option<u64> {
    said.calls
        .range(..before)
        .filter(|(_, c)| {
            (c.op == 'I' || c.op == 'R') && c.key == key && c.result.as_deref() == Some("ok")
        })
        .map(|(&s, _)| s)
        .max()
}

fn check(saids: &[Said], faults: &[Fault], cache: &Cache) -> Vec<String> {
    let mut bad = Vec::new();
    let stopped = |t0: u64, t1: u64| {
        // A call may time out up to its request_timeout (1 s) after the stop, and fail at
        // once until the owner's first answer after SIGCONT (pings every 200 ms).
        faults.iter().any(|f| match f {
            Fault::Stop { from, to } => t0 <= to + 1_500 && t1 + 100 >= *from,
            Fault::Kill { .. } => false,
        })
    };
    let killed_between = |t0: u64, t1: u64| {
        faults.iter().any(|f| match f {
            Fault::Kill { at } => *at + 100 >= t0 && *at <= t1 + 100,
            Fault::Stop { .. } => false,
        })
    };
    // Which (key, child, seq) were written or computed by anyone.
    let mut made: HashSet<(String, u64, u64)> = HashSet::new();
    for (c, said) in saids.iter().enumerate() {
        for (&seq, call) in &said.calls {
            if call.op == 'I' || call.op == 'C' {
                made.insert((call.key.clone(), c as u64, seq));
            }
        }
        for line in &said.other {
            bad.push(format!("child {c} printed an unexpected line: {line}"));
        }
        for (&seq, call) in &said.calls {
            if let Some(r) = &call.result {
                if r.contains("unexpected") {
                    bad.push(format!("child {c} seq {seq} {call:?}: {r}"));
                }
            }
        }
    }
    let known = |got: &str, key: &str| -> Result<(), String> {
        if got == "none" || got.starts_with("err:not-answering") {
            return Ok(());
        }
        if got.starts_with("bad:") || got.starts_with("err:") {
            return Err(got.to_string());
        }
        let (k, c, s) = parse_identity(got).ok_or_else(|| format!("unparsable {got}"))?;
        if k != key {
            return Err(format!("a value of key {k} ({got})"));
        }
        if !made.contains(&(k, c, s)) {
            return Err(format!("a value nobody wrote ({got})"));
        }
        Ok(())
    };
    // Reads during the run.
    for (c, said) in saids.iter().enumerate() {
        let c = c as u64;
        for read in &said.reads {
            if let Err(why) = known(&read.got, &read.key) {
                bad.push(format!(
                    "child {c} read {} at seq {}: {why}",
                    read.key, read.seq
                ));
                continue;
            }
            if !read.key.starts_with(&format!("o{c}-")) {
                continue;
            }
            // Read-your-writes on the child's own key.
            let got_seq = parse_identity(&read.got).map(|(_, _, s)| s);
            let promised = last_promised(said, &read.key, read.seq);
            let acked = last_acked(said, &read.key, read.seq);
            let needs = |floor: Option<u64>| -> Result<(), String> {
                let Some(floor) = floor else { return Ok(()) };
                let floor_op = said.calls[&floor].op;
                match got_seq {
                    Some(s) if s >= floor => Ok(()),
                    Some(s) => Err(format!("an older value (seq {s} < {floor})")),
                    None if floor_op == 'R' => Ok(()),
                    // A later write that failed or was never answered may have removed it.
                    None if said
                        .calls
                        .range(floor + 1..read.seq)
                        .any(|(_, w)| w.op == 'R' && w.key == read.key) =>
                    {
                        Ok(())
                    }
                    None if stopped(read.began, read.ended) => Ok(()),
                    None => Err(format!("a miss after seq {floor} wrote it")),
                }
            };
            // The calls on this key since the value read, and the faults around, to say why.
            let story = || {
                let from = got_seq.unwrap_or(0).min(promised.unwrap_or(0));
                let calls: Vec<String> = said
                    .calls
                    .range(from..read.seq)
                    .filter(|(_, w)| w.key == read.key || w.op == 'F')
                    .map(|(s, w)| {
                        format!("#{s} {} {}..{:?} {:?}", w.op, w.began, w.ended, w.result)
                    })
                    .collect();
                let since = said.calls.get(&from).map_or(0, |w| w.began);
                let near: Vec<&Fault> = faults
                    .iter()
                    .filter(|f| match f {
                        Fault::Kill { at } => *at + 5_000 >= since && *at <= read.ended,
                        Fault::Stop { from, to } => *to + 5_000 >= since && *from <= read.ended,
                    })
                    .collect();
                format!(
                    "\n    {}; calls since: {}\n    faults: {near:?}",
                    if said.batched { "batched" } else { "immediate" },
                    calls.join(", ")
                )
            };
            if let Err(why) = needs(promised) {
                bad.push(format!(
                    "child {c} read its own {} at seq {} ({}..{} ms): {why}, promised{}",
                    read.key,
                    read.seq,
                    read.began,
                    read.ended,
                    story()
                ));
            } else if !killed_between(
                acked.map_or(0, |a| said.calls[&a].ended.unwrap()),
                read.ended,
            ) || !said.batched
            {
                if let Err(why) = needs(acked) {
                    bad.push(format!(
                        "child {c} read its own {} at seq {} ({}..{} ms): {why}, acknowledged{}",
                        read.key,
                        read.seq,
                        read.began,
                        read.ended,
                        story()
                    ));
                }
            }
        }
    }
    // The folder, reopened.
    for (c, said) in saids.iter().enumerate() {
        let c = c as u64;
        for n in 0..OWN_KEYS {
            let key = format!("o{c}-{n}");
            let got = describe(&cache.get::<_, Vec<u8>>(&key));
            if let Err(why) = known(&got, &key) {
                bad.push(format!("{key} after the run: {why}"));
                continue;
            }
            let promised = last_promised(said, &key, u64::MAX);
            let got_seq = parse_identity(&got).map(|(_, _, s)| s);
            let floor = promised.unwrap_or(0);
            let ok = match (got_seq, promised) {
                (_, None) => true,
                (Some(s), Some(p)) => {
                    s >= p && (s == p || said.calls.get(&s).is_some_and(|w| w.op == 'I'))
                }
                (None, Some(p)) => {
                    said.calls[&p].op == 'R'
                        || said
                            .calls
                            .range(p + 1..)
                            .any(|(_, w)| w.op == 'R' && w.key == key)
                }
            };
            if !ok {
                bad.push(format!(
                    "{key} after the run holds {got}; the last promised write was seq {floor} \
                     ({:?}); later calls on it: {:?}",
                    promised.map(|p| &said.calls[&p]),
                    said.calls
                        .range(floor + 1..)
                        .filter(|(_, w)| w.key == key)
                        .map(|(s, w)| (s, w.op, w.began, w.result.clone()))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    for n in 0..SHARED_KEYS {
        for key in [format!("s{n}"), format!("g{n}")] {
            let got = describe(&cache.get::<_, Vec<u8>>(&key));
            if let Err(why) = known(&got, &key) {
                bad.push(format!("{key} after the run: {why}"));
            }
        }
    }
    bad
}

/// Reliability 2, item 1: three processes under random owner kills and stops; see the
/// module's documentation for what is checked.
#[test]
fn acknowledged_operations_hold_while_owners_are_killed_and_stopped_at_random() {
    let seed: u64 = std::env::var("TIERED_FAULT_SEED").ok().map_or_else(
        || now_ms() ^ u64::from(std::process::id()),
        |s| s.parse().unwrap(),
    );
    let secs: u64 = std::env::var("TIERED_FAULT_SECS")
        .ok()
        .map_or(40, |s| s.parse().unwrap());
    println!("process_faults: seed {seed} (TIERED_FAULT_SEED), {secs} s (TIERED_FAULT_SECS)");
    let _watchdog = common::watchdog("the fault run", secs + 240);
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = common::tempdir();
    let control = common::tempdir();
    let said: Arc<Mutex<Vec<Said>>> = Arc::default();
    let mut workers: HashMap<u32, Worker> = HashMap::new();
    let mut next = 0u64;
    for _ in 0..3 {
        let w = start(dir.path(), control.path(), seed, next, &said);
        next += 1;
        workers.insert(w.child.id(), w);
    }
    let mut faults = Vec::new();
    let started = Instant::now();
    let (mut kills, mut stops) = (0, 0);
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(rng.random_range(500..3_000)));
        // A worker that exited by itself is a failure (a panic, an unexpected error).
        for w in workers.values_mut() {
            if let Some(status) = w.child.try_wait().unwrap() {
                panic!("child {} exited by itself ({status}); seed {seed}", w.id);
            }
        }
        let Some(pid) = owner_pid(dir.path()) else {
            continue;
        };
        let Some(w) = workers.get(&pid) else {
            continue;
        };
        let roll = rng.random_range(0..10);
        if roll < 5 {
            let pause = rng.random_range(500..3_000);
            let from = now_ms();
            common::signal(&w.child, libc::SIGSTOP);
            std::thread::sleep(Duration::from_millis(pause));
            if roll == 0 {
                // Killed while stopped.
                faults.push(Fault::Stop { from, to: now_ms() });
            } else {
                common::signal(&w.child, libc::SIGCONT);
                faults.push(Fault::Stop { from, to: now_ms() });
                stops += 1;
                continue;
            }
        }
        let mut w = workers.remove(&pid).unwrap();
        faults.push(Fault::Kill { at: now_ms() });
        common::signal(&w.child, libc::SIGKILL);
        w.child.wait().unwrap();
        w.reading.join().unwrap();
        kills += 1;
        let w = start(dir.path(), control.path(), seed, next, &said);
        next += 1;
        workers.insert(w.child.id(), w);
    }
    std::fs::write(control.path().join("stop"), b"").unwrap();
    let mut hung = Vec::new();
    for (_, w) in workers {
        let mut child = w.child;
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        w.reading.join().unwrap();
        match status {
            Some(s) if s.success() => {}
            other => hung.push(format!("child {} ended with {other:?}", w.id)),
        }
    }
    let saids = std::mem::take(&mut *said.lock().unwrap());
    let cache = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .open()
        .unwrap();
    let mut bad = check(&saids, &faults, &cache);
    bad.extend(hung);
    let writes: usize = saids
        .iter()
        .map(|s| {
            s.calls
                .values()
                .filter(|c| c.op == 'I' || c.op == 'R')
                .filter(|c| c.result.as_deref() == Some("ok"))
                .count()
        })
        .sum();
    let failed: usize = saids
        .iter()
        .map(|s| {
            s.calls
                .values()
                .filter(|c| c.result.as_deref().is_some_and(|r| r != "ok"))
                .count()
        })
        .sum();
    let reads: usize = saids.iter().map(|s| s.reads.len()).sum();
    println!(
        "process_faults: seed {seed}: {kills} kills, {stops} stops, {} processes; \
         {writes} acknowledged writes, {failed} calls failed (owner not answering), {reads} reads; \
         {} problems",
        saids.len(),
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "seed {seed}: {} problems:\n{}",
        bad.len(),
        bad.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}
