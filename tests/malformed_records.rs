//! Records of format 3 crafted with valid checksums and written straight into redb: whatever a
//! field says, a read, the sweeper, eviction, `explain` and the warm restart never panic, and
//! a record that cannot be right is a miss, counted as damaged and reclaimed.

mod common;

use std::path::Path;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use tiered::{Cache, Durability};
use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");

/// Full key of a `&str` key at the root: 00 10 varint(len) bytes.
fn full_key(k: &str) -> Vec<u8> {
    let mut v = vec![0x00, 0x10, k.len() as u8];
    v.extend_from_slice(k.as_bytes());
    v
}

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn seal(mut body: Vec<u8>) -> Vec<u8> {
    let sum = xxh3_64(&body);
    body.extend_from_slice(&sum.to_le_bytes());
    body
}

/// Fixed 14-byte prefix of a real record of `u64` written by the cache (version, flags,
/// fingerprint, type name id), read back from `dir`.
fn real_prefix(dir: &Path) -> Vec<u8> {
    let c = Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .warm_restart(0)
        .open()
        .unwrap();
    c.insert("real", 5u64).unwrap();
    c.flush().unwrap();
    drop(c);
    let db = redb::Database::open(dir.join("tiered.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(RECORDS).unwrap();
    let bytes = t
        .get(xxh3_128(&full_key("real")))
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    bytes[..14].to_vec()
}

fn write_raw(dir: &Path, key: &str, record: &[u8]) {
    let db = redb::Database::open(dir.join("tiered.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(RECORDS).unwrap();
        t.insert(xxh3_128(&full_key(key)), record).unwrap();
    }
    txn.commit().unwrap();
}

fn count_records(dir: &Path) -> usize {
    let db = redb::Database::open(dir.join("tiered.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(RECORDS).unwrap();
    t.iter().unwrap().count()
}

/// Malformed bodies with valid checksums (and v3 fixed prefix).
fn malformed(prefix: &[u8], key: &str) -> Vec<(&'static str, Vec<u8>)> {
    let fk = full_key(key);
    let mut out = Vec::new();
    let base = |flags: u8| {
        let mut b = prefix.to_vec();
        b[1] = flags;
        b
    };
    // created varint past 64 bits
    let mut b = base(0);
    b.extend_from_slice(&[0xff; 10]);
    b.push(0x7f);
    out.push(("huge created varint", seal(b)));
    // n huge, one label
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, u64::MAX);
    b.extend_from_slice(&[0, 0]);
    out.push(("n huge", seal(b)));
    // n bigger than data, all labels valid-looking
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, 1000);
    for _ in 0..5 {
        b.extend_from_slice(&[1, 0]);
    }
    out.push(("n past data", seal(b)));
    // unknown label code
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, 2);
    b.extend_from_slice(&[0, 0, 9, 0]);
    put_var(&mut b, fk.len() as u64);
    b.extend_from_slice(&fk);
    b.push(5);
    out.push(("unknown label code", seal(b)));
    // LABEL_OTHER cut short
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, 1);
    b.extend_from_slice(&[2, 1, 2, 3]);
    out.push(("other label cut", seal(b)));
    // key length past end
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, 2);
    b.extend_from_slice(&[0, 0, 1, 0]);
    put_var(&mut b, u64::MAX);
    b.extend_from_slice(&fk);
    out.push(("k = u64::MAX", seal(b)));
    let mut b = base(0);
    put_var(&mut b, 1);
    put_var(&mut b, 2);
    b.extend_from_slice(&[0, 0, 1, 0]);
    put_var(&mut b, fk.len() as u64 + 1);
    b.extend_from_slice(&fk);
    out.push(("k one past end", seal(b)));
    // deadline flag but nothing follows
    let mut b = base(4 | 8);
    put_var(&mut b, 1);
    out.push(("deadline missing", seal(b)));
    // only the fixed part
    out.push(("fixed only", seal(base(0))));
    // shorter than fixed
    out.push(("short v3", seal(prefix[..5].to_vec())));
    out
}

/// A well-formed record around `payload` with `flags`, extreme header values.
fn wellformed(
    prefix: &[u8],
    key: &str,
    flags: u8,
    created: u64,
    deadline: u64,
    idle: u64,
    payload: &[u8],
) -> Vec<u8> {
    let fk = full_key(key);
    let mut b = prefix.to_vec();
    b[1] = flags;
    put_var(&mut b, created);
    if flags & 4 != 0 {
        put_var(&mut b, deadline);
    }
    if flags & 8 != 0 {
        put_var(&mut b, idle);
    }
    put_var(&mut b, 2);
    b.extend_from_slice(&[0, 0, 1, 0]);
    put_var(&mut b, fk.len() as u64);
    b.extend_from_slice(&fk);
    b.extend_from_slice(payload);
    seal(b)
}

fn open_with(dir: &Path, warm: bool) -> Cache {
    let b = Cache::builder()
        .path(dir)
        .durability(Durability::Immediate)
        .memory_capacity(1 << 20)
        .disk_capacity(1 << 30);
    let b = if warm { b } else { b.warm_restart(0) };
    b.open().unwrap()
}

#[test]
fn malformed_v3_records_with_valid_checksums_read_as_damaged() {
    for warm in [false, true] {
        let dir = common::tempdir();
        let prefix = real_prefix(dir.path());
        let cases = malformed(&prefix, "k");
        for (i, (_, rec)) in cases.iter().enumerate() {
            write_raw(dir.path(), &format!("k{i}"), rec);
        }
        let c = open_with(dir.path(), warm);
        std::thread::sleep(Duration::from_millis(300));
        for (i, (what, _)) in cases.iter().enumerate() {
            let got = c.get::<_, u64>(&format!("k{i}")).unwrap();
            assert!(got.is_none(), "{what}: {got:?}");
            let _ = c.explain::<_, u64>(&format!("k{i}"));
            let _ = c.contains_key(&format!("k{i}")).unwrap();
        }
        c.flush().unwrap();
        let s = c.stats();
        assert_eq!(s.damaged_records, cases.len() as u64, "{s:?}");
        assert_eq!(c.get::<_, u64>("real").unwrap().as_deref(), Some(&5));
        drop(c);
        assert_eq!(count_records(dir.path()), 1);
    }
}

#[test]
fn version_2_records_are_misses_reclaimed_and_counted_nowhere() {
    let dir = common::tempdir();
    let prefix = real_prefix(dir.path());
    let mut old = wellformed(&prefix, "old", 0, 1, 0, 0, &[5]);
    old.truncate(old.len() - 8);
    old[0] = 2;
    let old = seal(old);
    write_raw(dir.path(), "old", &old);
    // one the sweeper must find alone
    write_raw(dir.path(), "old2", &old);
    let c = open_with(dir.path(), true);
    assert!(c.get::<_, u64>("old").unwrap().is_none());
    assert!(!c.contains_key("old").unwrap());
    c.flush().unwrap();
    // the sweeper's first pass at open reclaims the other
    assert!(common::eventually(5, || c.stats().entries == 1));
    let s = c.stats();
    assert_eq!(s.damaged_records, 0, "{s:?}");
    assert_eq!(s.type_mismatches, 0, "{s:?}");
    drop(c);
    assert_eq!(count_records(dir.path()), 1);
}

fn huge_blob_len(warm: bool) {
    let dir = common::tempdir();
    let prefix = real_prefix(dir.path());
    let mut blobref = Vec::new();
    blobref.extend_from_slice(&0x1234u64.to_le_bytes());
    blobref.extend_from_slice(&u64::MAX.to_le_bytes());
    blobref.extend_from_slice(&0u64.to_le_bytes());
    let rec = wellformed(&prefix, "blob", 2, 1, 0, 0, &blobref);
    write_raw(dir.path(), "blob", &rec);
    let c = open_with(dir.path(), warm);
    assert!(common::eventually(5, || !c.stats().warming));
    assert!(c.get::<_, u64>("blob").unwrap().is_none());
    let flushed = c.flush();
    // However it went, the tier must be (or come back) in service.
    let healthy = common::eventually(12, || {
        let _ = c.flush();
        c.health().is_healthy()
    });
    assert!(
        flushed.is_ok() && healthy,
        "flush: {flushed:?}; health after 12 s: {:?}",
        c.health()
    );
    assert_eq!(c.get::<_, u64>("real").unwrap().as_deref(), Some(&5));
    drop(c);
}

/// A record whose side-file reference claims u64::MAX bytes (checksum valid): a miss, no
/// panic, and the tier stays in service. (It overflowed the byte totals when the record was
/// dropped, in debug builds, and every retry of the recovery overflowed again.)
#[test]
fn a_side_file_reference_with_a_huge_length_is_damage_not_an_outage() {
    huge_blob_len(false);
}

/// Same record with the warm restart on (its ranking weighed the reference's length and
/// overflowed).
#[test]
fn a_side_file_reference_with_a_huge_length_is_damage_also_to_the_warm_restart() {
    huge_blob_len(true);
}

/// Extreme but well-formed header values: a live hit, then no trouble for eviction/explain.
#[test]
fn extreme_header_values_do_not_panic() {
    let dir = common::tempdir();
    let prefix = real_prefix(dir.path());
    let payload = postcard::to_allocvec(&7u64).unwrap();
    let rec = wellformed(
        &prefix,
        "ext",
        4 | 8,
        u64::MAX,
        u64::MAX,
        u64::MAX,
        &payload,
    );
    write_raw(dir.path(), "ext", &rec);
    let rec2 = wellformed(&prefix, "ext2", 8, u64::MAX - 1, 0, u64::MAX, &payload);
    write_raw(dir.path(), "ext2", &rec2);
    let c = Cache::builder()
        .path(dir.path())
        .durability(Durability::Immediate)
        .memory_capacity(1)
        .disk_capacity(1 << 20)
        .open()
        .unwrap();
    assert!(common::eventually(5, || !c.stats().warming));
    let _ = c.get::<_, u64>("ext").unwrap();
    let _ = c.get::<_, u64>("ext2").unwrap();
    let _ = c.explain::<_, u64>("ext");
    for i in 0..200u64 {
        c.insert(&i, vec![0u8; 10_000]).unwrap();
    }
    c.flush().unwrap();
    assert!(c.health().is_healthy(), "{:?}", c.health());
    drop(c);
}
