//! What a tool needs besides reads and writes: listing entries ([`Cache::entries`]),
//! dropping expired ones now ([`Cache::clear_expired`]), and moving entries between cache
//! folders ([`Cache::export`], [`Cache::import`]). The `tiered` command line is built on these.
//!
//! The work is done a page at a time by the engine (`pages.rs`), so that another process can
//! be served page by page; the methods here loop over the pages.

mod explain_shown;
mod listing;
mod pages;
pub(crate) mod readable;
pub(crate) mod shown;
pub(crate) mod transfer;

use std::io::{BufReader, BufWriter, Read, Write};

pub use listing::{EntryFilter, EntryInfo};

use crate::cache::Cache;
use crate::error::{Error, Result};

/// Records read per page.
const PAGE: usize = 512;
/// Imported entries stored per call to the engine (and at most this many bytes of payload).
const IMPORT_BATCH: usize = 256;
const IMPORT_BATCH_BYTES: usize = 16 << 20;

impl Cache {
    /// The entries of the disk tier that `filter` lets through, in no particular order: live
    /// ones and expired ones not yet reclaimed (marked [`EntryInfo::expired`]); never
    /// invalidated or removed ones, which are gone for users even before their space is
    /// reclaimed. Entries kept in memory only ([`Options::memory_only`](crate::Options::memory_only),
    /// or every entry of a cache opened [`in_memory`](Cache::in_memory)) are not listed: a
    /// cache in memory only lists nothing. The cache's own bookkeeping (the code version of
    /// each memoized function) is left out unless the filter asks for it
    /// ([`EntryFilter::bookkeeping`]); an entry of a memoized function names its call
    /// ([`EntryInfo::call`]).
    ///
    /// Reads the database page by page, so inserts made meanwhile may or may not be listed.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use tiered::{Cache, EntryFilter};
    ///
    /// let cache = Cache::open(dir.path())?;
    /// cache.insert("paris", 2_100_000u64)?;
    /// cache.namespace("reports").insert(&("q", 1u8), "text".to_string())?;
    /// let reports = cache.entries(&EntryFilter::new().namespace("reports"))?;
    /// assert_eq!(reports.len(), 1);
    /// assert_eq!(reports[0].key, r#"("q", 1)"#);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`] if the disk tier is out of service (see [`Cache::health`]).
    pub fn entries(&self, filter: &EntryFilter) -> Result<Vec<EntryInfo>> {
        let mut out = Vec::new();
        let mut after = None;
        loop {
            let (page, cursor) = self.inner.list_page(filter, after, PAGE)?;
            out.extend(page);
            match cursor {
                Some(c) => after = Some(c),
                None => return Ok(out),
            }
        }
    }

    /// Why the key written `key` is, or is not, a live entry: [`Cache::explain`] for a key
    /// known only by its text, as [`EntryInfo::key`] (and `tiered ls`) show it: `"paris"`,
    /// `42`, `("prices", 3)`, `Day { n: 3 }`, `Kind::Daily`, `b"raw"`, `'c'`, `None`,
    /// `Some(1)`, `{"a": 1}`. The text does not say the value's type: any live value is a
    /// [`Explanation::Hit`](crate::Explanation::Hit).
    ///
    /// Nor does it say a number's width: `5` matches a key stored as any integer type that
    /// holds 5, `5u32` (or `-2i64`, `1.5f32`) only that type. Nor an enum variant's index: a
    /// key holding an `Enum::Variant` is looked for among the records (a scan of the cache),
    /// so it is explained while its record is in the folder (live, expired, invalidated) and
    /// is otherwise never written. A text that stands for more than 4,096 stored forms (many
    /// unsuffixed numbers) is refused: give widths.
    ///
    /// In the root, a call `name(args)`, as `tiered ls` shows a memoized function's entries,
    /// explains that call of each memoized function whose path is `name` or ends with
    /// `::name` (a scan of the cache's records finds them), with
    /// [`Explanation::CodeChanged`](crate::Explanation::CodeChanged) when only another
    /// version of the function's code stored it. With no such function, it is a tuple struct.
    /// A `#[memoize]` key holds a part that only the function's stored entries show: a call
    /// of a function none of whose entries is left in the folder reads as never written.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use tiered::{Cache, Explanation};
    ///
    /// let cache = Cache::open(dir.path())?;
    /// cache.insert(&("prices", 3u32), 1.5f64)?;
    /// assert_eq!(cache.explain_shown(r#"("prices", 3)"#)?, Explanation::Hit);
    /// assert_eq!(cache.explain_shown(r#"("prices", 3u32)"#)?, Explanation::Hit);
    /// assert_eq!(cache.explain_shown(r#"("prices", 3u64)"#)?, Explanation::NeverWritten);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] if the text is not a key as shown (the message says where and how
    /// to write it) or stands for too many stored forms; [`Error::Storage`] if the disk tier
    /// is out of service during the scan for a memoized call.
    pub fn explain_shown(&self, key: &str) -> Result<crate::Explanation> {
        self.inner.explain_shown(None, key)
    }

    /// Deletes every expired entry now, from both tiers, rather than when the sweeper or a
    /// read comes to it; returns how many it deleted. Their space is reclaimed as after a
    /// [`remove`](Cache::remove) (see [`Cache::compact`] to give it back to the file system
    /// at once).
    ///
    /// ```
    /// use std::{sync::Arc, time::{Duration, SystemTime}};
    /// use tiered::{Cache, ManualClock, Options};
    ///
    /// let clock = Arc::new(ManualClock::new(SystemTime::now()));
    /// let cache = Cache::builder().clock(clock.clone()).open()?;
    /// cache.insert_with("soon", 1u8, &Options::new().ttl(Duration::from_secs(60)))?;
    /// cache.insert("kept", 2u8)?;
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.clear_expired()?, 1);
    /// # Ok::<(), tiered::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Storage`] if the disk tier is out of service.
    pub fn clear_expired(&self) -> Result<u64> {
        self.inner.clear_expired_now()
    }

    /// Writes every live entry of the disk tier to `out` as an export stream (its layout is
    /// in `docs/format.md`, "Export streams"); returns how many entries it wrote. Each entry
    /// carries its key, namespace, tags, type identity, expiry and value, so that
    /// [`Cache::import`] can store it in another cache folder (another machine, a CI job).
    ///
    /// Entries kept in memory only are not exported: a cache in memory only exports an empty
    /// stream. `out` is buffered here; pass a plain `File` or `stdout`.
    ///
    /// ```
    /// # let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    /// use tiered::Cache;
    ///
    /// let source = Cache::open(a.path())?;
    /// source.insert("answer", 42u64)?;
    /// let mut stream = Vec::new();
    /// assert_eq!(source.export(&mut stream)?, 1);
    ///
    /// let copy = Cache::open(b.path())?;
    /// assert_eq!(copy.import(&stream[..])?, 1);
    /// assert_eq!(copy.get::<_, u64>("answer")?.as_deref(), Some(&42));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Export`] if writing to `out` fails (the stream is then incomplete, and an
    /// import of it stops with an error at the cut); [`Error::Storage`] if the disk tier is
    /// out of service.
    pub fn export(&self, out: impl Write) -> Result<u64> {
        let mut out = BufWriter::new(out);
        let mut count = 0u64;
        let failed = |exported, source| Error::Export { exported, source };
        transfer::write_header(&mut out).map_err(|e| failed(0, e))?;
        let mut after = None;
        loop {
            let (page, cursor) = self.inner.export_page(after, PAGE)?;
            for entry in &page {
                transfer::write_entry(&mut out, entry).map_err(|e| failed(count, e))?;
                count += 1;
            }
            match cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        transfer::write_end(&mut out, count).map_err(|e| failed(count, e))?;
        out.flush().map_err(|e| failed(count, e))?;
        Ok(count)
    }

    /// Stores the entries of an export stream (see [`Cache::export`]) in this cache, through
    /// the same path as [`insert`](Cache::insert): both tiers and the ordering of writes hold
    /// as for any insert, and an entry replaces a value its key held here. Returns how many
    /// entries it stored.
    ///
    /// Each entry gets this cache's current generations, so a later
    /// [`invalidate_tag`](Cache::invalidate_tag), [`Namespace::clear`](crate::Namespace::clear)
    /// or [`clear`](Cache::clear) here reaches it. Entries already expired are skipped; an
    /// idle limit counts from the import. Values keep their type identity: one reads back as
    /// the type that stored it (a miss, counted in `type_mismatches`, as another type or
    /// another shape of it).
    ///
    /// # Errors
    /// [`Error::Import`] if the stream is damaged, cut short, not an export or of a newer
    /// stream version: the entries before that point are stored and stay, and the error says
    /// how many. As [`Cache::insert`] for an entry that cannot be stored
    /// ([`Error::TooLarge`]; with `Durability::Immediate`, [`Error::Storage`]).
    pub fn import(&self, input: impl Read) -> Result<u64> {
        let mut imported = 0u64;
        let stopped = |imported, detail| Error::Import { imported, detail };
        let mut reader =
            transfer::StreamReader::new(BufReader::new(input)).map_err(|d| stopped(0, d))?;
        loop {
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut damage = None;
            let mut ended = false;
            while batch.len() < IMPORT_BATCH && bytes < IMPORT_BATCH_BYTES {
                match reader.next_entry() {
                    Ok(Some(entry)) => {
                        bytes += entry.payload.len();
                        batch.push(entry);
                    }
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Err(detail) => {
                        damage = Some(detail);
                        break;
                    }
                }
            }
            // What was read before any damage is stored first.
            match self.inner.import_entries(batch) {
                Ok(n) => imported += n,
                Err(Error::Import {
                    imported: n,
                    detail,
                }) => return Err(stopped(imported + n, detail)),
                Err(e) => return Err(e),
            }
            if let Some(detail) = damage {
                return Err(stopped(imported, detail));
            }
            if ended {
                return Ok(imported);
            }
        }
    }
}
