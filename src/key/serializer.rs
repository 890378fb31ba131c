//! A serde `Serializer` writing an injective encoding of the serde data model, for keys.
//!
//! Every value starts with a tag byte naming its kind, so `1u8`, `1u32`, `1u64` and `true`
//! never share an encoding (postcard writes all four as the byte `1`). Integers follow their tag
//! as LEB128 varints (zigzag for signed ones), floats as their bits, strings, bytes and names
//! with a varint length, and sequences, maps and structs end with [`END`], a byte that starts no
//! value, so a length the caller did not know up front costs nothing and no encoding is a prefix
//! of another. Decoding is unambiguous by induction, hence two values encode equally exactly
//! when they make the same serde calls, with two exceptions: a tuple is written as a sequence,
//! so `[1u8, 2]`, `(1u8, 2u8)`, `&[1u8, 2][..]` and `vec![1u8, 2]` are one key; and a map's
//! entries are written sorted by their encoding, so two equal maps are one key whatever order
//! they iterate in (a `HashMap`'s depends on its hasher's seed).
//!
//! The serializer keeps the message of an error raised by a `Serialize` impl (postcard drops it).

use std::fmt::Display;

use serde::ser::{self, Serialize};

/// Ends a sequence, tuple, map or struct. No value starts with it.
pub(crate) const END: u8 = 0x00;
pub(crate) const FALSE: u8 = 0x01;
pub(crate) const TRUE: u8 = 0x02;
pub(crate) const I8: u8 = 0x03;
pub(crate) const I16: u8 = 0x04;
pub(crate) const I32: u8 = 0x05;
pub(crate) const I64: u8 = 0x06;
pub(crate) const I128: u8 = 0x07;
pub(crate) const U8: u8 = 0x08;
pub(crate) const U16: u8 = 0x09;
pub(crate) const U32: u8 = 0x0A;
pub(crate) const U64: u8 = 0x0B;
pub(crate) const U128: u8 = 0x0C;
pub(crate) const F32: u8 = 0x0D;
pub(crate) const F64: u8 = 0x0E;
pub(crate) const CHAR: u8 = 0x0F;
pub(crate) const STR: u8 = 0x10;
pub(crate) const BYTES: u8 = 0x11;
pub(crate) const NONE: u8 = 0x12;
pub(crate) const SOME: u8 = 0x13;
pub(crate) const UNIT: u8 = 0x14;
pub(crate) const UNIT_STRUCT: u8 = 0x15;
pub(crate) const UNIT_VARIANT: u8 = 0x16;
pub(crate) const NEWTYPE_STRUCT: u8 = 0x17;
pub(crate) const NEWTYPE_VARIANT: u8 = 0x18;
/// Sequences and tuples alike.
pub(crate) const SEQ: u8 = 0x19;
pub(crate) const TUPLE_STRUCT: u8 = 0x1A;
pub(crate) const TUPLE_VARIANT: u8 = 0x1B;
pub(crate) const MAP: u8 = 0x1C;
pub(crate) const STRUCT: u8 = 0x1D;
pub(crate) const STRUCT_VARIANT: u8 = 0x1E;

/// Where the encoding goes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);

    #[inline]
    fn put_byte(&mut self, byte: u8) {
        self.put(&[byte]);
    }

    /// LEB128: seven bits a byte, low bits first, the high bit set on all but the last byte.
    #[inline]
    fn put_varint(&mut self, mut n: u128) {
        let mut buf = [0u8; 19]; // ceil(128 / 7)
        let mut len = 0;
        loop {
            let low = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                buf[len] = low;
                len += 1;
                break;
            }
            buf[len] = low | 0x80;
            len += 1;
        }
        self.put(&buf[..len]);
    }

    /// A string known by position (a namespace, a type, variant or field name): length first.
    #[inline]
    fn put_name(&mut self, name: &str) {
        self.put_varint(name.len() as u128);
        self.put(name.as_bytes());
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Writes nothing: for running a value's `Serialize` only to see whether it fails.
pub(crate) struct Discard;

impl Sink for Discard {
    #[inline]
    fn put(&mut self, _: &[u8]) {}
}

/// The error of a key's `Serialize` impl, with its message.
#[derive(Debug)]
pub(crate) struct KeyError(pub String);

impl Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: Display>(msg: T) -> Self {
        KeyError(msg.to_string())
    }
}

#[inline]
fn zigzag(n: i128) -> u128 {
    ((n << 1) ^ (n >> 127)) as u128
}

/// The serializer; `&mut Encoder` is also every compound serializer, each ending with [`END`].
pub(crate) struct Encoder<'a, S: Sink> {
    pub out: &'a mut S,
}

impl<S: Sink> Encoder<'_, S> {
    #[inline]
    fn unsigned(&mut self, tag: u8, n: u128) -> Result<(), KeyError> {
        self.out.put_byte(tag);
        self.out.put_varint(n);
        Ok(())
    }

    #[inline]
    fn signed(&mut self, tag: u8, n: i128) -> Result<(), KeyError> {
        self.unsigned(tag, zigzag(n))
    }

    #[inline]
    fn variant(&mut self, tag: u8, name: &str, index: u32, variant: &str) {
        self.out.put_byte(tag);
        self.out.put_name(name);
        self.out.put_varint(u128::from(index));
        self.out.put_name(variant);
    }

    #[inline]
    fn named(&mut self, tag: u8, name: &str) {
        self.out.put_byte(tag);
        self.out.put_name(name);
    }
}

impl<'e, 'a, S: Sink> ser::Serializer for &'e mut Encoder<'a, S> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = MapEncoder<'e, 'a, S>;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result<(), KeyError> {
        self.out.put_byte(if v { TRUE } else { FALSE });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.signed(I8, v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.signed(I16, v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.signed(I32, v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), KeyError> {
        self.signed(I64, v.into())
    }

    fn serialize_i128(self, v: i128) -> Result<(), KeyError> {
        self.signed(I128, v)
    }

    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.unsigned(U8, v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.unsigned(U16, v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.unsigned(U32, v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), KeyError> {
        self.unsigned(U64, v.into())
    }

    fn serialize_u128(self, v: u128) -> Result<(), KeyError> {
        self.unsigned(U128, v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), KeyError> {
        self.out.put_byte(F32);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), KeyError> {
        self.out.put_byte(F64);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), KeyError> {
        self.unsigned(CHAR, u32::from(v).into())
    }

    fn serialize_str(self, v: &str) -> Result<(), KeyError> {
        self.named(STR, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), KeyError> {
        self.out.put_byte(BYTES);
        self.out.put_varint(v.len() as u128);
        self.out.put(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), KeyError> {
        self.out.put_byte(NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), KeyError> {
        self.out.put_byte(SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), KeyError> {
        self.out.put_byte(UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), KeyError> {
        self.named(UNIT_STRUCT, name);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), KeyError> {
        self.variant(UNIT_VARIANT, name, index, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.named(NEWTYPE_STRUCT, name);
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.variant(NEWTYPE_VARIANT, name, index, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, KeyError> {
        self.out.put_byte(SEQ);
        Ok(self)
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self, KeyError> {
        self.out.put_byte(SEQ);
        Ok(self)
    }

    fn serialize_tuple_struct(self, name: &'static str, _len: usize) -> Result<Self, KeyError> {
        self.named(TUPLE_STRUCT, name);
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyError> {
        self.variant(TUPLE_VARIANT, name, index, variant);
        Ok(self)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapEncoder<'e, 'a, S>, KeyError> {
        self.out.put_byte(MAP);
        Ok(MapEncoder {
            outer: self,
            entries: Vec::new(),
        })
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Self, KeyError> {
        self.named(STRUCT, name);
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, KeyError> {
        self.variant(STRUCT_VARIANT, name, index, variant);
        Ok(self)
    }
}

/// Writes [`END`], closing any compound value.
#[inline]
fn end<S: Sink>(e: &mut Encoder<'_, S>) -> Result<(), KeyError> {
    e.out.put_byte(END);
    Ok(())
}

/// A struct field: its name, written as a `str` value so that it cannot be read as [`END`],
/// then its value.
#[inline]
fn field<S: Sink, T: Serialize + ?Sized>(
    e: &mut Encoder<'_, S>,
    key: &'static str,
    value: &T,
) -> Result<(), KeyError> {
    e.named(STR, key);
    value.serialize(e)
}

impl<S: Sink> ser::SerializeSeq for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}

impl<S: Sink> ser::SerializeTuple for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}

impl<S: Sink> ser::SerializeTupleStruct for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}

impl<S: Sink> ser::SerializeTupleVariant for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}

/// A map is a set of entries: two equal maps are one key whatever order they iterate in (a
/// `HashMap`'s order depends on its hasher's seed). So each entry is encoded on its own, and
/// the entries are written in the order of their encodings.
pub(crate) struct MapEncoder<'e, 'a, S: Sink> {
    outer: &'e mut Encoder<'a, S>,
    /// Each entry's encoding: key, then value.
    entries: Vec<Vec<u8>>,
}

impl<S: Sink> ser::SerializeMap for MapEncoder<'_, '_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        let mut entry = Vec::new();
        key.serialize(&mut Encoder { out: &mut entry })?;
        self.entries.push(entry);
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        let Some(entry) = self.entries.last_mut() else {
            return Err(KeyError("a map value came before its key".into()));
        };
        value.serialize(&mut Encoder { out: entry })
    }

    fn end(self) -> Result<(), KeyError> {
        let mut entries = self.entries;
        // Each entry is self-delimiting (key and value are encoded values), so the sorted
        // concatenation is still injective.
        entries.sort_unstable();
        for entry in &entries {
            self.outer.out.put(entry);
        }
        end(self.outer)
    }
}

impl<S: Sink> ser::SerializeStruct for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        field(self, key, value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}

impl<S: Sink> ser::SerializeStructVariant for &mut Encoder<'_, S> {
    type Ok = ();
    type Error = KeyError;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        field(self, key, value)
    }

    fn skip_field(&mut self, _key: &'static str) -> Result<(), KeyError> {
        Ok(())
    }

    fn end(self) -> Result<(), KeyError> {
        end(self)
    }
}
