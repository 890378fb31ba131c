//! postcard's format, written and read by a serializer and a deserializer of this crate, so
//! that a field of a bulk type (the `Vec<f64>` of a user's struct) goes whole to `bulk.rs`.
//!
//! A user's `#[derive(Serialize)]` is generic over the serializer and is compiled in the user's
//! crate, and so is everything it calls with postcard's serializer: serde's `Vec` impl and
//! postcard's per-element code, unoptimized in a debug build. With this crate's serializer the
//! generic part of each field is a `TypeId` test; a field of a bulk type is then written or
//! read by non-generic code compiled here, and every primitive by a non-generic method.
//!
//! The bytes are postcard's, byte for byte (`tests` below compare them for every serde shape),
//! and every primitive is read by postcard itself (`take_from_bytes`, instantiated here), so
//! what postcard refuses is refused here too.

use std::any::TypeId;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::OnceLock;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

use crate::codec::bulk;

/// What went wrong, as text: a payload that does not decode, or a `Serialize` that failed.
#[derive(Debug)]
pub(crate) struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

impl From<postcard::Error> for Error {
    fn from(e: postcard::Error) -> Self {
        Error(e.to_string())
    }
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// `value`'s postcard bytes.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut w = Writer { out: Vec::new() };
    put(&mut w, value)?;
    Ok(w.out)
}

/// A `T` from the front of `input`, and what is left after it.
pub(crate) fn take_from_bytes<'de, T: de::Deserialize<'de>>(
    input: &'de [u8],
) -> Result<(T, &'de [u8])> {
    let mut r = Reader { input };
    let v = T::deserialize(&mut r)?;
    Ok((v, r.input))
}

/// Writes postcard's bytes into `out`.
pub(crate) struct Writer {
    out: Vec<u8>,
}

/// Writes `value`: whole, by `bulk.rs`, if it is of a bulk type; else through its `Serialize`.
#[inline]
fn put<T: Serialize + ?Sized>(w: &mut Writer, value: &T) -> Result<()> {
    if bulk::may_be(std::mem::size_of_val(value)) {
        if let Some(kind) = bulk::kind_of(typeid::of::<T>()) {
            // SAFETY: `T` has the `TypeId` of `kind`'s type (a bulk type has no lifetimes, so
            // it is that very type), and `value` is a live `&T`.
            let any = unsafe { bulk::any_at(kind, value as *const T as *const ()) };
            bulk::encode_into(kind, any, &mut w.out);
            return Ok(());
        }
    }
    value.serialize(w)
}

impl Writer {
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn varint(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn len(&mut self, len: Option<usize>) -> Result<()> {
        let len = len.ok_or_else(|| Error("The length of a sequence must be known".into()))?;
        self.varint(len as u128);
        Ok(())
    }

    fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u128);
        self.out.extend_from_slice(v);
    }
}

fn zigzag(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

impl ser::Serializer for &mut Writer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }
    fn serialize_bool(self, v: bool) -> Result<()> {
        self.byte(v as u8);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<()> {
        self.byte(v as u8);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<()> {
        self.varint(zigzag(v.into()) as u16 as u128);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<()> {
        self.varint(zigzag(v.into()) as u32 as u128);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<()> {
        self.varint(zigzag(v.into()) as u64 as u128);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<()> {
        self.varint(zigzag(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<()> {
        self.byte(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<()> {
        self.varint(v.into());
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<()> {
        self.varint(v.into());
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<()> {
        self.varint(v.into());
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<()> {
        self.varint(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<()> {
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result<()> {
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<()> {
        self.bytes(v.encode_utf8(&mut [0; 4]).as_bytes());
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<()> {
        self.bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<()> {
        self.bytes(v);
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.byte(0);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        self.byte(1);
        put(self, value)
    }
    fn serialize_unit(self) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<()> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _: &'static str,
    ) -> Result<()> {
        self.varint(index.into());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<()> {
        put(self, value)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.varint(index.into());
        put(self, value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self> {
        self.len(len)?;
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.varint(index.into());
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self> {
        self.len(len)?;
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self> {
        self.varint(index.into());
        Ok(self)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<()> {
        self.bytes(value.to_string().as_bytes());
        Ok(())
    }
}

/// The compound parts: each element, field, key and value goes through [`put`].
macro_rules! compound {
    ($($trait:ident { $($method:ident($($name:ident: $ty:ty),*)),* })*) => {$(
        impl ser::$trait for &mut Writer {
            type Ok = ();
            type Error = Error;
            $(fn $method<T: Serialize + ?Sized>(&mut self, $($name: $ty,)* value: &T) -> Result<()> {
                $(let _ = $name;)*
                put(self, value)
            })*
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

compound! {
    SerializeSeq { serialize_element() }
    SerializeTuple { serialize_element() }
    SerializeTupleStruct { serialize_field() }
    SerializeTupleVariant { serialize_field() }
    SerializeMap { serialize_key(), serialize_value() }
}

/// A struct's fields. A field left out by `skip_serializing_if` is refused: postcard's bytes
/// name no field, so the next field's bytes would be read back as the skipped one (a wrong
/// value that decodes cleanly); the codec then stores the value as MessagePack, which names
/// its fields.
macro_rules! structs {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Writer {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                _key: &'static str,
                value: &T,
            ) -> Result<()> {
                put(self, value)
            }
            fn skip_field(&mut self, key: &'static str) -> Result<()> {
                Err(Error(format!(
                    "field `{key}` is skipped (skip_serializing_if): postcard's bytes would be \
                     read back into the wrong fields"
                )))
            }
            fn end(self) -> Result<()> {
                Ok(())
            }
        }
    )*};
}

structs!(SerializeStruct, SerializeStructVariant);

/// Reads postcard's bytes from the front of `input`.
pub(crate) struct Reader<'de> {
    input: &'de [u8],
}

/// Reads a `T` through its seed: whole, by `bulk.rs`, if the seed is a `PhantomData` of a bulk
/// type (what `next_element::<Vec<f64>>()` passes); else through the seed.
#[inline]
fn get<'de, S: DeserializeSeed<'de>>(r: &mut Reader<'de>, seed: S) -> Result<S::Value> {
    if bulk::may_be(std::mem::size_of::<S::Value>()) {
        if let Some(kind) = bulk::seed_kind_of(typeid::of::<S>()) {
            // SAFETY: `S` is `PhantomData<T>` for `kind`'s type `T` (same `TypeId`; `T` has
            // no lifetimes), whose `Value` is `T`.
            return unsafe { take_as::<S::Value>(r, kind) };
        }
    }
    seed.deserialize(r)
}

/// A value of `kind` from the front of `r`, read by `bulk.rs`.
///
/// # Safety
/// `T` is `kind`'s type.
unsafe fn take_as<T>(r: &mut Reader<'_>, kind: bulk::Kind) -> Result<T> {
    let mut slot = MaybeUninit::<T>::uninit();
    // SAFETY: `slot` has room for a value of `kind`'s type (the caller's promise), and holds
    // one once `take_into` says it wrote it.
    match unsafe { bulk::take_into(kind, &mut r.input, slot.as_mut_ptr().cast()) } {
        Some(()) => Ok(unsafe { slot.assume_init() }),
        None => Err(Error(format!("a {kind:?} that does not decode"))),
    }
}

/// The kind of the bulk `Vec<T>` whose `Deserialize` hands `deserialize_seq` a visitor of
/// this `TypeId` (serde's own, private: learnt once by asking each `Vec<T>` with [`Probe`]).
/// A `Vec<T>` reached without a seed (inside an `Option`, a newtype struct) is then still
/// read whole.
fn seq_visitor_kind(id: TypeId) -> Option<bulk::Kind> {
    static VISITORS: OnceLock<Vec<(TypeId, bulk::Kind)>> = OnceLock::new();
    let visitors = VISITORS.get_or_init(|| {
        let mut found = Vec::new();
        Probe::learn::<Vec<u8>>(&mut found);
        Probe::learn::<Vec<f64>>(&mut found);
        Probe::learn::<Vec<f32>>(&mut found);
        Probe::learn::<Vec<u16>>(&mut found);
        Probe::learn::<Vec<u32>>(&mut found);
        Probe::learn::<Vec<u64>>(&mut found);
        Probe::learn::<Vec<usize>>(&mut found);
        Probe::learn::<Vec<i8>>(&mut found);
        Probe::learn::<Vec<i16>>(&mut found);
        Probe::learn::<Vec<i32>>(&mut found);
        Probe::learn::<Vec<i64>>(&mut found);
        Probe::learn::<Vec<isize>>(&mut found);
        found
    });
    visitors
        .iter()
        .find(|(v, _)| *v == id)
        .map(|(_, kind)| *kind)
}

/// A deserializer that answers nothing and notes the visitor handed to `deserialize_seq`
/// and the type of value that visitor makes.
struct Probe(Option<(TypeId, TypeId)>);

impl Probe {
    /// Notes in `found` the visitor `T::deserialize` hands to `deserialize_seq`, if that
    /// visitor makes a `T` and `T` is a bulk type.
    fn learn<T: de::DeserializeOwned + 'static>(found: &mut Vec<(TypeId, bulk::Kind)>) {
        let Some(kind) = bulk::kind::<T>() else {
            return;
        };
        let mut probe = Probe(None);
        let _ = T::deserialize(&mut probe);
        if let Some((visitor, value)) = probe.0 {
            if value == TypeId::of::<T>() {
                found.push((visitor, kind));
            }
        }
    }
}

impl<'de> de::Deserializer<'de> for &mut Probe {
    type Error = Error;
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Error("a probe".into()))
    }
    fn deserialize_seq<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        self.0 = Some((typeid::of::<V>(), typeid::of::<V::Value>()));
        Err(Error("a probe".into()))
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

impl<'de> Reader<'de> {
    /// A primitive, read by postcard.
    #[cfg_attr(not(debug_assertions), inline)]
    fn take<T: de::Deserialize<'de>>(&mut self) -> Result<T> {
        let (v, rest) = postcard::take_from_bytes::<T>(self.input)?;
        self.input = rest;
        Ok(v)
    }
}

/// Non-generic readers of each primitive, so that a user's debug build calls optimized code
/// (inlined in a release build only, as `bulk::kind_of` is).
macro_rules! primitives {
    ($($name:ident: $ty:ty),*) => {
        impl<'de> Reader<'de> {
            $(#[cfg_attr(not(debug_assertions), inline)]
            fn $name(&mut self) -> Result<$ty> {
                self.take()
            })*
        }
    };
}

primitives! {
    bool: bool, i8: i8, i16: i16, i32: i32, i64: i64, i128: i128,
    u8: u8, u16: u16, u32: u32, u64: u64, u128: u128, f32: f32, f64: f64, char: char,
    usize: usize, str: &'de str, bytes: &'de [u8]
}

/// A sequence of `len` elements (a struct, a tuple or a sequence), or of `len` entries.
struct Elements<'a, 'de> {
    reader: &'a mut Reader<'de>,
    len: usize,
}

impl<'de> de::SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Error;
    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        get(self.reader, seed).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // As postcard: no more elements than bytes left.
        (self.reader.input.len() >= self.len).then_some(self.len)
    }
}

impl<'de> de::MapAccess<'de> for Elements<'_, 'de> {
    type Error = Error;
    fn next_key_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        if self.len == 0 {
            return Ok(None);
        }
        self.len -= 1;
        get(self.reader, seed).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        get(self.reader, seed)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.len)
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = Error;
    type Variant = Self;
    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let index = self.u32()?;
        let v = seed.deserialize(IntoDeserializer::<Error>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = Error;
    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value> {
        get(self, seed)
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, fields.len(), visitor)
    }
}

fn wont(what: &str) -> Error {
    Error(format!(
        "postcard cannot read {what}: it is not self-describing"
    ))
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Error;

    fn is_human_readable(&self) -> bool {
        false
    }
    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(wont("a value of any type (deserialize_any)"))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bool(self.bool()?)
    }
    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i8(self.i8()?)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i16(self.i16()?)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i32(self.i32()?)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i64(self.i64()?)
    }
    fn deserialize_i128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_i128(self.i128()?)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u8(self.u8()?)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u16(self.u16()?)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u32(self.u32()?)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u64(self.u64()?)
    }
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_u128(self.u128()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f32(self.f32()?)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_f64(self.f64()?)
    }
    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_char(self.char()?)
    }
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // As postcard: `visit_str`, not the borrowed one.
        visitor.visit_str(self.str()?)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_borrowed_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_bytes(self.bytes()?)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.u8()? {
            0 => visitor.visit_none(),
            1 => visitor.visit_some(self),
            _ => Err(Error(
                "Found an Option discriminant that wasn't 0 or 1".into(),
            )),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if bulk::may_be(std::mem::size_of::<V::Value>()) {
            if let Some(kind) = seq_visitor_kind(typeid::of::<V>()) {
                // SAFETY: `V` is the visitor of `kind`'s `Vec<T>` (same `TypeId`: serde's
                // `VecVisitor<T>` has no lifetimes), whose `Value` is `Vec<T>` (checked when
                // the visitor was learnt).
                return unsafe { take_as::<V::Value>(self, kind) };
            }
        }
        let len = self.usize()?;
        visitor.visit_seq(Elements { reader: self, len })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        visitor.visit_seq(Elements { reader: self, len })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_seq(Elements { reader: self, len })
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let len = self.usize()?;
        visitor.visit_map(Elements { reader: self, len })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let len = fields.len();
        visitor.visit_seq(Elements { reader: self, len })
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(wont("an identifier"))
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(wont("a value to ignore"))
    }
}

#[cfg(test)]
mod tests;
