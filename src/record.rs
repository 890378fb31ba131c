//! The byte layout of a record in the disk tier. Fixed-width integers are little-endian;
//! `var` is an unsigned LEB128 varint (7 bits a byte, low bits first, at most 10 bytes).
//!
//! ```text
//! offset  size  field
//!  0       1    format version (FORMAT_VERSION)
//!  1       1    flags: bit 0 = payload is self-describing (MessagePack); bit 1 = the payload
//!               is in a side file and the payload field holds its reference (below);
//!               bit 2 = a deadline follows; bit 3 = an idle limit follows
//!  2       8    type fingerprint (shape)
//! 10       4    type name id: low 32 bits of xxh3-64 of the value's `std::any::type_name`
//! 14      var   created, unix ms
//! ..      var   deadline, unix ms (only with flag bit 2)
//! ..      var   idle limit, ms (only with flag bit 3)
//! ..      var   n: number of generations, then n times: a label (var: 0 = "all", 1 = "root",
//!               2 = another label, whose id follows as u64), and its generation (var)
//! ..      var   k: length of the full key
//! ..       k    full key (postcard namespace ++ postcard key)
//! ..       ..   payload (the value: postcard, or MessagePack when flag bit 0 is set), or with
//!               flag bit 1 a blob reference: id u64, length u64, xxh3-64 of the file u64
//! end-8    8    checksum: xxh3-64 of every byte before it
//! ```
//! A record of a small value in the root namespace without tags carries 34 bytes besides its
//! key and payload (version 2 carried 88): the labels every record has ("all" and the root
//! namespace) take one byte each, and so do generations still at zero. The version byte and
//! the trailing checksum sit where they sat in versions 1 and 2, so that an intact record of
//! another version reads as outdated, not damaged; the unchecked header readers below
//! ([`created_ms`], [`has_idle_limit`]) read only this version. See `docs/format.md`.

use std::sync::LazyLock;

use xxhash_rust::xxh3::xxh3_64;

use crate::expiry::Expiry;
use crate::generations::{self, Generations};

/// Version of the layout above. A record of another version reads as a miss and is reclaimed
/// ([`Dead::Outdated`]).
pub(crate) const FORMAT_VERSION: u8 = 3;
/// Version, flags, fingerprint, type name id: the fixed part before the varints.
const FIXED: usize = 14;
const CHECKSUM: usize = 8;
/// Flag bit 0: the payload is MessagePack (self-describing) rather than postcard.
const SELF_DESCRIBING: u8 = 1;
/// Flag bit 1: the payload is in a side file (`blobs/`); the record holds a [`BlobRef`].
const IN_BLOB: u8 = 2;
/// Flag bit 2: a deadline is stored.
const HAS_DEADLINE: u8 = 4;
/// Flag bit 3: an idle limit is stored.
const HAS_IDLE: u8 = 8;
const KNOWN_FLAGS: u8 = SELF_DESCRIBING | IN_BLOB | HAS_DEADLINE | HAS_IDLE;

/// Label codes: the two labels nearly every record carries are stored as one byte.
const LABEL_ALL: u64 = 0;
const LABEL_ROOT: u64 = 1;
const LABEL_OTHER: u64 = 2;
static ALL_ID: LazyLock<u64> = LazyLock::new(|| generations::id(generations::ALL));
static ROOT_ID: LazyLock<u64> = LazyLock::new(|| generations::id(generations::ROOT));

/// Where a large payload lives: the side file `blobs/<id>` of `len` bytes whose xxh3-64 is `sum`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlobRef {
    pub id: u64,
    pub len: u64,
    pub sum: u64,
}

impl BlobRef {
    const SIZE: usize = 24;

    pub fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..].copy_from_slice(&self.sum.to_le_bytes());
        out
    }

    /// The reference in a payload, if it is one a file could match: 24 bytes, and a length a
    /// file can have (at most `i64::MAX`), so that adding it to byte totals cannot overflow.
    fn parse(payload: &[u8]) -> Option<BlobRef> {
        let blob = (payload.len() == Self::SIZE).then(|| BlobRef {
            id: le_u64(&payload[..8]),
            len: le_u64(&payload[8..16]),
            sum: le_u64(&payload[16..]),
        })?;
        (blob.len <= i64::MAX as u64).then_some(blob)
    }
}

/// What a record says about its value, besides the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Fingerprint of the value type's shape (`fingerprint::of`).
    pub fingerprint: u64,
    /// Id of the value type's name (`fingerprint::name_id`).
    pub type_name_id: u64,
    /// Whether the payload is self-describing (`codec::decode`).
    pub self_describing: bool,
    /// Whether the payload is in a side file (the record's payload is a [`BlobRef`]).
    pub in_blob: bool,
    pub expiry: Expiry,
    pub created_ms: u64,
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    Truncated,
    Checksum,
    /// Intact, but a field says what cannot be (a side-file reference no file can match).
    Malformed,
    /// Intact, but of another format version (or with flags this version does not know).
    Version(u8),
}

impl Damage {
    /// How a record that fails to decode for this reason is judged.
    pub fn dead(self) -> Dead {
        match self {
            Damage::Truncated | Damage::Checksum | Damage::Malformed => Dead::Damaged,
            Damage::Version(_) => Dead::Outdated,
        }
    }
}

/// A checked view of a stored record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub meta: Meta,
    gens: &'a [u8],
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Record<'a> {
    /// The (id, generation) pairs the record was written under.
    pub fn generations(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        let mut rest = self.gens;
        // `decode` checked the whole list, so reading it again cannot fail.
        std::iter::from_fn(move || read_label(&mut rest))
    }
}

/// Why a stored record is no longer live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dead {
    /// Fails its checksum, is truncated, or is stored under the wrong digest.
    Damaged,
    /// Intact but written in another format version: reclaimed silently, counted nowhere (a
    /// format upgrade empties the cache once; it is not damage, nor a read as another type).
    Outdated,
    /// Past its deadline or idle limit.
    Expired,
    /// Written under a tag or namespace generation that has since been bumped.
    Stale,
}

impl Record<'_> {
    /// When the record was last used: its last read (`last_access_ms`, if known) or its
    /// creation, whichever is later. Idle limits count from it.
    pub fn last_used_ms(&self, last_access_ms: Option<u64>) -> u64 {
        last_access_ms.unwrap_or(0).max(self.meta.created_ms)
    }

    /// When the record expires (or expired), given its last read: `u64::MAX` for never.
    pub fn expired_at(&self, last_access_ms: Option<u64>) -> u64 {
        self.meta
            .expiry
            .expired_at(self.last_used_ms(last_access_ms))
    }

    /// Whether the record stored under `digest` is dead at `now_ms`, and why. Says nothing of
    /// the value's type: that is checked when a reader decodes it.
    pub fn judge(
        &self,
        digest: u128,
        now_ms: u64,
        last_access_ms: Option<u64>,
        gens: &Generations,
    ) -> Option<Dead> {
        if xxhash_rust::xxh3::xxh3_128(self.key) != digest {
            Some(Dead::Damaged)
        } else if self
            .meta
            .expiry
            .is_expired(now_ms, self.last_used_ms(last_access_ms))
        {
            Some(Dead::Expired)
        } else if !gens.is_current(self.generations()) {
            Some(Dead::Stale)
        } else {
            None
        }
    }
}

pub(crate) fn encode(meta: &Meta, gens: &[(u64, u64)], key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED + 40 + 10 * gens.len() + key.len() + payload.len());
    out.push(FORMAT_VERSION);
    let mut flags = 0;
    if meta.self_describing {
        flags |= SELF_DESCRIBING;
    }
    if meta.in_blob {
        flags |= IN_BLOB;
    }
    if meta.expiry.deadline_ms != 0 {
        flags |= HAS_DEADLINE;
    }
    if meta.expiry.idle_ms != 0 {
        flags |= HAS_IDLE;
    }
    out.push(flags);
    out.extend_from_slice(&meta.fingerprint.to_le_bytes());
    out.extend_from_slice(&(meta.type_name_id as u32).to_le_bytes());
    put_var(&mut out, meta.created_ms);
    if meta.expiry.deadline_ms != 0 {
        put_var(&mut out, meta.expiry.deadline_ms);
    }
    if meta.expiry.idle_ms != 0 {
        put_var(&mut out, meta.expiry.idle_ms);
    }
    put_var(&mut out, gens.len() as u64);
    for &(id, generation) in gens {
        if id == *ALL_ID {
            put_var(&mut out, LABEL_ALL);
        } else if id == *ROOT_ID {
            put_var(&mut out, LABEL_ROOT);
        } else {
            put_var(&mut out, LABEL_OTHER);
            out.extend_from_slice(&id.to_le_bytes());
        }
        put_var(&mut out, generation);
    }
    put_var(&mut out, key.len() as u64);
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, Damage> {
    // Versions 1 and 2 share the trailing checksum and the version byte: an intact record of
    // another version is told apart from a damaged one whatever its length.
    if bytes.len() < 1 + CHECKSUM {
        return Err(Damage::Truncated);
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    if xxh3_64(body) != le_u64(sum) {
        return Err(Damage::Checksum);
    }
    if body[0] != FORMAT_VERSION {
        return Err(Damage::Version(body[0]));
    }
    if body.len() < FIXED {
        return Err(Damage::Truncated);
    }
    let flags = body[1];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Damage::Version(body[0]));
    }
    let mut rest = &body[FIXED..];
    let created_ms = take_var(&mut rest).ok_or(Damage::Truncated)?;
    let mut optional = |flag: u8| -> Result<u64, Damage> {
        if flags & flag == 0 {
            Ok(0)
        } else {
            take_var(&mut rest).ok_or(Damage::Truncated)
        }
    };
    let deadline_ms = optional(HAS_DEADLINE)?;
    let idle_ms = optional(HAS_IDLE)?;
    let n = take_var(&mut rest).ok_or(Damage::Truncated)?;
    let gens_start = rest;
    for _ in 0..n {
        read_label(&mut rest).ok_or(Damage::Truncated)?;
    }
    let gens = &gens_start[..gens_start.len() - rest.len()];
    let k = take_var(&mut rest).ok_or(Damage::Truncated)?;
    let k = usize::try_from(k).map_err(|_| Damage::Truncated)?;
    if k > rest.len() {
        return Err(Damage::Truncated);
    }
    let (key, payload) = rest.split_at(k);
    if flags & IN_BLOB != 0 && BlobRef::parse(payload).is_none() {
        return Err(Damage::Malformed);
    }
    Ok(Record {
        meta: Meta {
            fingerprint: le_u64(&body[2..10]),
            type_name_id: u64::from(le_u32(&body[10..14])),
            self_describing: flags & SELF_DESCRIBING != 0,
            in_blob: flags & IN_BLOB != 0,
            expiry: Expiry {
                deadline_ms,
                idle_ms,
            },
            created_ms,
        },
        gens,
        key,
        payload,
    })
}

impl Record<'_> {
    /// The side file holding the payload, if it is in one.
    pub fn blob(&self) -> Option<BlobRef> {
        if self.meta.in_blob {
            BlobRef::parse(self.payload)
        } else {
            None
        }
    }
}

/// The side file a stored record references, if any (for reclaiming it with the record).
pub(crate) fn blob_of(bytes: &[u8]) -> Option<BlobRef> {
    decode(bytes).ok()?.blob()
}

/// The creation time in a record's header (without checking the record); `None` for a
/// record of another version.
pub(crate) fn created_ms(bytes: &[u8]) -> Option<u64> {
    if bytes.first() != Some(&FORMAT_VERSION) {
        return None;
    }
    take_var(&mut bytes.get(FIXED..)?)
}

/// Whether the record's header sets an idle limit (without checking the record).
pub(crate) fn has_idle_limit(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FORMAT_VERSION) && bytes.get(1).is_some_and(|f| f & HAS_IDLE != 0)
}

/// One (label id, generation) pair of the list, advancing past it.
fn read_label(rest: &mut &[u8]) -> Option<(u64, u64)> {
    let id = match take_var(rest)? {
        LABEL_ALL => *ALL_ID,
        LABEL_ROOT => *ROOT_ID,
        LABEL_OTHER => {
            let (id, tail) = rest.split_first_chunk::<8>()?;
            *rest = tail;
            u64::from_le_bytes(*id)
        }
        _ => return None,
    };
    Some((id, take_var(rest)?))
}

fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint, advancing past it; `None` if it runs past the end or past 64 bits.
fn take_var(rest: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in rest.iter().enumerate().take(10) {
        let bits = u64::from(b & 0x7f);
        if i == 9 && bits > 1 {
            return None;
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            *rest = &rest[i + 1..];
            return Some(v);
        }
    }
    None
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

#[cfg(test)]
impl Meta {
    /// A plain record's metadata, for tests that write records by hand.
    pub fn for_test() -> Meta {
        Meta {
            fingerprint: 0,
            type_name_id: 0,
            self_describing: false,
            in_blob: false,
            expiry: Expiry::default(),
            created_ms: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            fingerprint: 0xfeed,
            type_name_id: 0xbeef,
            self_describing: true,
            in_blob: false,
            expiry: Expiry {
                deadline_ms: 123,
                idle_ms: 7,
            },
            created_ms: 99,
        }
    }

    /// `bytes` with byte `at` set to `value` and the checksum made good again.
    fn rewritten(bytes: &[u8], at: usize, value: u8) -> Vec<u8> {
        let mut out = bytes[..bytes.len() - CHECKSUM].to_vec();
        out[at] = value;
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    #[test]
    fn round_trip() {
        let gens = [(1, 2), (3, 4)];
        for self_describing in [false, true] {
            let meta = Meta {
                self_describing,
                ..meta()
            };
            let bytes = encode(&meta, &gens, b"key", b"payload");
            let r = decode(&bytes).unwrap();
            assert_eq!(r.meta, meta);
            assert_eq!(r.generations().collect::<Vec<_>>(), gens);
            assert_eq!(r.key, b"key");
            assert_eq!(r.payload, b"payload");
        }
    }

    #[test]
    fn golden_bytes() {
        // The on-disk format is a contract: changing these bytes needs a new FORMAT_VERSION.
        let bytes = encode(&meta(), &[(1, 2)], b"k", b"v");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            &hex[..hex.len() - 16],
            "030d\
             edfe000000000000\
             efbe0000\
             637b07\
             0102010000000000000002\
             016b76"
        );
    }

    #[test]
    fn a_plain_record_carries_34_bytes_besides_key_and_payload() {
        let meta = Meta {
            fingerprint: u64::MAX,
            type_name_id: u64::from(u32::MAX),
            self_describing: false,
            in_blob: false,
            expiry: Expiry::default(),
            created_ms: 1_800_000_000_000,
        };
        let gens = [(*ALL_ID, 0), (*ROOT_ID, 0)];
        let bytes = encode(&meta, &gens, b"key", b"payload");
        assert_eq!(bytes.len(), 34 + 3 + 7);
        let r = decode(&bytes).unwrap();
        assert_eq!(r.meta, meta);
        assert_eq!(r.generations().collect::<Vec<_>>(), gens);
    }

    #[test]
    fn extreme_values_round_trip() {
        let meta = Meta {
            fingerprint: u64::MAX,
            type_name_id: u64::from(u32::MAX),
            self_describing: true,
            in_blob: false,
            expiry: Expiry {
                deadline_ms: u64::MAX,
                idle_ms: u64::MAX,
            },
            created_ms: u64::MAX,
        };
        let gens = [
            (*ROOT_ID, u64::MAX),
            (0, 0),
            (*ALL_ID, 127),
            (u64::MAX, 128),
        ];
        let key = vec![7u8; 300];
        let bytes = encode(&meta, &gens, &key, b"");
        let r = decode(&bytes).unwrap();
        assert_eq!(r.meta, meta);
        assert_eq!(r.generations().collect::<Vec<_>>(), gens);
        assert_eq!(r.key, &key[..]);
        assert_eq!(r.payload, b"");
        assert_eq!(created_ms(&bytes), Some(u64::MAX));
    }

    #[test]
    fn a_side_file_reference_no_file_can_match_is_damage() {
        let meta = Meta {
            in_blob: true,
            ..meta()
        };
        let good = BlobRef {
            id: 1,
            len: 1 << 20,
            sum: 2,
        };
        let bytes = encode(&meta, &[], b"k", &good.to_bytes());
        assert_eq!(decode(&bytes).unwrap().blob(), Some(good));
        let huge = BlobRef {
            len: u64::MAX,
            ..good
        };
        let bytes = encode(&meta, &[], b"k", &huge.to_bytes());
        assert_eq!(decode(&bytes).unwrap_err(), Damage::Malformed);
        assert_eq!(blob_of(&bytes), None);
        let short = encode(&meta, &[], b"k", b"not a reference");
        assert_eq!(decode(&short).unwrap_err().dead(), Dead::Damaged);
    }

    #[test]
    fn varints_past_64_bits_or_the_end_are_refused() {
        let mut out = Vec::new();
        put_var(&mut out, u64::MAX);
        assert_eq!(out.len(), 10);
        assert_eq!(take_var(&mut &out[..]), Some(u64::MAX));
        let mut too_big = out.clone();
        too_big[9] = 0x02;
        assert_eq!(take_var(&mut &too_big[..]), None);
        assert_eq!(take_var(&mut &out[..9]), None);
        assert_eq!(take_var(&mut &[][..]), None);
    }

    #[test]
    fn header_readers_agree_with_decode() {
        let bytes = encode(&meta(), &[(1, 2)], b"k", b"v");
        assert_eq!(created_ms(&bytes), Some(99));
        assert!(has_idle_limit(&bytes));
        let plain = encode(&Meta::for_test(), &[], b"k", b"v");
        assert_eq!(created_ms(&plain), Some(1));
        assert!(!has_idle_limit(&plain));
        // Another version's header is not read as this one's.
        let old = rewritten(&bytes, 0, 2);
        assert_eq!(created_ms(&old), None);
        assert!(!has_idle_limit(&old));
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = encode(&meta(), &[(1, 2)], b"key", b"payload");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} bit {bit}");
                let dead = decode(&bad).err().map(Damage::dead);
                assert_eq!(dead, Some(Dead::Damaged), "flip at byte {i} bit {bit}");
            }
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn an_intact_record_of_another_version_is_outdated_not_damaged() {
        let bytes = encode(&meta(), &[(1, 2)], b"key", b"payload");
        for version in [0, 1, 2, 4, 255] {
            let old = rewritten(&bytes, 0, version);
            assert_eq!(decode(&old).unwrap_err(), Damage::Version(version));
            assert_eq!(decode(&old).err().map(Damage::dead), Some(Dead::Outdated));
        }
        // A short record of version 1 (its header was 8 bytes shorter) is outdated too.
        let short = rewritten(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0, 1);
        assert_eq!(decode(&short).unwrap_err(), Damage::Version(1));
    }

    #[test]
    fn unknown_flags_are_outdated() {
        let bytes = encode(&meta(), &[(1, 2)], b"key", b"payload");
        let future = rewritten(&bytes, 1, 0b1_0001);
        assert_eq!(decode(&future).unwrap_err().dead(), Dead::Outdated);
    }
}
