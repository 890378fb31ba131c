//! The redb tables of a cache database.

use redb::TableDefinition;

/// Key digest → record (see `record.rs`).
pub(crate) const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");
/// Key digest → (last access, unix ms; record length in bytes): for idle expiry and for
/// evicting the least recently used records past `disk_capacity`.
pub(crate) const ACCESS: TableDefinition<u128, (u64, u64)> = TableDefinition::new("access");
/// Generation label (`tag:…`, `ns:…`, `all`) → current generation.
pub(crate) const GENERATIONS: TableDefinition<&str, u64> = TableDefinition::new("generations");
/// Counters kept in the same transactions as the data.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// META key: total bytes of the values in RECORDS.
pub(crate) const DISK_BYTES: &str = "disk_bytes";
/// META key: the layout version of the database (tables and their meaning).
pub(crate) const DB_VERSION: &str = "db_version";
/// The database layout this build writes.
pub(crate) const CURRENT_DB_VERSION: u64 = 1;
