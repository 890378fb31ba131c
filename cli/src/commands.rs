//! The commands: open the folder, do the work through `tiered`'s public API, show the result.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tiered::{Cache, EntryFilter, Explanation};

use crate::progress::{Counting, Progress};
use crate::show::{self, Output};
use crate::{exit, Cli, Command, Failure};

/// The database file in a cache folder (`docs/format.md`): its presence says a cache is there.
const DB_FILE: &str = "tiered.redb";
/// The default `disk_capacity` of `tiered`; see [`open`] for why the command may use more.
const DEFAULT_DISK_CAPACITY: u64 = 4 << 30;

/// `stats` once: the cache's figures, then every other process's that has the folder open.
/// `watching`: the screen is redrawn in place (on a terminal), with the time.
fn stats_once(cache: &Cache, out: &Output, in_redis: bool, watching: bool) -> Result<(), Failure> {
    let entries = cache.entries(&EntryFilter::new())?;
    let mut stats = cache.stats();
    // A cache in Redis has no files here: its records are the ones listed (live or
    // expired; those an invalidation made dead are not counted).
    if in_redis {
        stats.entries = entries.len() as u64;
        stats.disk_bytes = entries.iter().map(|e| e.bytes).sum();
    }
    // This command's own figures are not the app's: left out.
    let processes: Vec<_> = cache
        .stats_by_process()?
        .into_iter()
        .filter(|p| !p.this_process)
        .collect();
    show::stats(out, &stats, &entries, !in_redis, &processes, watching);
    Ok(())
}

pub(crate) fn run(cli: &Cli) -> Result<u8, Failure> {
    let out = Output { json: cli.json };
    let wait = Duration::from_secs(cli.wait);
    match &cli.command {
        Command::Stats { dir, watch } => {
            let cache = open_target(cli, dir.as_deref(), wait)?;
            let every = match watch {
                None => return stats_once(&cache, &out, dir.is_none(), false).map(|()| exit::OK),
                Some(secs) if (0.1..=86_400.0).contains(secs) => Duration::from_secs_f64(*secs),
                Some(secs) => {
                    return Err(Failure {
                        code: exit::USAGE,
                        message: format!(
                            "--watch {secs:?}: give a number of seconds from 0.1 to 86400"
                        ),
                    })
                }
            };
            // Ctrl-C ends the watch as a normal exit would: a folder this command holds
            // (no app had it open) is handed over cleanly.
            #[cfg(unix)]
            tiered::flush_on_exit_signals()?;
            loop {
                stats_once(&cache, &out, dir.is_none(), true)?;
                // Its reader gone (`| head`), the watch ends, and lets go of the folder.
                if show::reader_gone() {
                    return Ok(exit::OK);
                }
                std::thread::sleep(every);
            }
        }
        Command::Ls(ls) => {
            let cache = open_target(cli, ls.dir.as_deref(), wait)?;
            let mut filter = EntryFilter::new();
            if let Some(ns) = &ls.namespace {
                filter = filter.namespace(ns);
            }
            for t in &ls.tag {
                filter = filter.tag(t);
            }
            if ls.expired {
                filter = filter.expired_only();
            }
            if ls.all {
                filter = filter.bookkeeping();
            }
            let mut entries = cache.entries(&filter)?;
            entries.sort_by(|a, b| (&a.namespace, &a.key).cmp(&(&b.namespace, &b.key)));
            let total = entries.len();
            if let Some(limit) = ls.limit {
                entries.truncate(limit);
            }
            show::entries(&out, &entries, total);
            Ok(exit::OK)
        }
        Command::Explain {
            first,
            second,
            namespace,
        } => {
            let (dir, key) = folder_and(cli, first.clone(), second.clone(), "KEY")?;
            let cache = open_target(cli, dir.as_deref(), wait)?;
            let key = &key;
            let shown = match namespace {
                Some(ns) => cache.namespace(ns).explain_shown(key),
                None => cache.explain_shown(key),
            };
            let why = match shown {
                Ok(why) if why != Explanation::NeverWritten => why,
                // A bare word (`paris`) is also the string key "paris", as before keys of
                // any type could be named: a read as `IgnoredAny` finds any stored value "of
                // another type", which is exactly "live" for this question.
                not_found => {
                    let as_string = match namespace {
                        Some(ns) => cache
                            .namespace(ns)
                            .explain::<_, serde::de::IgnoredAny>(key.as_str())?,
                        None => cache.explain::<_, serde::de::IgnoredAny>(key.as_str())?,
                    };
                    match (not_found, as_string) {
                        (_, Explanation::OtherType { .. }) => Explanation::Hit,
                        (Err(e), why @ Explanation::NeverWritten) => {
                            eprintln!("tiered: note: {e}; looked for as the string key {key:?}");
                            why
                        }
                        (_, why) => why,
                    }
                }
            };
            let live = why == Explanation::Hit;
            show::explanation(&out, key, namespace.as_deref(), &why, live);
            Ok(if live { exit::OK } else { exit::NOT_LIVE })
        }
        Command::Clear {
            dir,
            namespace,
            tag,
            expired,
            all,
        } => {
            let cache = open_target(cli, dir.as_deref(), wait)?;
            let bar = Progress::spinner("clearing");
            let (selector, name, entries) = if let Some(ns) = namespace {
                let n = cache.entries(&EntryFilter::new().namespace(ns))?.len() as u64;
                cache.namespace(ns).clear()?;
                ("namespace", Some(ns.as_str()), n)
            } else if let Some(t) = tag {
                let n = cache.entries(&EntryFilter::new().tag(t))?.len() as u64;
                cache.invalidate_tag(t)?;
                ("tag", Some(t.as_str()), n)
            } else if *expired {
                ("expired", None, cache.clear_expired()?)
            } else {
                debug_assert!(*all, "clap requires one selector");
                let n = cache.entries(&EntryFilter::new())?.len() as u64;
                cache.clear()?;
                ("all", None, n)
            };
            cache.flush()?;
            bar.finish();
            show::cleared(&out, selector, name, entries);
            Ok(exit::OK)
        }
        Command::Purge { dir } => {
            #[cfg(feature = "redis")]
            if cli.redis.is_some() {
                return Err(Failure {
                    code: exit::USAGE,
                    message: "purge gives a folder's disk space back; Redis frees its own \
                              memory (entries' deadlines, its eviction policy): give the \
                              cache folder"
                        .into(),
                });
            }
            let Some(dir) = dir else {
                return Err(Failure {
                    code: exit::USAGE,
                    message: "give the cache folder".into(),
                });
            };
            let cache = open(dir, wait, false)?;
            let before = cache.stats().disk_file_bytes;
            let bar = Progress::spinner("compacting");
            cache.compact()?;
            bar.finish();
            show::purged(&out, before, cache.stats().disk_file_bytes);
            Ok(exit::OK)
        }
        Command::Export { first, second } => {
            let (dir, file) = folder_and(cli, first.clone(), second.clone(), "FILE")?;
            let file = &file;
            let cache = open_target(cli, dir.as_deref(), wait)?;
            let bar = Progress::bytes("exporting", None);
            let to_stdout = file.as_os_str() == "-";
            let count = if to_stdout {
                let stdout = io::stdout().lock();
                cache.export(Counting::new(stdout, &bar))?
            } else {
                let f = create(file)?;
                let count = cache.export(Counting::new(BufWriter::new(&f), &bar))?;
                f.sync_all().map_err(|e| io_failure(file, &e))?;
                count
            };
            bar.finish();
            // With the stream on stdout, the summary goes to stderr.
            show::transferred(&out, "exported", count, to_stdout);
            Ok(exit::OK)
        }
        Command::Import { first, second } => {
            let (dir, file) = folder_and(cli, first.clone(), second.clone(), "FILE")?;
            let file = &file;
            // The input first: a missing file creates no folder.
            let input = if file.as_os_str() == "-" {
                None
            } else {
                Some(File::open(file).map_err(|e| io_failure(file, &e))?)
            };
            let created = dir.as_deref().and_then(first_missing);
            let cache = match &dir {
                Some(dir) => open(dir, wait, true)?,
                None => open_target(cli, None, wait)?,
            };
            let count = match input {
                None => {
                    let bar = Progress::bytes("importing", None);
                    let count = cache.import(Counting::new(io::stdin().lock(), &bar));
                    bar.finish();
                    count
                }
                Some(f) => {
                    let len = f.metadata().ok().map(|m| m.len());
                    let bar = Progress::bytes("importing", len);
                    let count = cache.import(Counting::new(BufReader::new(f), &bar));
                    bar.finish();
                    count
                }
            };
            let count = match count.and_then(|n| cache.flush().map(|()| n)) {
                Ok(count) => count,
                Err(e) => {
                    let mut failure = Failure::from(e);
                    if let (Some(created), Some(dir)) = (created, &dir) {
                        if remove_if_empty(cache, dir, &created) {
                            failure.message.push_str(&format!(
                                " ({}, created for this import, was removed)",
                                created.display()
                            ));
                        }
                    }
                    return Err(failure);
                }
            };
            show::transferred(&out, "imported", count, false);
            Ok(exit::OK)
        }
    }
}

/// The outermost folder of `dir`'s path (`dir` itself or one of its parents) that does not
/// exist yet: what opening `dir` creates.
fn first_missing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && p.symlink_metadata().is_err())
        .last()
        .map(Path::to_path_buf)
}

/// After a failed import into `dir`, whose folders from `created` down this command made:
/// closes the cache and removes them if it holds no entry (and no other process has opened it
/// since: it serves no socket). Whether it removed them.
fn remove_if_empty(cache: Cache, dir: &Path, created: &Path) -> bool {
    let empty = cache
        .entries(&EntryFilter::new())
        .is_ok_and(|entries| entries.is_empty());
    drop(cache);
    if !empty || dir.join("tiered.sock").symlink_metadata().is_ok() {
        return false;
    }
    std::fs::remove_dir_all(created).is_ok()
}

/// A command's `[DIR] ARG`: both given, the folder and the argument; one, the argument of a
/// command on a cache in Redis (`--redis` or `$TIERED_REDIS_URL`).
fn folder_and<T>(
    cli: &Cli,
    first: T,
    second: Option<T>,
    what: &str,
) -> Result<(Option<PathBuf>, T), Failure>
where
    T: Into<PathBuf> + Clone,
{
    match second {
        Some(arg) => Ok((Some(first.into()), arg)),
        None if on_redis(cli) => Ok((None, first)),
        None => Err(Failure {
            code: exit::USAGE,
            message: format!(
                "give the cache folder and {what}{}",
                if cfg!(feature = "redis") {
                    format!(", or --redis URL and {what}")
                } else {
                    String::new()
                }
            ),
        }),
    }
}

/// Whether the command names a cache in Redis without a folder.
fn on_redis(cli: &Cli) -> bool {
    #[cfg(feature = "redis")]
    {
        cli.redis.is_some() || std::env::var_os("TIERED_REDIS_URL").is_some_and(|v| !v.is_empty())
    }
    #[cfg(not(feature = "redis"))]
    {
        let _ = cli;
        false
    }
}

/// The cache a command that also works on Redis names: the folder `dir`, or the Redis
/// server of `--redis` (or of `$TIERED_REDIS_URL` when no folder is given).
fn open_target(cli: &Cli, dir: Option<&Path>, wait: Duration) -> Result<Cache, Failure> {
    #[cfg(feature = "redis")]
    {
        let url = cli.redis.clone().or_else(|| {
            dir.is_none().then(|| {
                std::env::var("TIERED_REDIS_URL")
                    .ok()
                    .filter(|u| !u.is_empty())
            })?
        });
        match (dir, url) {
            (Some(_), Some(_)) if cli.redis.is_some() => {
                return Err(Failure {
                    code: exit::USAGE,
                    message: "give a cache folder or --redis URL, not both".into(),
                })
            }
            (None, Some(url)) => return open_redis(cli, &url),
            _ => {}
        }
    }
    #[cfg(not(feature = "redis"))]
    let _ = cli;
    match dir {
        Some(dir) => open(dir, wait, false),
        None => Err(Failure {
            code: exit::USAGE,
            message: if cfg!(feature = "redis") {
                "give the cache folder, or --redis URL (or set TIERED_REDIS_URL)".into()
            } else {
                "give the cache folder".into()
            },
        }),
    }
}

/// The cache an app shares through Redis at `url`, with its prefix: the command's memory
/// tier starts empty, so everything it reads comes from the server.
#[cfg(feature = "redis")]
fn open_redis(cli: &Cli, url: &str) -> Result<Cache, Failure> {
    let mut builder = Cache::builder().redis(url).memory_capacity(64 << 20);
    if let Some(prefix) = &cli.redis_prefix {
        builder = builder.redis_prefix(prefix);
    }
    let cache = builder.open().map_err(Failure::from)?;
    // A command that cannot reach the server must say so, not show an empty cache.
    let health = wait_for_redis(&cache);
    if let tiered::Health::RedisUnreachable { reason, .. } = health {
        return Err(Failure {
            code: exit::ERROR,
            message: format!("the Redis server cannot be reached: {reason}"),
        });
    }
    Ok(cache)
}

/// The cache's health once a first command reached the server (or failed to).
#[cfg(feature = "redis")]
fn wait_for_redis(cache: &Cache) -> tiered::Health {
    // A read reaches the server (or fails) within the command timeout.
    let _ = cache.contains_key("tiered: a key no one writes");
    cache.health()
}

/// Opens the cache in `dir`; unless `create`, a folder without a cache is [`exit::NO_CACHE`].
///
/// The command does not know the capacity the app gave the folder: it opens with room for
/// twice what the folder holds, so that opening it never evicts an entry (a capacity below the
/// folder's size would make the cache shrink it in the background).
fn open(dir: &Path, wait: Duration, create: bool) -> Result<Cache, Failure> {
    if !create && !dir.join(DB_FILE).is_file() {
        let why = if dir.is_dir() {
            "the folder holds no tiered.redb"
        } else if dir.exists() {
            "it is a file, not a folder: give the cache folder"
        } else {
            "no such folder"
        };
        return Err(Failure {
            code: exit::NO_CACHE,
            message: format!("no cache at {} ({why})", dir.display()),
        });
    }
    let held = folder_bytes(dir);
    Cache::builder()
        .path(dir)
        .open_timeout(wait)
        .warm_restart(0)
        .memory_capacity(64 << 20)
        .disk_capacity(DEFAULT_DISK_CAPACITY.max(held.saturating_mul(2)))
        .open()
        .map_err(Failure::from)
}

/// Bytes of the files in `dir` and its `blobs` folder.
fn folder_bytes(dir: &Path) -> u64 {
    let files = |d: PathBuf| -> u64 {
        std::fs::read_dir(d).map_or(0, |entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
    };
    files(dir.to_path_buf()).saturating_add(files(dir.join("blobs")))
}

/// Creates (or truncates) an export file, readable by this user only (0600): it holds the
/// cache's data. An existing regular file open to others is made 0600 too.
fn create(file: &Path) -> Result<File, Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let f = options.open(file).map_err(|e| io_failure(file, &e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = f.metadata().map_err(|e| io_failure(file, &e))?;
        let mode = meta.permissions().mode();
        // Only a regular file: never a device (`/dev/stdout`) or a pipe.
        if meta.is_file() && mode & 0o077 != 0 {
            let tight = std::fs::Permissions::from_mode(mode & 0o7700);
            if let Err(e) = f.set_permissions(tight) {
                eprintln!(
                    "tiered: warning: {} is open to other users and its mode could not be \
                     changed: {e}",
                    file.display()
                );
            }
        }
    }
    Ok(f)
}

fn io_failure(path: &Path, e: &io::Error) -> Failure {
    Failure {
        code: exit::ERROR,
        message: format!("{}: {e}", path.display()),
    }
}
