//! Bulk values (byte strings, strings, vectors of numbers) encoded and decoded by non-generic
//! code of this crate, in exactly the bytes postcard writes for them.
//!
//! Generic code is compiled in the crate that instantiates it, at that crate's opt-level: the
//! `Serialize` of a user's `Vec<u8>` and postcard's serializer under it run in the user's
//! crate, per element, unoptimized in a debug build even when `tiered` is optimized (the
//! guide's "Debug builds"). [`kind`] is the whole generic part: a `TypeId` compared with the
//! types below. Everything else is compiled here, at `tiered`'s opt-level. A value of these
//! types also needs no decode-back check at insert: its round trip is known (and tested).
//!
//! The on-disk format does not change: a payload written here reads back through postcard and
//! the other way round (`tests` below check byte equality against postcard for every kind).

use std::any::{Any, TypeId};

use crate::bytes::Bytes;

/// A type whose postcard bytes this module writes and reads itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `Vec<u8>`: a length, then the bytes (postcard writes a `u8` as itself).
    VecU8,
    /// [`Bytes`]: serde bytes, the same bytes as a `Vec<u8>`.
    Bytes,
    /// `String`: a length, then its UTF-8.
    String,
    /// `Vec<f64>`: a length, then each float's 8 little-endian bytes.
    VecF64,
    /// `Vec<f32>`: a length, then each float's 4 little-endian bytes.
    VecF32,
    /// Integer vectors: a length, then each integer as postcard's varint (zigzag if signed);
    /// written by postcard itself, instantiated here.
    VecU16,
    VecU32,
    VecU64,
    VecI16,
    VecI32,
    VecI64,
}

/// The bulk kind of `V`, if it is one.
#[inline]
pub(crate) fn kind<V: 'static>() -> Option<Kind> {
    kind_of(TypeId::of::<V>())
}

fn kind_of(id: TypeId) -> Option<Kind> {
    let kinds = [
        (TypeId::of::<Vec<u8>>(), Kind::VecU8),
        (TypeId::of::<Bytes>(), Kind::Bytes),
        (TypeId::of::<String>(), Kind::String),
        (TypeId::of::<Vec<f64>>(), Kind::VecF64),
        (TypeId::of::<Vec<f32>>(), Kind::VecF32),
        (TypeId::of::<Vec<u16>>(), Kind::VecU16),
        (TypeId::of::<Vec<u32>>(), Kind::VecU32),
        (TypeId::of::<Vec<u64>>(), Kind::VecU64),
        (TypeId::of::<Vec<i16>>(), Kind::VecI16),
        (TypeId::of::<Vec<i32>>(), Kind::VecI32),
        (TypeId::of::<Vec<i64>>(), Kind::VecI64),
    ];
    kinds.iter().find(|(k, _)| *k == id).map(|(_, kind)| *kind)
}

/// `value`'s postcard bytes; `value` is of `kind` (else this panics: a bug of the caller).
pub(crate) fn encode(kind: Kind, value: &dyn Any) -> Vec<u8> {
    fn of<T: 'static>(value: &dyn Any) -> &T {
        value.downcast_ref::<T>().expect("a value of its kind")
    }
    match kind {
        Kind::VecU8 => raw(of::<Vec<u8>>(value)),
        Kind::Bytes => raw(of::<Bytes>(value)),
        Kind::String => raw(of::<String>(value).as_bytes()),
        Kind::VecF64 => fixed(of::<Vec<f64>>(value), |x| x.to_le_bytes()),
        Kind::VecF32 => fixed(of::<Vec<f32>>(value), |x| x.to_le_bytes()),
        Kind::VecU16 => postcard_bytes(of::<Vec<u16>>(value)),
        Kind::VecU32 => postcard_bytes(of::<Vec<u32>>(value)),
        Kind::VecU64 => postcard_bytes(of::<Vec<u64>>(value)),
        Kind::VecI16 => postcard_bytes(of::<Vec<i16>>(value)),
        Kind::VecI32 => postcard_bytes(of::<Vec<i32>>(value)),
        Kind::VecI64 => postcard_bytes(of::<Vec<i64>>(value)),
    }
}

/// The size of `value`'s postcard bytes, without writing them.
pub(crate) fn size(kind: Kind, value: &dyn Any) -> usize {
    fn len_and<T: 'static>(value: &dyn Any, len: impl Fn(&T) -> usize, each: usize) -> usize {
        let n = len(value.downcast_ref::<T>().expect("a value of its kind"));
        varint_len(n) + n * each
    }
    match kind {
        Kind::VecU8 => len_and(value, Vec::<u8>::len, 1),
        Kind::Bytes => len_and(value, |b: &Bytes| b.len(), 1),
        Kind::String => len_and(value, String::len, 1),
        Kind::VecF64 => len_and(value, Vec::<f64>::len, 8),
        Kind::VecF32 => len_and(value, Vec::<f32>::len, 4),
        // Varints: postcard sizes them (compiled here too).
        _ => encode(kind, value).len(),
    }
}

/// Decodes a payload of `kind` as postcard would: `None` where postcard fails or bytes are
/// left over. A [`Bytes`] shares the thread's side file when the payload lies in it.
pub(crate) fn decode(kind: Kind, payload: &[u8]) -> Option<Box<dyn Any>> {
    Some(match kind {
        Kind::VecU8 => Box::new(whole::<&[u8]>(payload)?.to_vec()),
        Kind::Bytes => Box::new(Bytes::of_slice(whole::<&[u8]>(payload)?)),
        Kind::String => Box::new(whole::<&str>(payload)?.to_string()),
        Kind::VecF64 => Box::new(fixed_back(payload, f64::from_le_bytes)?),
        Kind::VecF32 => Box::new(fixed_back(payload, f32::from_le_bytes)?),
        Kind::VecU16 => Box::new(whole::<Vec<u16>>(payload)?),
        Kind::VecU32 => Box::new(whole::<Vec<u32>>(payload)?),
        Kind::VecU64 => Box::new(whole::<Vec<u64>>(payload)?),
        Kind::VecI16 => Box::new(whole::<Vec<i16>>(payload)?),
        Kind::VecI32 => Box::new(whole::<Vec<i32>>(payload)?),
        Kind::VecI64 => Box::new(whole::<Vec<i64>>(payload)?),
    })
}

/// A length, then `bytes`: postcard's serde bytes, string, and sequence of `u8`.
fn raw(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(varint_len(bytes.len()) + bytes.len());
    push_varint(&mut out, bytes.len());
    out.extend_from_slice(bytes);
    out
}

/// A length, then each element's fixed-size bytes.
fn fixed<T: Copy, const N: usize>(v: &[T], le: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(varint_len(v.len()) + v.len() * N);
    push_varint(&mut out, v.len());
    for x in v {
        out.extend_from_slice(&le(*x));
    }
    out
}

/// What [`fixed`] wrote.
fn fixed_back<T, const N: usize>(payload: &[u8], le: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
    let (n, rest) = postcard::take_from_bytes::<usize>(payload).ok()?;
    if rest.len() / N != n || rest.len() % N != 0 {
        return None;
    }
    let chunks = rest.chunks_exact(N);
    Some(chunks.map(|c| le(c.try_into().expect("N bytes"))).collect())
}

fn postcard_bytes<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Cannot fail: a vector of integers always serializes, into a growable buffer.
    postcard::to_allocvec(v).expect("postcard writes a vector of integers")
}

/// postcard's `take_from_bytes`, with nothing left over.
fn whole<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Option<T> {
    match postcard::take_from_bytes::<T>(payload) {
        Ok((v, [])) => Some(v),
        _ => None,
    }
}

/// postcard's length prefix: LEB128, seven bits a byte, least significant first.
fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(n: usize) -> usize {
    (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use super::*;

    /// `v`'s bytes here are postcard's, its size is their length, and each decoder reads the
    /// other's bytes back into `v`; a byte more or less is refused.
    fn same_as_postcard<V>(v: V, expected: Kind)
    where
        V: Serialize + DeserializeOwned + PartialEq + Debug + 'static,
    {
        let kind = kind::<V>().unwrap_or_else(|| panic!("{v:?}: no kind"));
        assert_eq!(kind, expected);
        let ours = encode(kind, &v);
        let theirs = postcard::to_allocvec(&v).unwrap();
        assert_eq!(ours, theirs, "{v:?}");
        assert_eq!(size(kind, &v), theirs.len(), "{v:?}");
        let back = *decode(kind, &theirs).unwrap().downcast::<V>().unwrap();
        assert_eq!(back, v);
        assert_eq!(postcard::from_bytes::<V>(&ours).unwrap(), v);
        let mut longer = ours.clone();
        longer.push(0);
        assert!(decode(kind, &longer).is_none(), "{v:?}: a byte left over");
        if !ours.is_empty() {
            assert!(
                decode(kind, &ours[..ours.len() - 1]).is_none(),
                "{v:?}: truncated"
            );
        }
    }

    /// Lengths around each varint byte boundary, odd ones, and none.
    const LENGTHS: [usize; 9] = [0, 1, 3, 127, 128, 129, 255, 16_383, 16_385];

    #[test]
    fn every_kind_writes_and_reads_postcards_bytes() {
        for n in LENGTHS {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            same_as_postcard(bytes.clone(), Kind::VecU8);
            same_as_postcard(Bytes::from(bytes.clone()), Kind::Bytes);
            let text: String = (0..n).map(|i| ['a', 'é', '€', '𝄞'][i % 4]).collect();
            same_as_postcard(text, Kind::String);
            let f = |i: usize| (i as f64 - 100.5) * 1e-3;
            same_as_postcard((0..n).map(f).collect::<Vec<f64>>(), Kind::VecF64);
            same_as_postcard(
                (0..n).map(|i| f(i) as f32).collect::<Vec<f32>>(),
                Kind::VecF32,
            );
            let w = |i: usize| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            same_as_postcard(
                (0..n).map(|i| w(i) as u16).collect::<Vec<_>>(),
                Kind::VecU16,
            );
            same_as_postcard(
                (0..n).map(|i| w(i) as u32).collect::<Vec<_>>(),
                Kind::VecU32,
            );
            same_as_postcard((0..n).map(w).collect::<Vec<_>>(), Kind::VecU64);
            same_as_postcard(
                (0..n).map(|i| w(i) as i16).collect::<Vec<_>>(),
                Kind::VecI16,
            );
            same_as_postcard(
                (0..n).map(|i| w(i) as i32).collect::<Vec<_>>(),
                Kind::VecI32,
            );
            same_as_postcard(
                (0..n).map(|i| w(i) as i64).collect::<Vec<_>>(),
                Kind::VecI64,
            );
        }
        // Special floats keep their bits.
        let floats = vec![f64::NAN, -0.0, f64::INFINITY, f64::MIN_POSITIVE, f64::MAX];
        let ours = encode(Kind::VecF64, &floats);
        assert_eq!(ours, postcard::to_allocvec(&floats).unwrap());
        let back = *decode(Kind::VecF64, &ours)
            .unwrap()
            .downcast::<Vec<f64>>()
            .unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back), bits(&floats));
    }

    #[test]
    fn other_types_have_no_kind() {
        assert_eq!(kind::<Vec<i8>>(), None);
        assert_eq!(kind::<Vec<(u8, u8)>>(), None);
        assert_eq!(kind::<Box<[u8]>>(), None);
        assert_eq!(kind::<u64>(), None);
    }

    #[test]
    fn invalid_utf8_does_not_decode_as_a_string() {
        assert!(decode(Kind::String, &[2, 0xC3, 0x28]).is_none());
    }

    #[test]
    fn varint_lengths_match_the_bytes() {
        for n in [0, 1, 127, 128, 16_383, 16_384, usize::MAX >> 1, usize::MAX] {
            let mut out = Vec::new();
            push_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n), "{n}");
            assert_eq!(out, postcard::to_allocvec(&n).unwrap(), "{n}");
        }
    }
}
