//! Code-aware invalidation for real: a small program with a memoized function is edited,
//! rebuilt with cargo and run again, over one cache folder (the default global cache, via
//! `TIERED_DIR`). Comments and formatting keep its entries; an edit of the body makes new ones
//! and reclaims the old, so ten edits leave one version's entries on disk.
//!
//! A program whose function's body asks `cfg!(feature = "alt")` is built with and without the
//! feature over one cache folder: each build gets its own result.
//!
//! The programs are built into one target folder under this workspace's (`memoize-rebuild` in
//! `CARGO_TARGET_TMPDIR`), so that later runs reuse their compiled dependencies; the first run
//! compiles them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use redb::{ReadableDatabase, ReadableTableMetadata};
use tiered::Cache;

const NAME: &str = "memoize-rebuild-probe";
const FEATURE_NAME: &str = "memoize-feature-probe";

/// Arguments the program calls its function with; each entry holds 100 kB.
const ARGS: [u64; 3] = [0, 1, 2];

/// The program, with `{BODY}` the value's expression and `{EXTRA}` lines before it.
const PROGRAM: &str = r#"
use std::sync::atomic::{AtomicBool, Ordering};

static RAN: AtomicBool = AtomicBool::new(false);

/// Pages of a report.
#[tiered::memoize]
fn pages(x: u64) -> Vec<u8> {
    RAN.store(true, Ordering::SeqCst);
    {EXTRA}
    let page = {BODY};
    vec![page; 100_000]
}

fn main() {
    let mut total = 0u64;
    for x in [0, 1, 2] {
        total += pages(x).iter().map(|b| *b as u64).sum::<u64>();
    }
    println!(
        "ran={} total={} version={} path={}",
        RAN.load(Ordering::SeqCst),
        total,
        pages::VERSION,
        pages::memo().path()
    );
}
"#;

/// The program of the feature test: `scaled(3)` is 3, or 3000 with the feature `alt`.
const FEATURE_PROGRAM: &str = r#"
use std::sync::atomic::{AtomicBool, Ordering};

static RAN: AtomicBool = AtomicBool::new(false);

#[tiered::memoize]
fn scaled(x: u64) -> u64 {
    RAN.store(true, Ordering::SeqCst);
    if cfg!(feature = "alt") { x * 1000 } else { x }
}

fn main() {
    let total = scaled(3);
    println!(
        "ran={} total={} version={} path={}",
        RAN.load(Ordering::SeqCst),
        total,
        scaled::VERSION,
        scaled::memo().path()
    );
}
"#;

struct Probe {
    name: &'static str,
    source_dir: tempfile::TempDir,
    cache_dir: tempfile::TempDir,
    target_dir: PathBuf,
}

/// What one run of the program printed.
#[derive(Debug)]
struct Run {
    ran: bool,
    total: u64,
    version: u64,
    path: String,
}

impl Probe {
    /// A program named `name`, with `extra` at the end of its manifest.
    fn new(name: &'static str, extra: &str) -> Probe {
        let source_dir = tempfile::tempdir().unwrap();
        let manifest = format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
             publish = false\n\n[dependencies]\ntiered = {{ path = {:?} }}\n\n\
             [profile.dev]\ndebug = false\n\n[workspace]\n{extra}",
            env!("CARGO_MANIFEST_DIR")
        );
        fs::write(source_dir.path().join("Cargo.toml"), manifest).unwrap();
        // The workspace's lock file: `--offline` then finds every dependency already resolved.
        fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"),
            source_dir.path().join("Cargo.lock"),
        )
        .unwrap();
        fs::create_dir(source_dir.path().join("src")).unwrap();
        Probe {
            name,
            source_dir,
            cache_dir: tempfile::tempdir().unwrap(),
            target_dir: Path::new(env!("CARGO_TARGET_TMPDIR")).join("memoize-rebuild"),
        }
    }

    /// Writes the program with this body and extra line, builds it (checking that cargo did
    /// compile it again) and runs it.
    fn run(&self, body: &str, extra: &str) -> Run {
        let source = PROGRAM.replace("{BODY}", body).replace("{EXTRA}", extra);
        fs::write(self.source_dir.path().join("src/main.rs"), source).unwrap();
        let stderr = self.build(&[]);
        assert!(
            stderr.contains(&format!("Compiling {}", self.name)),
            "cargo did not compile the probe again:\n{stderr}"
        );
        self.start()
    }

    /// Builds the program (already written) with these features; returns cargo's stderr.
    fn build(&self, features: &[&str]) -> String {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let build = Command::new(cargo)
            .args(["build", "--offline", "--message-format=short"])
            .arg("--features")
            .arg(features.join(","))
            .arg("--manifest-path")
            .arg(self.source_dir.path().join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&build.stderr).into_owned();
        assert!(build.status.success(), "the probe did not build:\n{stderr}");
        stderr
    }

    /// Runs the program last built, on the cache folder.
    fn start(&self) -> Run {
        let exe = self.target_dir.join("debug").join(self.name);
        let out = Command::new(&exe)
            .env("TIERED_DIR", self.cache_dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse(&stdout)
    }

    /// What the program left in the cache folder when it exited: the records in the
    /// database (read with redb itself, before this process opens the folder and its own
    /// sweep could change anything) and the folder's bytes; then the cache, opened.
    fn settle(&self) -> (Cache, u64, u64) {
        let dir = self.cache_dir.path();
        let records = {
            let db = redb::Database::open(dir.join("tiered.redb")).unwrap();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(RECORDS).unwrap();
            table.len().unwrap()
        };
        let bytes = common::folder_bytes(dir);
        (Cache::open(dir).unwrap(), records, bytes)
    }
}

/// The records table (see `docs/format.md`).
const RECORDS: redb::TableDefinition<u128, &[u8]> = redb::TableDefinition::new("records");

fn parse(stdout: &str) -> Run {
    let field = |name: &str| {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {stdout:?}"))
            .to_string()
    };
    Run {
        ran: field("ran") == "true",
        total: field("total").parse().unwrap(),
        version: field("version").parse().unwrap(),
        path: field("path"),
    }
}

/// What the program prints as its total when its body is `body(k)`.
fn total(k: u64) -> u64 {
    ARGS.iter().map(|x| ((x + k) % 256) * 100_000).sum()
}

fn body(k: u64) -> String {
    format!("(x as u8).wrapping_add({k})")
}

#[test]
fn edits_invalidate_comments_do_not_and_old_versions_are_reclaimed() {
    let probe = Probe::new(NAME, "");

    let first = probe.run(&body(1), "");
    assert!(first.ran, "first run computes");
    assert_eq!(first.total, total(1));

    let unchanged = probe.run(&body(1), "");
    assert!(!unchanged.ran, "rebuilt unchanged: hits");
    assert_eq!(
        (unchanged.total, unchanged.version),
        (total(1), first.version)
    );

    let commented = probe.run(
        "  ( x   as u8 )\n        .wrapping_add( 1 )",
        "// a comment\n    /* another */\n    /// a doc comment on the next statement",
    );
    assert!(
        !commented.ran,
        "comments, a doc comment and spacing only: hits"
    );
    assert_eq!(commented.version, first.version);

    let edited = probe.run(&body(2), "");
    assert!(edited.ran, "an edited body recomputes");
    assert_eq!(edited.total, total(2));
    assert_ne!(edited.version, first.version);

    // Ten edits, each a new version: the folder holds one version's entries each time.
    let (cache, one_version_entries, one_version_bytes) = probe.settle();
    drop(cache);
    // The last version's entries, and the records where the cache notes the function's
    // version, the version it replaced and how its keys are made (for `explain`).
    assert_eq!(one_version_entries, ARGS.len() as u64 + 3);
    let mut versions = vec![first.version, edited.version];
    for k in 3..13 {
        let run = probe.run(&body(k), "");
        assert!(run.ran && run.total == total(k), "cycle {k}: {run:?}");
        assert!(!versions.contains(&run.version), "cycle {k}: a new version");
        let (cache, entries, bytes) = probe.settle();
        assert_eq!(entries, one_version_entries, "cycle {k}: records left");
        assert!(
            bytes <= one_version_bytes + one_version_bytes / 4,
            "cycle {k}: the folder grew from {one_version_bytes} to {bytes} bytes"
        );
        // Of every version that ran, only the last has entries. The key is written as
        // `Memoized::key` writes it, (version, (Hidden((build,)), arguments…)), which the
        // last version proves; the build of a dev profile says `debug_assertions` and not
        // `test`.
        let functions_entries = cache.namespace(&run.path);
        let build: &[bool] = &[true, false];
        let hidden = || tiered::__memoize::Hidden((build,));
        for x in ARGS {
            assert!(functions_entries
                .contains_key(&(run.version, (hidden(), x)))
                .unwrap());
            for &old in &versions {
                assert!(
                    !functions_entries
                        .contains_key(&(old, (hidden(), x)))
                        .unwrap(),
                    "cycle {k}"
                );
            }
        }
        versions.push(run.version);
    }
    assert_eq!(versions.len(), 12);
}

#[test]
fn a_build_with_another_feature_gets_its_own_result() {
    let probe = Probe::new(FEATURE_NAME, "\n[features]\nalt = []\n");
    fs::write(probe.source_dir.path().join("src/main.rs"), FEATURE_PROGRAM).unwrap();
    let run = |features: &[&str]| {
        probe.build(features);
        probe.start()
    };
    let plain = run(&[]);
    assert!(plain.ran && plain.total == 3, "{plain:?}");
    let alt = run(&["alt"]);
    assert_eq!(alt.version, plain.version, "the same code: one version");
    assert!(
        alt.ran && alt.total == 3000,
        "not the other build's result: {alt:?}"
    );
    // Neither build reclaimed the other's entry.
    let plain = run(&[]);
    assert!(!plain.ran && plain.total == 3, "{plain:?}");
    let alt = run(&["alt"]);
    assert!(!alt.ran && alt.total == 3000, "{alt:?}");
}
