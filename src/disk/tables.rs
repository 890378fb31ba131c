//! The redb tables of a cache database.

use super::space::Learned;
use crate::record::BlobRef;
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

/// Key digest → record (see `record.rs`).
pub(crate) const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");
/// Key digest → (last access, unix ms; record length in bytes): for idle expiry and for
/// evicting the least recently used records past `disk_capacity`.
pub(crate) const ACCESS: TableDefinition<u128, (u64, u64)> = TableDefinition::new("access");
/// Generation label (`tag:…`, `ns:…`, `all`) → current generation.
pub(crate) const GENERATIONS: TableDefinition<&str, u64> = TableDefinition::new("generations");
/// Counters kept in the same transactions as the data.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// META key: total bytes of the values in RECORDS and of their side files.
pub(crate) const DISK_BYTES: &str = "disk_bytes";
/// META key: the side files' share of `DISK_BYTES`.
pub(crate) const BLOB_BYTES: &str = "blob_bytes";
/// META keys: what `space.rs` learned of the database file: its bytes per byte of record (in
/// thousandths), and the most a commit needed beyond what the file held after it.
pub(crate) const SPACE_RATIO: &str = "space_ratio_milli";
pub(crate) const SPACE_SLACK: &str = "space_slack";
/// META key: the layout version of the database (tables and their meaning).
pub(crate) const DB_VERSION: &str = "db_version";
/// The database layout this build writes.
pub(crate) const CURRENT_DB_VERSION: u64 = 1;

/// When the record was last read, if that matters: read times are kept for idle expiry, so
/// only a record with an idle limit needs the lookup.
pub(crate) fn last_access(
    access: &impl ReadableTable<u128, (u64, u64)>,
    digest: u128,
    record: &[u8],
) -> Result<Option<u64>, redb::Error> {
    if !crate::record::has_idle_limit(record) {
        return Ok(None);
    }
    Ok(access.get(digest)?.map(|g| g.value().0))
}

/// Logical sizes of what the tier holds: records and side files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Bytes of all records and their side files.
    pub bytes: u64,
    /// The side files' share of `bytes`.
    pub blob_bytes: u64,
}

impl Totals {
    /// Bytes of the records themselves, stored inside the database file.
    pub fn record_bytes(&self) -> u64 {
        self.bytes.saturating_sub(self.blob_bytes)
    }
}

/// What a committed transaction leaves: the totals, the number of records, and the side files
/// to delete now that it is committed.
pub(crate) struct Finished {
    pub totals: Totals,
    pub entries: u64,
    pub doomed: Vec<u64>,
}

/// The tables of one write transaction, with the running byte totals.
pub(crate) struct Tables<'t> {
    pub records: Table<'t, u128, &'static [u8]>,
    pub access: Table<'t, u128, (u64, u64)>,
    pub gens: Table<'t, &'static str, u64>,
    meta: Table<'t, &'static str, u64>,
    /// Kept in step with every insert and removal.
    pub totals: Totals,
    /// Written beside the totals.
    learned: Learned,
    /// Side files of records this transaction removed or replaced: deleted after its commit.
    pub doomed_blobs: Vec<u64>,
}

impl<'t> Tables<'t> {
    pub fn open(
        txn: &'t WriteTransaction,
        totals: Totals,
        learned: Learned,
    ) -> Result<Self, redb::Error> {
        let records = txn.open_table(RECORDS)?;
        let (records, access) = open_after(txn, records, ACCESS)?;
        let ((records, access), gens) = open_after(txn, (records, access), GENERATIONS)?;
        let ((records, access, gens), meta) = open_after(txn, (records, access, gens), META)?;
        Ok(Tables {
            records,
            access,
            gens,
            meta,
            totals,
            learned,
            doomed_blobs: Vec::new(),
        })
    }

    /// Stores `record`, whose side file (if any) the caller has already read from it: the
    /// record was decoded once, by the writer, and is not decoded again here.
    pub fn put(
        &mut self,
        digest: u128,
        record: &[u8],
        blob: Option<BlobRef>,
    ) -> Result<(), redb::Error> {
        if let Some(old) = self.records.insert(digest, record)? {
            forget(&mut self.totals, &mut self.doomed_blobs, old.value());
        }
        if let Some(blob) = blob {
            // The same put applied again (a client's write sent again to the next owner after
            // the last one had committed it): the file it replaces is its own, and stays.
            self.doomed_blobs.retain(|id| *id != blob.id);
        }
        let blob_len = blob.map_or(0, |b| b.len);
        // Saturating: a side file's length comes from the file (checked, at most i64::MAX).
        self.totals.bytes = (self.totals.bytes)
            .saturating_add(record.len() as u64)
            .saturating_add(blob_len);
        self.totals.blob_bytes = self.totals.blob_bytes.saturating_add(blob_len);
        Ok(())
    }

    /// Removes a record and its read time; returns whether there was a record.
    pub fn remove(&mut self, digest: u128) -> Result<bool, redb::Error> {
        let existed = match self.records.remove(digest)? {
            Some(old) => {
                forget(&mut self.totals, &mut self.doomed_blobs, old.value());
                true
            }
            None => false,
        };
        self.access.remove(digest)?;
        Ok(existed)
    }

    /// Writes the byte totals beside the data.
    pub fn finish(mut self) -> Result<Finished, redb::Error> {
        self.meta.insert(DISK_BYTES, self.totals.bytes)?;
        self.meta.insert(BLOB_BYTES, self.totals.blob_bytes)?;
        self.meta.insert(SPACE_RATIO, self.learned.ratio_milli)?;
        self.meta.insert(SPACE_SLACK, self.learned.slack)?;
        Ok(Finished {
            totals: self.totals,
            entries: self.records.len()?,
            doomed: self.doomed_blobs,
        })
    }
}

/// Takes a removed or replaced record out of the byte totals; its side file goes after the
/// commit.
fn forget(totals: &mut Totals, doomed_blobs: &mut Vec<u64>, record: &[u8]) {
    let blob = crate::record::blob_of(record);
    let blob_len = blob.map_or(0, |b| b.len);
    totals.bytes = (totals.bytes)
        .saturating_sub(record.len() as u64)
        .saturating_sub(blob_len);
    totals.blob_bytes = totals.blob_bytes.saturating_sub(blob_len);
    if let Some(blob) = blob {
        doomed_blobs.push(blob.id);
    }
}

/// Opens `table` in `txn` while the tables `open` are open, and hands them back with it.
///
/// redb holds a lock of the transaction while it opens a table, and every open table takes it
/// again when dropped. If redb panics in the open (a damaged table tree), the lock is poisoned,
/// and dropping the open tables while the panic unwinds would panic again: a panic during a
/// panic aborts the process, past every guard. So they are leaked instead (the transaction,
/// dropped while unwinding, is never committed) and the panic goes on to the guard.
pub(crate) fn open_after<'t, T, K, V>(
    txn: &'t WriteTransaction,
    open: T,
    table: TableDefinition<K, V>,
) -> Result<(T, Table<'t, K, V>), redb::Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| txn.open_table(table))) {
        Ok(opened) => Ok((open, opened?)),
        Err(panic) => {
            std::mem::forget(open);
            std::panic::resume_unwind(panic)
        }
    }
}
