//! The byte layout of a record in the disk tier. All integers are little-endian.
//!
//! ```text
//! offset  size  field
//!  0       1    format version (FORMAT_VERSION)
//!  1       1    flags (reserved, 0)
//!  2       2    n: number of generations
//!  4       4    k: length of the full key
//!  8       8    type fingerprint
//! 16       8    deadline, unix ms (0: none)
//! 24       8    created, unix ms
//! 32       8    idle limit, ms (0: none)
//! 40    16*n    generations: (id u64, generation u64) each
//! ..       k    full key (postcard namespace ++ postcard key)
//! ..       ..   payload (postcard value)
//! end-8    8    checksum: xxh3-64 of every byte before it
//! ```
//! The fixed-width header lets the sweeper and tools judge a record without decoding its payload.
//! See `docs/format.md`.

use xxhash_rust::xxh3::xxh3_64;

use crate::expiry::Expiry;
use crate::generations::Generations;

/// Version of the layout above. A record of another version reads as a miss.
pub(crate) const FORMAT_VERSION: u8 = 1;
const HEADER: usize = 40;
const CHECKSUM: usize = 8;

/// What a record says about its value, besides the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub fingerprint: u64,
    pub expiry: Expiry,
    pub created_ms: u64,
}

/// Why a stored record cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    Truncated,
    Checksum,
    Version(u8),
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
    /// Fails its checksum, is of an unknown version, or is stored under the wrong digest.
    Damaged,
    /// Past its deadline or idle limit.
    Expired,
    /// Written under a tag or namespace generation that has since been bumped.
    Stale,
}

/// Whether the record stored under `digest` is dead at `now_ms`, and why. Says nothing of the
/// value's type: that is checked when a reader decodes it.
pub(crate) fn judge(
    bytes: &[u8],
    digest: u128,
    now_ms: u64,
    last_access_ms: Option<u64>,
    gens: &Generations,
) -> Option<Dead> {
    match decode(bytes) {
        Err(_) => Some(Dead::Damaged),
        Ok(r) => r.judge(digest, now_ms, last_access_ms, gens),
    }
}

impl Record<'_> {
    /// See [`judge`].
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
    out.push(0);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&meta.fingerprint.to_le_bytes());
    out.extend_from_slice(&meta.expiry.deadline_ms.to_le_bytes());
    out.extend_from_slice(&meta.created_ms.to_le_bytes());
    out.extend_from_slice(&meta.expiry.idle_ms.to_le_bytes());
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
    if bytes.len() < HEADER + CHECKSUM {
        return Err(Damage::Truncated);
    }
    let (body, sum) = bytes.split_at(bytes.len() - CHECKSUM);
    if xxh3_64(body) != le_u64(sum) {
        return Err(Damage::Checksum);
    }
    if body[0] != FORMAT_VERSION {
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
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            fingerprint: 0xfeed,
            expiry: Expiry {
                deadline_ms: 123,
                idle_ms: 7,
            },
            created_ms: 99,
        }
    }

    #[test]
    fn round_trip() {
        let gens = [(1, 2), (3, 4)];
        let bytes = encode(&meta(), &gens, b"key", b"payload");
        let r = decode(&bytes).unwrap();
        assert_eq!(r.meta, meta());
        assert_eq!(r.generations().collect::<Vec<_>>(), gens);
        assert_eq!(r.key, b"key");
        assert_eq!(r.payload, b"payload");
    }

    #[test]
    fn golden_bytes() {
        // The on-disk format is a contract: changing these bytes needs a new FORMAT_VERSION.
        let bytes = encode(&meta(), &[(1, 2)], b"k", b"v");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            &hex[..hex.len() - 16],
            "0100010001000000edfe0000000000007b00000000000000\
             63000000000000000700000000000000\
             01000000000000000200000000000000\
             6b76"
        );
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = encode(&meta(), &[(1, 2)], b"key", b"payload");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} bit {bit}");
            }
        }
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err());
        }
    }
}

#[cfg(test)]
impl Meta {
    /// A plain record's metadata, for tests that write records by hand.
    pub fn for_test() -> Meta {
        Meta {
            fingerprint: 0,
            expiry: Expiry::default(),
            created_ms: 1,
        }
    }
}
