//! The byte layout of a record in the disk tier. All integers are little-endian.
//!
//! ```text
//! offset  size  field
//!  0       1    format version (FORMAT_VERSION)
//!  1       1    flags: bit 0 = payload is self-describing (MessagePack); bit 1 = the payload
//!               is in a side file and the payload field holds its reference (below)
//!  2       2    n: number of generations
//!  4       4    k: length of the full key
//!  8       8    type fingerprint (shape)
//! 16       8    deadline, unix ms (0: none)
//! 24       8    created, unix ms
//! 32       8    idle limit, ms (0: none)
//! 40       8    type name id: xxh3-64 of the value's `std::any::type_name`
//! 48    16*n    generations: (id u64, generation u64) each
//! ..       k    full key (postcard namespace ++ postcard key)
//! ..       ..   payload (the value: postcard, or MessagePack when flag bit 0 is set), or with
//!               flag bit 1 a blob reference: id u64, length u64, xxh3-64 of the file u64
//! end-8    8    checksum: xxh3-64 of every byte before it
//! ```
//! The fixed-width header lets the sweeper and tools judge a record without decoding its payload.
//! Deadline, created and idle limit keep the offsets they had in version 1, so that the unchecked
//! header readers below ([`created_ms`], [`has_idle_limit`]) still read a record of version 1
//! right until the sweeper reclaims it. See `docs/format.md`.

use xxhash_rust::xxh3::xxh3_64;

use crate::expiry::Expiry;
use crate::generations::Generations;

/// Version of the layout above. A record of another version reads as a miss and is reclaimed
/// ([`Dead::Outdated`]).
pub(crate) const FORMAT_VERSION: u8 = 2;
const HEADER: usize = 48;
const CHECKSUM: usize = 8;
/// Flag bit 0: the payload is MessagePack (self-describing) rather than postcard.
const SELF_DESCRIBING: u8 = 1;
/// Flag bit 1: the payload is in a side file (`blobs/`); the record holds a [`BlobRef`].
const IN_BLOB: u8 = 2;

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

    fn parse(payload: &[u8]) -> Option<BlobRef> {
        (payload.len() == Self::SIZE).then(|| BlobRef {
            id: le_u64(&payload[..8]),
            len: le_u64(&payload[8..16]),
            sum: le_u64(&payload[16..]),
        })
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
    /// Intact, but of another format version (or with flags this version does not know).
    Version(u8),
}

impl Damage {
    /// How a record that fails to decode for this reason is judged.
    pub fn dead(self) -> Dead {
        match self {
            Damage::Truncated | Damage::Checksum => Dead::Damaged,
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
        self.gens
            .chunks_exact(16)
            .map(|c| (le_u64(&c[..8]), le_u64(&c[8..])))
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
    /// Whether the record stored under `digest` is dead at `now_ms`, and why. Says nothing of
    /// the value's type: that is checked when a reader decodes it.
    pub fn judge(
        &self,
        digest: u128,
        now_ms: u64,
        last_access_ms: Option<u64>,
        gens: &Generations,
    ) -> Option<Dead> {
        let last_access = last_access_ms.unwrap_or(self.meta.created_ms);
        if xxhash_rust::xxh3::xxh3_128(self.key) != digest {
            Some(Dead::Damaged)
        } else if self
            .meta
            .expiry
            .is_expired(now_ms, last_access.max(self.meta.created_ms))
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
    // Both counts are bounded by what a caller can build; clamp rather than panic regardless.
    let n = u16::try_from(gens.len()).unwrap_or(u16::MAX);
    let gens = &gens[..usize::from(n)];
    let mut out = Vec::with_capacity(HEADER + 16 * gens.len() + key.len() + payload.len() + 8);
    out.push(FORMAT_VERSION);
    let mut flags = 0;
    if meta.self_describing {
        flags |= SELF_DESCRIBING;
    }
    if meta.in_blob {
        flags |= IN_BLOB;
    }
    out.push(flags);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.fingerprint.to_le_bytes());
    out.extend_from_slice(&meta.expiry.deadline_ms.to_le_bytes());
    out.extend_from_slice(&meta.created_ms.to_le_bytes());
    out.extend_from_slice(&meta.expiry.idle_ms.to_le_bytes());
    out.extend_from_slice(&meta.type_name_id.to_le_bytes());
    for (id, generation) in gens {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&generation.to_le_bytes());
    }
    out.extend_from_slice(key);
    out.extend_from_slice(payload);
    let sum = xxh3_64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, Damage> {
    // Version 1 records share the trailing checksum and the version byte: an intact record of
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
    if body.len() < HEADER {
        return Err(Damage::Truncated);
    }
    if body[1] & !(SELF_DESCRIBING | IN_BLOB) != 0 {
        return Err(Damage::Version(body[0]));
    }
    let n = usize::from(u16::from_le_bytes([body[2], body[3]]));
    let k = u32::from_le_bytes([body[4], body[5], body[6], body[7]]) as usize;
    let gens_end = HEADER + 16 * n;
    let key_end = gens_end.checked_add(k).ok_or(Damage::Truncated)?;
    if key_end > body.len() {
        return Err(Damage::Truncated);
    }
    Ok(Record {
        meta: Meta {
            fingerprint: le_u64(&body[8..16]),
            type_name_id: le_u64(&body[40..48]),
            self_describing: body[1] & SELF_DESCRIBING != 0,
            in_blob: body[1] & IN_BLOB != 0,
            expiry: Expiry {
                deadline_ms: le_u64(&body[16..24]),
                idle_ms: le_u64(&body[32..40]),
            },
            created_ms: le_u64(&body[24..32]),
        },
        gens: &body[HEADER..gens_end],
        key: &body[gens_end..key_end],
        payload: &body[key_end..],
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

/// The creation time in a record's header (without checking the record).
pub(crate) fn created_ms(bytes: &[u8]) -> Option<u64> {
    bytes.get(24..32).map(le_u64)
}

/// Whether the record's header sets an idle limit (without checking the record).
pub(crate) fn has_idle_limit(bytes: &[u8]) -> bool {
    bytes.get(32..40).is_some_and(|b| b != [0u8; 8])
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
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
            "0201010001000000edfe0000000000007b00000000000000\
             63000000000000000700000000000000efbe000000000000\
             01000000000000000200000000000000\
             6b76"
        );
    }

    #[test]
    fn header_readers_agree_with_decode() {
        let bytes = encode(&meta(), &[(1, 2)], b"k", b"v");
        assert_eq!(created_ms(&bytes), Some(99));
        assert!(has_idle_limit(&bytes));
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
        for version in [0, 1, 3, 255] {
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
        let future = rewritten(&bytes, 1, 0b101);
        assert_eq!(decode(&future).unwrap_err().dead(), Dead::Outdated);
    }
}
