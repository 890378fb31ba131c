//! How results are shown: a table (or a sentence) for people, JSON for scripts. The JSON
//! field names are a contract with scripts: README.md lists them; add fields, never rename.

use std::time::{SystemTime, UNIX_EPOCH};

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde_json::{json, Value};
use tiered::{EntryInfo, Explanation, ProcessStats, Stats};

pub(crate) struct Output {
    pub json: bool,
}

impl Output {
    fn print(&self, json: Value, human: impl FnOnce() -> String) {
        if self.json {
            say(&json.to_string());
        } else {
            say(&human());
        }
    }
}

/// Set once standard output's reader went away: the rest of the output is dropped.
static GONE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether standard output's reader went away (`tiered stats --watch | head`): a command that
/// would go on printing stops.
pub(crate) fn reader_gone() -> bool {
    GONE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints `text` and a newline on stdout. If the reader went away (`tiered ls | head`), the
/// rest of the output is dropped quietly, as `ls` drops it, and the command still ends with
/// its own exit code; `println!` would panic. Another write error is said on stderr, once.
pub(crate) fn say(text: &str) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("tiered: cannot write to standard output: {e}");
        }
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// `files`: the cache has files of its own (a folder, not Redis), whose size is shown.
/// `processes`: the figures of the other processes that have the folder open (the app).
/// `watching`: redrawn in place on a terminal, with the time.
pub(crate) fn stats(
    out: &Output,
    s: &Stats,
    entries: &[EntryInfo],
    files: bool,
    processes: &[ProcessStats],
    watching: bool,
) {
    let expired = entries.iter().filter(|e| e.expired).count() as u64;
    let live = entries.len() as u64 - expired;
    let file_bytes = files.then_some(s.disk_file_bytes);
    let mut total = Stats::default();
    for p in processes {
        total += p.stats;
    }
    let json = json!({
        "entries": s.entries,
        "live_entries": live,
        "expired_entries": expired,
        "memory_bytes": s.memory_bytes,
        "disk_bytes": s.disk_bytes,
        "disk_file_bytes": file_bytes,
        "memory_hits": s.memory_hits,
        "disk_hits": s.disk_hits,
        "misses": s.misses,
        "inserts": s.inserts,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "invalidations": s.invalidations,
        "type_mismatches": s.type_mismatches,
        "damaged_records": s.damaged_records,
        "disk_failures": s.disk_failures,
        "warm_loaded": s.warm_loaded,
        "too_large_for_memory": s.too_large_for_memory,
        "processes": processes.iter().map(|p| {
            let mut one = counters(&p.stats);
            one["pid"] = json!(p.pid);
            one["holds_folder"] = json!(p.holds_folder);
            one
        }).collect::<Vec<_>>(),
        "totals": counters(&total),
    });
    out.print(json, || {
        let mut t = table(&["", "value"]);
        let rows: [(&str, Option<String>); 6] = [
            ("records", Some(s.entries.to_string())),
            ("live entries", Some(live.to_string())),
            ("expired, not yet reclaimed", Some(expired.to_string())),
            ("bytes in records", Some(bytes(s.disk_bytes))),
            ("bytes of files", file_bytes.map(bytes)),
            ("damaged records found", Some(s.damaged_records.to_string())),
        ];
        for (name, value) in rows.into_iter().filter_map(|(n, v)| Some((n, v?))) {
            t.add_row(vec![
                Cell::new(name),
                Cell::new(value).set_alignment(CellAlignment::Right),
            ]);
        }
        let mut text = String::new();
        if watching {
            // Home and clear: the next refresh draws over this one.
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                text.push_str("\x1b[H\x1b[2J");
            }
            text.push_str(&format!("{} (Ctrl-C to stop)\n", clock_now()));
        }
        text.push_str(&t.to_string());
        text.push('\n');
        text.push_str(&process_table(processes, &total));
        text
    });
}

/// The counters a process table and the JSON show, by their stable names.
fn counters(s: &Stats) -> Value {
    json!({
        "memory_hits": s.memory_hits,
        "disk_hits": s.disk_hits,
        "misses": s.misses,
        "hit_ratio": s.hit_ratio(),
        "inserts": s.inserts,
        "evictions": s.evictions,
        "expirations": s.expirations,
        "invalidations": s.invalidations,
        "refreshes": s.refreshes,
        "refresh_failures": s.refresh_failures,
        "memory_bytes": s.memory_bytes,
    })
}

/// One row per process that has the folder open, and their total.
fn process_table(processes: &[ProcessStats], total: &Stats) -> String {
    if processes.is_empty() {
        return "No other process has this cache open (per-process figures are for a folder: \
                each process that has it open reports its counters)."
            .into();
    }
    let mut t = table(&[
        "process",
        "memory hits",
        "disk hits",
        "misses",
        "hit ratio",
        "inserts",
        "evictions",
        "memory",
    ]);
    let ratio = |s: &Stats| {
        s.hit_ratio()
            .map_or("-".into(), |r| format!("{:.1}%", r * 100.0))
    };
    let row = |name: String, s: &Stats| {
        let right = |v: String| Cell::new(v).set_alignment(CellAlignment::Right);
        vec![
            Cell::new(name),
            right(s.memory_hits.to_string()),
            right(s.disk_hits.to_string()),
            right(s.misses.to_string()),
            right(ratio(s)),
            right(s.inserts.to_string()),
            right(s.evictions.to_string()),
            right(bytes(s.memory_bytes)),
        ]
    };
    for p in processes {
        let role = if p.holds_folder {
            " (holds the folder)"
        } else {
            ""
        };
        t.add_row(row(format!("{}{role}", p.pid), &p.stats));
    }
    if processes.len() > 1 {
        t.add_row(row("total".into(), total));
    }
    t.to_string()
}

/// The time of day, UTC, for a refreshed screen.
fn clock_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        day / 3600,
        (day % 3600) / 60,
        day % 60
    )
}

pub(crate) fn entries(out: &Output, entries: &[EntryInfo], total: usize) {
    let json = json!({
        "total": total,
        "entries": entries.iter().map(|e| json!({
            "namespace": e.namespace,
            "key": e.key,
            "call": e.call,
            "tags": e.tags,
            "bytes": e.bytes,
            "type": e.type_name,
            "created_ms": ms(e.created),
            "expires_ms": e.expires.map(ms),
            "expired": e.expired,
        })).collect::<Vec<_>>(),
    });
    out.print(json, || {
        let mut t = table(&["namespace", "key", "tags", "size", "expires"]);
        let now = SystemTime::now();
        for e in entries {
            t.add_row(vec![
                Cell::new(e.namespace.as_deref().unwrap_or("")),
                // A memoized function's entry shows the call it holds.
                Cell::new(e.call.as_ref().unwrap_or(&e.key)),
                Cell::new(e.tags.join(", ")),
                Cell::new(bytes(e.bytes)).set_alignment(CellAlignment::Right),
                Cell::new(expires(e, now)),
            ]);
        }
        let mut s = t.to_string();
        if total > entries.len() {
            s.push_str(&format!(
                "\n{} of {total} entries shown (raise --limit)",
                entries.len()
            ));
        } else if total == 0 {
            s = "no entries".to_string();
        }
        s
    });
}

pub(crate) fn explanation(
    out: &Output,
    key: &str,
    namespace: Option<&str>,
    why: &Explanation,
    live: bool,
) {
    let kind = match why {
        Explanation::Hit | Explanation::OtherType { .. } => "live",
        Explanation::NeverWritten => "never_written",
        Explanation::Expired { .. } => "expired",
        Explanation::Invalidated { .. } => "invalidated",
        Explanation::Evicted => "evicted",
        Explanation::Removed => "removed",
        Explanation::OutdatedShape => "outdated_shape",
        Explanation::Damaged => "damaged",
        Explanation::WrittenByAnotherVersion => "another_version",
        Explanation::DiskOutOfService { .. } => "disk_out_of_service",
        _ => "other",
    };
    let text = match why {
        Explanation::OtherType { .. } => "a live value: a read of its type hits".to_string(),
        other => other.to_string(),
    };
    let json = json!({
        "namespace": namespace,
        "key": key,
        "live": live,
        "kind": kind,
        "explanation": text,
    });
    out.print(json, || format!("{key:?}: {text}"));
}

pub(crate) fn cleared(out: &Output, selector: &str, name: Option<&str>, entries: u64) {
    let json = json!({ "selector": selector, "name": name, "entries": entries });
    out.print(json, || match (selector, name) {
        ("expired", _) => format!("{entries} expired entries deleted"),
        ("all", _) => format!("{entries} entries cleared"),
        (what, Some(name)) => format!("{what} {name:?} cleared ({entries} entries)"),
        (what, None) => format!("{what} cleared ({entries} entries)"),
    });
}

pub(crate) fn purged(out: &Output, before: u64, after: u64) {
    let json = json!({ "file_bytes_before": before, "file_bytes_after": after });
    out.print(json, || {
        format!(
            "files: {} before, {} after ({} reclaimed)",
            bytes(before),
            bytes(after),
            bytes(before.saturating_sub(after))
        )
    });
}

/// `{"exported": n}` or `{"imported": n}`; on stderr when stdout carries the stream.
pub(crate) fn transferred(out: &Output, what: &str, count: u64, to_stderr: bool) {
    let line = if out.json {
        json!({ what: count }).to_string()
    } else {
        format!("{count} entries {what}")
    };
    if to_stderr {
        eprintln!("{line}");
    } else {
        say(&line);
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn expires(e: &EntryInfo, now: SystemTime) -> String {
    match e.expires {
        None => "never".to_string(),
        Some(at) => match at.duration_since(now) {
            Ok(left) => format!("in {}", span(left.as_secs())),
            Err(past) => format!("expired {} ago", span(past.duration().as_secs())),
        },
    }
}

fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
