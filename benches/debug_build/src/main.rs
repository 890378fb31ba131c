//! tiered on large values in a debug build of the user's crate, against a release build.
//!
//! Each case inserts one large value, flushes it, drops the cache, reopens the folder (warm
//! restart off, so the value is not in memory) and reads the value back from disk. See
//! README.md for what it measures and how to run it.
//!
//! ```text
//! tiered-debug-build-bench                        every case once, in this build
//! tiered-debug-build-bench case NAME              one case: insert, read, their CPU (s)
//! tiered-debug-build-bench peak insert|read DIR BYTES   one phase of a Vec<u8> of BYTES:
//!                                                 VmHWM before and after, RssAnon, RssFile
//! tiered-debug-build-bench compare DEBUG RELEASE [ROUNDS]   both builds side by side
//! ```

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tiered::Cache;

/// The size of each case's value: 100 MB.
const SIZE: usize = 100_000_000;
/// The value of the peak-memory measure: 1 GiB.
const PEAK_SIZE: usize = 1 << 30;
/// The goal: a debug build at most this many times slower than a release build.
const GOAL: f64 = 3.0;

/// The struct case: a name and 100 MB of floats.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
struct Doc {
    name: String,
    data: Vec<f64>,
}

/// A newtype around a bulk vector: read through `deserialize_newtype_struct`, not a field.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
struct Wrapped(Vec<f64>);

/// A row of the user's own: a `Vec` of these is encoded element by element in the user's
/// crate, whatever tiered does (beyond the issue's cases: it shows what stays slow).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
struct Row {
    id: u64,
    value: f64,
}

const CASES: [&str; 5] = ["vec_u8", "vec_f64", "struct", "newtype", "vec_rows"];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        [] => {
            let build = if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            };
            println!("{build} build, 100 MB values (seconds)");
            println!("{:<10} {:>8} {:>8}", "case", "insert", "read");
            for case in CASES {
                let [insert, read, ..] = run_case(case);
                println!("{case:<10} {:>8.3} {:>8.3}", secs(insert), secs(read));
            }
        }
        ["case", name] => {
            let times = run_case(name).map(secs);
            println!("{} {} {} {}", times[0], times[1], times[2], times[3]);
        }
        ["peak", phase, dir, bytes] => {
            let bytes: usize = bytes.parse().expect("BYTES");
            peak(phase, Path::new(dir), bytes);
        }
        ["compare", debug, release] => compare(debug, release, 3),
        ["compare", debug, release, rounds] => compare(debug, release, rounds.parse().unwrap()),
        _ => {
            eprintln!("usage: see the top of src/main.rs or README.md");
            std::process::exit(2);
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Pseudo-random words (xorshift), so that nothing on the way can compress them.
fn words(n: usize) -> impl Iterator<Item = u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

fn bytes_value(len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = words(len.div_ceil(8)).flat_map(u64::to_le_bytes).collect();
    v.truncate(len);
    v
}

fn floats_value(len: usize) -> Vec<f64> {
    // Finite floats in [0, 1): every value compares equal to itself.
    words(len / 8)
        .map(|w| (w >> 11) as f64 / (1u64 << 53) as f64)
        .collect()
}

/// Inserts `value` (with a flush: it is on disk when this returns), reopens the cache and
/// reads it back; returns both times.
fn insert_and_read<V>(value: V) -> [Duration; 4]
where
    V: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static,
{
    let dir = tempfile::tempdir().expect("temporary folder");
    let cache = open(dir.path());
    // Kept for the check afterwards; the value itself is moved into the cache, as a user's
    // insert would.
    let expected = value.clone();
    let (start, cpu) = (Instant::now(), cpu_time());
    cache.insert("value", value).expect("insert");
    cache.flush().expect("flush");
    let (insert, insert_cpu) = (start.elapsed(), cpu_time() - cpu);
    drop(cache);

    let cache = open(dir.path());
    let (start, cpu) = (Instant::now(), cpu_time());
    let back = cache.get::<_, V>("value").expect("get");
    let (read, read_cpu) = (start.elapsed(), cpu_time() - cpu);
    assert!(back.as_deref() == Some(&expected), "the value reads back");
    [insert, read, insert_cpu, read_cpu]
}

/// CPU time of this process so far, every thread's (user and system, `/proc/self/stat`; in
/// clock ticks of 10 ms): what the work cost, apart from the time spent waiting for the disk.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat[stat.rfind(')').expect("(comm)") + 2..]
        .split(' ')
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The cache as the cases open it: warm restart off, so that a read after a reopen comes from
/// disk, and a memory tier large enough for the value.
fn open(dir: &Path) -> Cache {
    Cache::builder()
        .path(dir)
        .warm_restart(0)
        .memory_capacity(4 << 30)
        .open()
        .expect("open the cache")
}

fn run_case(name: &str) -> [Duration; 4] {
    match name {
        "vec_u8" => insert_and_read(bytes_value(SIZE)),
        "vec_f64" => insert_and_read(floats_value(SIZE)),
        "struct" => insert_and_read(Doc {
            name: "a struct of 100 MB".to_string(),
            data: floats_value(SIZE),
        }),
        "newtype" => insert_and_read(Wrapped(floats_value(SIZE))),
        "vec_rows" => insert_and_read(
            floats_value(SIZE / 2)
                .into_iter()
                .enumerate()
                .map(|(i, value)| Row {
                    id: i as u64,
                    value,
                })
                .collect::<Vec<Row>>(),
        ),
        _ => panic!("no case {name}: one of {CASES:?}"),
    }
}

/// A figure of `/proc/self/status`, in bytes: `VmHWM` (the peak resident memory so far),
/// `RssAnon` (resident memory of the heap now), `RssFile` (resident pages of mapped files now).
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{field}"))
        * 1024
}

/// One phase of the peak-memory measure, in a process of its own (a peak cannot be reset):
/// `insert` makes a `Vec<u8>` of `bytes` in `dir`'s cache; `read` reopens it and reads it
/// back. Prints the process's peak resident memory before and after, and what is resident at
/// the end of the phase (heap, mapped files), before anything is dropped.
fn peak(phase: &str, dir: &Path, bytes: usize) {
    let cache = open(dir);
    let before = status("VmHWM");
    let (anon, file) = match phase {
        "insert" => {
            let value = bytes_value(bytes);
            cache.insert("value", value).expect("insert");
            cache.flush().expect("flush");
            (status("RssAnon"), status("RssFile"))
        }
        "read" => {
            let back = cache.get::<_, Vec<u8>>("value").expect("get");
            let now = (status("RssAnon"), status("RssFile"));
            assert_eq!(back.expect("the value reads back").len(), bytes);
            now
        }
        _ => panic!("phase: insert or read"),
    };
    drop(cache);
    println!("{before} {} {anon} {file}", status("VmHWM"));
}

/// Runs every case in each build, alternately and each in a process of its own, `rounds`
/// times; prints each round and the median of the rounds. Then the peak memory of a 1 GiB
/// value (release build).
fn compare(debug: &str, release: &str, rounds: usize) {
    // times[case][build] = [insert, read, insert CPU, read CPU] per round
    let mut times = vec![[Vec::new(), Vec::new()]; CASES.len()];
    for round in 1..=rounds {
        for (c, case) in CASES.iter().enumerate() {
            for (b, bin) in [debug, release].iter().enumerate() {
                times[c][b].push(child_case(bin, case));
            }
        }
        println!("round {round} of {rounds}");
        table(&times, |v| (v[round - 1][0], v[round - 1][1]));
    }
    let med = |v: &[[f64; 4]], i: usize| median(&mut v.iter().map(|t| t[i]).collect::<Vec<_>>());
    println!("median of {rounds} rounds");
    table(&times, |v| (med(v, 0), med(v, 1)));
    println!("median CPU time of the same (every thread, 10 ms ticks: no waiting for the disk)");
    table(&times, |v| (med(v, 2), med(v, 3)));

    let dir = tempfile::tempdir().expect("temporary folder");
    let dir_s = dir.path().to_str().expect("utf-8 path");
    let size = PEAK_SIZE.to_string();
    let gib = PEAK_SIZE as f64;
    println!("peak resident memory (VmHWM), a 1 GiB Vec<u8>, release build");
    for phase in ["insert", "read"] {
        let out = run(release, &["peak", phase, dir_s, &size]);
        let v: Vec<f64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
        let mib = |b: f64| b / (1 << 20) as f64;
        println!(
            "  {phase:<6} peak {:>6.0} MiB = {:.2} x the value (process before: {:.0} MiB; \
             at the end: heap {:.0} MiB, mapped files {:.0} MiB)",
            mib(v[1]),
            v[1] / gib,
            mib(v[0]),
            mib(v[2]),
            mib(v[3]),
        );
    }
}

/// One case in a process of its own: insert and read times, then their CPU times.
fn child_case(bin: &str, case: &str) -> [f64; 4] {
    let out = run(bin, &["case", case]);
    let v: Vec<f64> = out.split_whitespace().map(|s| s.parse().unwrap()).collect();
    [v[0], v[1], v[2], v[3]]
}

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "{bin} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One table: per case, debug and release times and their ratio, for insert and read.
fn table(times: &[[Vec<[f64; 4]>; 2]], pick: impl Fn(&[[f64; 4]]) -> (f64, f64)) {
    println!("  {:<8} {:^26}   {:^26}", "", "insert", "read");
    println!(
        "  {:<8} {:>9} {:>9} {:>6}   {:>9} {:>9} {:>6}",
        "case", "debug", "release", "ratio", "debug", "release", "ratio"
    );
    for (c, case) in CASES.iter().enumerate() {
        let (di, dr) = pick(&times[c][0]);
        let (ri, rr) = pick(&times[c][1]);
        let mark = |r: f64| if r <= GOAL { "" } else { " >3x" };
        println!(
            "  {case:<8} {di:>9.3}s {ri:>8.3}s {:>5.1}x{}   {dr:>8.3}s {rr:>8.3}s {:>5.1}x{}",
            di / ri,
            mark(di / ri),
            dr / rr,
            mark(dr / rr)
        );
    }
}
