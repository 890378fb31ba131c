//! `tiered`: inspect and maintain `tiered` cache folders from the command line.
//!
//! Uses only the public API of the `tiered` crate. The commands are in `commands.rs`, how
//! results are shown (tables for people, JSON for scripts) in `show.rs`, progress bars in
//! `progress.rs`.

mod commands;
mod progress;
mod show;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit codes: the contract with scripts (also in `--help` and README.md).
pub(crate) mod exit {
    /// The command did what it was asked.
    pub const OK: u8 = 0;
    /// It failed; the message is on stderr (and with `--json`, `{"error": ...}` on stdout).
    pub const ERROR: u8 = 1;
    /// The command line was wrong (clap's own code).
    pub const USAGE: u8 = 2;
    /// DIR holds no cache (and the command does not create one).
    pub const NO_CACHE: u8 = 3;
    /// `explain`: the key holds no live value.
    pub const NOT_LIVE: u8 = 4;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  error (message on stderr; with --json also {\"error\": \"...\"} on stdout)
  2  usage error
  3  no cache at DIR (only `import` creates a cache folder)
  4  explain: the key holds no live value

A folder an app has open is used through that app's process: the command sees the app's
entries and its changes reach the app at its next read. If that process cannot be reached,
the command waits --wait seconds for it to let go, then fails (exit 1) naming it.";

/// Inspect and maintain tiered cache folders.
#[derive(Parser, Debug)]
#[command(name = "tiered", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print JSON for scripts instead of tables (field names are stable; see README.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for a process that holds the folder and cannot be reached to let go.
    #[arg(long, global = true, default_value_t = 2, value_name = "SECS")]
    pub wait: u64,
    /// `stats`, `ls`, `clear`, `explain`, `export` and `import` on the cache shared through
    /// this Redis server instead of a folder (`redis://[user:password@]host:port[/db]`; default: $TIERED_REDIS_URL when no
    /// folder is given). The password is never shown or written anywhere.
    #[cfg(feature = "redis")]
    #[arg(long, global = true, value_name = "URL")]
    pub redis: Option<String>,
    /// The key prefix the app gave its cache (`CacheBuilder::redis_prefix`; default `tiered:`).
    #[cfg(feature = "redis")]
    #[arg(long, global = true, value_name = "PREFIX")]
    pub redis_prefix: Option<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Sizes and entry counts of a cache folder (or of a cache in Redis: --redis), and the
    /// hits, misses, inserts and evictions of each process that has the folder open.
    Stats {
        /// The cache folder (none with --redis).
        dir: Option<PathBuf>,
        /// Refresh every SECS seconds (`--watch=5`; default 2) until interrupted: in place on
        /// a terminal, one line of JSON per refresh with --json.
        #[arg(
            long,
            value_name = "SECS",
            num_args = 0..=1,
            default_missing_value = "2",
            require_equals = true
        )]
        watch: Option<f64>,
    },
    /// List entries: namespace, key, tags, size, expiry.
    Ls(Ls),
    /// Say why KEY is or is not a live entry (expired when, invalidated by what…).
    ///
    /// KEY is written as `tiered ls` shows keys: `'"paris"'`, `42` (any integer type;
    /// `42u32` only that one), `'("prices", 3)'`, `'Day { n: 3 }'`, `Kind::Daily`, or a
    /// memoized function's call `'load_prices("eu", 1, 5)'` (quote it for the shell). A
    /// bare word that is not such a key, `paris`, is the string key "paris". Of keys already
    /// dropped, the folder remembers the last 16,384 (removed, evicted, reclaimed); an older
    /// one reads as never written.
    ///
    /// `tiered explain DIR KEY`, or for a cache in Redis `tiered explain --redis URL KEY`.
    Explain {
        /// The cache folder, then the key (with --redis: the key only).
        #[arg(value_name = "DIR", allow_hyphen_values = true)]
        first: String,
        /// The key, as `tiered ls` shows it.
        #[arg(value_name = "KEY", allow_hyphen_values = true)]
        second: Option<String>,
        /// The key's namespace (default: the cache's own keys).
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
    },
    /// Drop entries: one namespace, one tag, the expired ones, or all (of a folder, or of a
    /// cache in Redis: --redis; the apps sharing it hear of it at once).
    #[command(group(clap::ArgGroup::new("selector").required(true).multiple(false)))]
    Clear {
        /// The cache folder (none with --redis).
        dir: Option<PathBuf>,
        /// Drop every entry of this namespace.
        #[arg(long, value_name = "NS", group = "selector")]
        namespace: Option<String>,
        /// Drop every entry with this tag, in every namespace.
        #[arg(long, value_name = "T", group = "selector")]
        tag: Option<String>,
        /// Drop the expired entries now.
        #[arg(long, group = "selector")]
        expired: bool,
        /// Drop every entry.
        #[arg(long, group = "selector")]
        all: bool,
    },
    /// Give disk space back: delete dead records and compact the database file (folders
    /// only: Redis frees its own memory).
    Purge {
        /// The cache folder.
        dir: Option<PathBuf>,
    },
    /// Write every live entry to FILE (`-`: stdout), for `tiered import`.
    ///
    /// `tiered export DIR FILE`, or for a cache in Redis `tiered export --redis URL FILE`.
    Export {
        /// The cache folder, then the file (with --redis: the file only).
        #[arg(value_name = "DIR")]
        first: PathBuf,
        /// The file to write, or `-` for stdout.
        #[arg(value_name = "FILE")]
        second: Option<PathBuf>,
    },
    /// Store the entries of an export in DIR (created if missing), or in a cache in Redis.
    ///
    /// `tiered import DIR FILE`, or `tiered import --redis URL FILE`.
    Import {
        /// The cache folder, then the export (with --redis: the export only).
        #[arg(value_name = "DIR")]
        first: PathBuf,
        /// The export to read, or `-` for stdin.
        #[arg(value_name = "FILE")]
        second: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct Ls {
    /// The cache folder (none with --redis).
    pub dir: Option<PathBuf>,
    /// Only entries of this namespace.
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Only entries with this tag (repeat for entries with all of them).
    #[arg(long, value_name = "T")]
    pub tag: Vec<String>,
    /// Only expired entries not yet reclaimed.
    #[arg(long)]
    pub expired: bool,
    /// Show at most N entries (sorted by namespace, then key).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Also the cache's own bookkeeping (the code version of each memoized function).
    #[arg(long)]
    pub all: bool,
}

/// How a command failed: its exit code and message.
pub(crate) struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<tiered::Error> for Failure {
    fn from(e: tiered::Error) -> Self {
        let mut message = e.to_string();
        if matches!(e, tiered::Error::Locked { .. }) {
            message.push_str(" (tiered: wait longer with --wait SECS)");
        }
        Failure {
            code: exit::ERROR,
            message,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match commands::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            eprintln!("tiered: {}", f.message);
            if cli.json {
                show::say(&serde_json::json!({ "error": f.message, "code": f.code }).to_string());
            }
            ExitCode::from(f.code)
        }
    }
}
