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
use std::marker::PhantomData;

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
    /// Integer vectors: a length, then each integer as postcard writes it (a byte for `i8`,
    /// else a varint, zigzag if signed; `usize` and `isize` as 64-bit); written by postcard
    /// itself, instantiated here.
    VecU16,
    VecU32,
    VecU64,
    VecUsize,
    VecI8,
    VecI16,
    VecI32,
    VecI64,
    VecIsize,
}

/// The bulk kind of `V`, if it is one.
#[inline]
pub(crate) fn kind<V: 'static>() -> Option<Kind> {
    kind_of(TypeId::of::<V>())
}

/// Whether a value of `size` bytes may be of a bulk type: a test cheap enough for generic
/// code to make on every field before it asks [`kind_of`].
#[inline]
pub(crate) fn may_be(size: usize) -> bool {
    size == std::mem::size_of::<Vec<u8>>() || size == std::mem::size_of::<Bytes>()
}

/// The types, each once: what their kind is, and the casts that only this list may make.
macro_rules! kinds {
    ($($ty:ty => $kind:ident by $take:expr,)*) => {
        /// The bulk kind of the type whose `TypeId` is `id`, if it is one.
        ///
        /// Inlined in a release build only, where it folds away in the caller's optimized
        /// generic code; in a debug build (`debug_assertions`, also set for dependencies by
        /// Cargo's dev profile) the caller is unoptimized, and calls this optimized copy.
        #[cfg_attr(not(debug_assertions), inline)]
        pub(crate) fn kind_of(id: TypeId) -> Option<Kind> {
            $(if id == TypeId::of::<$ty>() {
                return Some(Kind::$kind);
            })*
            None
        }

        /// The bulk kind `T` of a seed whose `TypeId` is `id`, if it is a `PhantomData<T>`
        /// (what `SeqAccess::next_element::<T>` and the like pass down).
        #[cfg_attr(not(debug_assertions), inline)]
        pub(crate) fn seed_kind_of(id: TypeId) -> Option<Kind> {
            $(if id == TypeId::of::<PhantomData<$ty>>() {
                return Some(Kind::$kind);
            })*
            None
        }

        /// The value at `ptr` as `Any`.
        ///
        /// # Safety
        /// `ptr` points to a live value of `kind`'s type, which outlives `'a`.
        pub(crate) unsafe fn any_at<'a>(kind: Kind, ptr: *const ()) -> &'a dyn Any {
            match kind {
                // SAFETY: the caller's promise.
                $(Kind::$kind => unsafe { &*(ptr as *const $ty) },)*
            }
        }

        /// Decodes a value of `kind` from the front of `input` (which then starts after it)
        /// into `out`; `None`, with nothing written, where postcard would fail.
        ///
        /// # Safety
        /// `out` is valid for a write of `kind`'s type.
        pub(crate) unsafe fn take_into(kind: Kind, input: &mut &[u8], out: *mut ()) -> Option<()> {
            match kind {
                $(Kind::$kind => {
                    let take: fn(&mut &[u8]) -> Option<$ty> = $take;
                    let v = take(input)?;
                    // SAFETY: the caller's promise.
                    unsafe { std::ptr::write(out as *mut $ty, v) };
                })*
            }
            Some(())
        }

        /// Decodes a value of `kind` from the front of `input`, which then starts after it.
        fn take(kind: Kind, input: &mut &[u8]) -> Option<Box<dyn Any>> {
            match kind {
                $(Kind::$kind => {
                    let take: fn(&mut &[u8]) -> Option<$ty> = $take;
                    Some(Box::new(take(input)?))
                })*
            }
        }
    };
}

kinds! {
    Vec<u8> => VecU8 by |i| Some(front::<&[u8]>(i)?.to_vec()),
    Bytes => Bytes by |i| Some(Bytes::of_slice(front::<&[u8]>(i)?)),
    String => String by |i| Some(front::<&str>(i)?.to_string()),
    Vec<f64> => VecF64 by |i| fixed_back(i, f64::from_le_bytes),
    Vec<f32> => VecF32 by |i| fixed_back(i, f32::from_le_bytes),
    Vec<u16> => VecU16 by |i| front(i),
    Vec<u32> => VecU32 by |i| front(i),
    Vec<u64> => VecU64 by |i| front(i),
    Vec<usize> => VecUsize by |i| front(i),
    Vec<i8> => VecI8 by |i| front(i),
    Vec<i16> => VecI16 by |i| front(i),
    Vec<i32> => VecI32 by |i| front(i),
    Vec<i64> => VecI64 by |i| front(i),
    Vec<isize> => VecIsize by |i| front(i),
}

/// `value`'s postcard bytes; `value` is of `kind` (else this panics: a bug of the caller).
pub(crate) fn encode(kind: Kind, value: &dyn Any) -> Vec<u8> {
    let mut out = Vec::with_capacity(size(kind, value));
    encode_into(kind, value, &mut out);
    out
}

/// [`encode`], appended to `out`.
pub(crate) fn encode_into(kind: Kind, value: &dyn Any, out: &mut Vec<u8>) {
    fn of<T: 'static>(value: &dyn Any) -> &T {
        value.downcast_ref::<T>().expect("a value of its kind")
    }
    match kind {
        Kind::VecU8 => raw(of::<Vec<u8>>(value), out),
        Kind::Bytes => raw(of::<Bytes>(value), out),
        Kind::String => raw(of::<String>(value).as_bytes(), out),
        Kind::VecF64 => fixed(of::<Vec<f64>>(value), |x| x.to_le_bytes(), out),
        Kind::VecF32 => fixed(of::<Vec<f32>>(value), |x| x.to_le_bytes(), out),
        Kind::VecU16 => postcard_into(of::<Vec<u16>>(value), out),
        Kind::VecU32 => postcard_into(of::<Vec<u32>>(value), out),
        Kind::VecU64 => postcard_into(of::<Vec<u64>>(value), out),
        Kind::VecUsize => postcard_into(of::<Vec<usize>>(value), out),
        Kind::VecI8 => postcard_into(of::<Vec<i8>>(value), out),
        Kind::VecI16 => postcard_into(of::<Vec<i16>>(value), out),
        Kind::VecI32 => postcard_into(of::<Vec<i32>>(value), out),
        Kind::VecI64 => postcard_into(of::<Vec<i64>>(value), out),
        Kind::VecIsize => postcard_into(of::<Vec<isize>>(value), out),
    }
}

/// The size of `value`'s postcard bytes, without writing them.
pub(crate) fn size(kind: Kind, value: &dyn Any) -> usize {
    fn len_and<T: 'static>(value: &dyn Any, len: impl Fn(&T) -> usize, each: usize) -> usize {
        let n = len(value.downcast_ref::<T>().expect("a value of its kind"));
        varint_len(n) + n * each
    }
    fn postcard_size<T: serde::Serialize + 'static>(value: &dyn Any) -> usize {
        let v = value.downcast_ref::<T>().expect("a value of its kind");
        postcard::experimental::serialized_size(v).expect("postcard sizes a vector of integers")
    }
    match kind {
        Kind::VecU8 => len_and(value, Vec::<u8>::len, 1),
        Kind::Bytes => len_and(value, |b: &Bytes| b.len(), 1),
        Kind::String => len_and(value, String::len, 1),
        Kind::VecF64 => len_and(value, Vec::<f64>::len, 8),
        Kind::VecF32 => len_and(value, Vec::<f32>::len, 4),
        Kind::VecU16 => postcard_size::<Vec<u16>>(value),
        Kind::VecU32 => postcard_size::<Vec<u32>>(value),
        Kind::VecU64 => postcard_size::<Vec<u64>>(value),
        Kind::VecUsize => postcard_size::<Vec<usize>>(value),
        Kind::VecI8 => postcard_size::<Vec<i8>>(value),
        Kind::VecI16 => postcard_size::<Vec<i16>>(value),
        Kind::VecI32 => postcard_size::<Vec<i32>>(value),
        Kind::VecI64 => postcard_size::<Vec<i64>>(value),
        Kind::VecIsize => postcard_size::<Vec<isize>>(value),
    }
}

/// Decodes a whole payload of `kind` as postcard would: `None` where postcard fails or bytes
/// are left over. A [`Bytes`] shares the thread's side file when the payload lies in it.
pub(crate) fn decode(kind: Kind, payload: &[u8]) -> Option<Box<dyn Any>> {
    let mut input = payload;
    let v = take(kind, &mut input)?;
    input.is_empty().then_some(v)
}

/// A length, then `bytes`: postcard's serde bytes, string, and sequence of `u8`.
fn raw(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(varint_len(bytes.len()) + bytes.len());
    push_varint(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// A length, then each element's fixed-size bytes.
fn fixed<T: Copy, const N: usize>(v: &[T], le: impl Fn(T) -> [u8; N], out: &mut Vec<u8>) {
    out.reserve(varint_len(v.len()) + v.len() * N);
    push_varint(out, v.len());
    for x in v {
        out.extend_from_slice(&le(*x));
    }
}

/// What [`fixed`] wrote, from the front of `input`.
fn fixed_back<T, const N: usize>(input: &mut &[u8], le: impl Fn([u8; N]) -> T) -> Option<Vec<T>> {
    let n = front::<usize>(input)?;
    let bytes = n.checked_mul(N).filter(|b| *b <= input.len())?;
    let (mine, rest) = input.split_at(bytes);
    *input = rest;
    let chunks = mine.chunks_exact(N);
    Some(chunks.map(|c| le(c.try_into().expect("N bytes"))).collect())
}

fn postcard_into<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) {
    // Cannot fail: a vector of integers always serializes, into a growable buffer.
    let taken = std::mem::take(out);
    *out = postcard::to_extend(v, taken).expect("postcard writes a vector of integers");
}

/// postcard's `take_from_bytes` on the front of `input`, which then starts after it.
fn front<'a, T: serde::Deserialize<'a>>(input: &mut &'a [u8]) -> Option<T> {
    let (v, rest) = postcard::take_from_bytes::<T>(input).ok()?;
    *input = rest;
    Some(v)
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
            same_as_postcard(
                (0..n).map(|i| w(i) as usize).collect::<Vec<_>>(),
                Kind::VecUsize,
            );
            same_as_postcard(
                (0..n).map(|i| w(i) as isize).collect::<Vec<_>>(),
                Kind::VecIsize,
            );
            same_as_postcard((0..n).map(|i| w(i) as i8).collect::<Vec<_>>(), Kind::VecI8);
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
        assert_eq!(kind::<Vec<u128>>(), None);
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
