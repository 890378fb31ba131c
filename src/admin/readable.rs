//! Readable keys: a stored full key (`scope ++ key`, see `docs/format.md` "Keys") rendered for
//! people, as `tiered ls` shows it: `"paris"`, `42`, `("prices", 3)`, `Day { n: 3 }`.
//!
//! The key encoding is injective but not meant to be read back, so this is best effort: any
//! byte string renders (what does not parse renders as hex, `0x…`), and nothing panics or
//! recurses without bound, whatever the bytes. Numbers do not show their width: `3u32` and
//! `3u64` are two keys that both render as `3`.

use std::fmt::Write;

// The tag bytes and scope prefixes the key encoder writes (`key/serializer.rs`,
// `key/mod.rs`).
use crate::key::serializer::{
    BYTES, CHAR, END, F32, F64, FALSE, I128, I8, MAP, NEWTYPE_STRUCT, NEWTYPE_VARIANT, NONE, SEQ,
    SOME, STR, STRUCT, STRUCT_VARIANT, TRUE, TUPLE_STRUCT, TUPLE_VARIANT, U128, U64, U8, UNIT,
    UNIT_STRUCT, UNIT_VARIANT,
};
use crate::key::{NAMED, ROOT};
use crate::memo::check::HIDDEN;

/// Deeper keys render as hex: bounds the recursion on hostile bytes.
const MAX_DEPTH: usize = 64;

/// Splits a full key into its namespace (`None` for the root) and the key's own bytes;
/// `None` if the scope prefix does not parse.
pub(crate) fn split_scope(full: &[u8]) -> Option<(Option<String>, &[u8])> {
    let mut r = Reader { rest: full };
    match r.byte()? {
        ROOT => Some((None, r.rest)),
        NAMED => {
            let name = r.name()?;
            Some((Some(name.to_string()), r.rest))
        }
        _ => None,
    }
}

/// The key's bytes (after the scope) in a readable form; hex if they do not parse.
pub(crate) fn render(key: &[u8]) -> String {
    let mut r = Reader { rest: key };
    let mut out = String::new();
    match r.item(&mut out, 0) {
        Some(()) if r.rest.is_empty() => out,
        _ => hex(key),
    }
}

/// The key of a memoized call (`(code version, arguments)`, see `memo/mod.rs`) as the call:
/// `name("eu", 1, 5)` for the arguments `("eu", 1, 5)`, `name(7)` for a lone argument that is
/// not a tuple; with the code version. `None` if the key does not have that shape.
pub(crate) fn render_call(name: &str, key: &[u8]) -> Option<(u64, String)> {
    let mut r = Reader { rest: key };
    if r.byte()? != SEQ || r.byte()? != U64 {
        return None;
    }
    let version = u64::try_from(r.varint()?).ok()?;
    let mut out = String::from(name);
    out.push('(');
    if r.rest.first() == Some(&SEQ) {
        r.byte()?;
        r.skip_hidden()?;
        r.items(&mut out, 0, false)?;
    } else if r.rest.first() == Some(&UNIT) {
        // No arguments.
        r.byte()?;
    } else {
        r.item(&mut out, 1)?;
    }
    out.push(')');
    (r.at_end() && r.rest.is_empty()).then_some((version, out))
}

/// A memoized call's key split: its code version, and its hidden part's bytes (`#[memoize]`'s
/// `Hidden`, empty when the key has none). `None` if the key does not have a call's shape.
pub(crate) fn split_call(key: &[u8]) -> Option<(u64, &[u8])> {
    let mut r = Reader { rest: key };
    if r.byte()? != SEQ || r.byte()? != U64 {
        return None;
    }
    let version = u64::try_from(r.varint()?).ok()?;
    if r.byte()? != SEQ {
        return Some((version, &[]));
    }
    let start = r.rest;
    r.skip_hidden()?;
    let hidden = &start[..start.len() - r.rest.len()];
    Some((version, hidden))
}

/// `0x` and the bytes in hex; `0x` alone for no bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    /// LEB128, at most 128 bits.
    fn varint(&mut self) -> Option<u128> {
        let mut n = 0u128;
        for i in 0..19 {
            let b = self.byte()?;
            let bits = u128::from(b & 0x7f);
            if i == 18 && bits > 0x03 {
                return None;
            }
            n |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    fn name(&mut self) -> Option<&'a str> {
        let n = self.len()?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    /// `Enum::Variant` of a variant: enum name, index, variant name.
    fn variant(&mut self, out: &mut String) -> Option<()> {
        let enum_name = self.name()?;
        self.varint()?;
        let variant = self.name()?;
        let _ = write!(out, "{enum_name}::{variant}");
        Some(())
    }

    fn at_end(&mut self) -> bool {
        if self.rest.first() == Some(&END) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    /// Skips a `#[memoize]` key's hidden part (`memo::check::Hidden`) if one comes next.
    fn skip_hidden(&mut self) -> Option<()> {
        let mut peek = Reader { rest: self.rest };
        if peek.byte() == Some(NEWTYPE_STRUCT) && peek.name() == Some(HIDDEN) {
            peek.item(&mut String::new(), 1)?;
            self.rest = peek.rest;
        }
        Some(())
    }

    /// Items up to `END`, comma separated; a single item gets a trailing comma when `tuple`.
    fn items(&mut self, out: &mut String, depth: usize, tuple: bool) -> Option<()> {
        let mut n = 0;
        while !self.at_end() {
            if n > 0 {
                out.push_str(", ");
            }
            self.item(out, depth + 1)?;
            n += 1;
        }
        if tuple && n == 1 {
            out.push(',');
        }
        Some(())
    }

    /// Struct fields (`STR` name, value) up to `END`.
    fn fields(&mut self, out: &mut String, depth: usize) -> Option<()> {
        out.push_str(" {");
        let mut n = 0;
        while !self.at_end() {
            out.push_str(if n == 0 { " " } else { ", " });
            if self.byte()? != STR {
                return None;
            }
            out.push_str(self.name()?);
            out.push_str(": ");
            self.item(out, depth + 1)?;
            n += 1;
        }
        out.push_str(if n == 0 { "}" } else { " }" });
        Some(())
    }

    fn item(&mut self, out: &mut String, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        let tag = self.byte()?;
        match tag {
            FALSE => out.push_str("false"),
            TRUE => out.push_str("true"),
            I8..=I128 => {
                let z = self.varint()?;
                let n = ((z >> 1) as i128) ^ -((z & 1) as i128);
                let _ = write!(out, "{n}");
            }
            U8..=U128 => {
                let n = self.varint()?;
                let _ = write!(out, "{n}");
            }
            F32 => {
                let b = self.take(4)?.try_into().ok()?;
                let _ = write!(out, "{:?}", f32::from_le_bytes(b));
            }
            F64 => {
                let b = self.take(8)?.try_into().ok()?;
                let _ = write!(out, "{:?}", f64::from_le_bytes(b));
            }
            CHAR => {
                let c = char::from_u32(u32::try_from(self.varint()?).ok()?)?;
                let _ = write!(out, "{c:?}");
            }
            STR => {
                let s = self.name()?;
                let _ = write!(out, "{s:?}");
            }
            BYTES => {
                let n = self.len()?;
                let b = self.take(n)?;
                let _ = write!(out, "b\"{}\"", b.escape_ascii());
            }
            NONE => out.push_str("None"),
            SOME => {
                out.push_str("Some(");
                self.item(out, depth + 1)?;
                out.push(')');
            }
            UNIT => out.push_str("()"),
            UNIT_STRUCT => out.push_str(self.name()?),
            UNIT_VARIANT => self.variant(out)?,
            NEWTYPE_STRUCT => {
                out.push_str(self.name()?);
                out.push('(');
                self.item(out, depth + 1)?;
                out.push(')');
            }
            NEWTYPE_VARIANT => {
                self.variant(out)?;
                out.push('(');
                self.item(out, depth + 1)?;
                out.push(')');
            }
            SEQ => {
                out.push('(');
                self.items(out, depth, true)?;
                out.push(')');
            }
            TUPLE_STRUCT | TUPLE_VARIANT => {
                if tag == TUPLE_STRUCT {
                    out.push_str(self.name()?);
                } else {
                    self.variant(out)?;
                }
                out.push('(');
                self.items(out, depth, false)?;
                out.push(')');
            }
            MAP => {
                out.push('{');
                let mut n = 0;
                while !self.at_end() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    self.item(out, depth + 1)?;
                    out.push_str(": ");
                    self.item(out, depth + 1)?;
                    n += 1;
                }
                out.push('}');
            }
            STRUCT | STRUCT_VARIANT => {
                if tag == STRUCT {
                    out.push_str(self.name()?);
                } else {
                    self.variant(out)?;
                }
                self.fields(out, depth)?;
            }
            _ => return None,
        }
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};
    use serde::Serialize;

    use super::*;
    use crate::key::encode_key_in;

    fn shown<K: Serialize + ?Sized>(scope: Option<&str>, key: &K) -> (Option<String>, String) {
        let ek = encode_key_in(scope, key).unwrap();
        let (ns, rest) = split_scope(&ek.bytes).unwrap();
        (ns, render(rest))
    }

    fn root<K: Serialize + ?Sized>(key: &K) -> String {
        let (ns, s) = shown(None, key);
        assert_eq!(ns, None);
        s
    }

    fn call<K: Serialize + ?Sized>(key: &K) -> Option<(u64, String)> {
        let ek = encode_key_in(Some("app::load"), key).unwrap();
        let (_, rest) = split_scope(&ek.bytes).unwrap();
        render_call("load", rest)
    }

    #[test]
    fn a_memoized_calls_key_renders_as_the_call() {
        assert_eq!(
            call(&(7u64, ("eu", 1u32, 5i64))),
            Some((7, r#"load("eu", 1, 5)"#.to_string()))
        );
        assert_eq!(
            call(&(7u64, ("eu",))),
            Some((7, r#"load("eu")"#.to_string()))
        );
        assert_eq!(call(&(7u64, ())), Some((7, "load()".to_string())));
        assert_eq!(call(&(7u64, 3u8)), Some((7, "load(3)".to_string())));
        assert_eq!(
            call(&(u64::MAX, (("a", 2u8), Some(1.5f64)))),
            Some((u64::MAX, r#"load(("a", 2), Some(1.5))"#.to_string()))
        );
        // A `#[memoize]` key's hidden part (build, types) is not shown.
        let hidden = crate::memo::check::Hidden((&[false, true][..], 3u8));
        assert_eq!(
            call(&(7u64, (hidden, "eu", 1u32))),
            Some((7, r#"load("eu", 1)"#.to_string()))
        );
        let hidden = crate::memo::check::Hidden((&[false][..],));
        assert_eq!(call(&(7u64, (hidden,))), Some((7, "load()".to_string())));
        // Other shapes are not calls.
        assert_eq!(call("eu"), None);
        assert_eq!(call(&(7u64,)), None);
        assert_eq!(call(&(7u64, 1u8, 2u8)), None);
        assert_eq!(call(&(7u32, ("eu",))), None, "the version is a u64");
        assert_eq!(call(&("7", ("eu",))), None);
    }

    #[derive(Serialize)]
    struct Day {
        n: u32,
        city: &'static str,
    }
    #[derive(Serialize)]
    struct Unit;
    #[derive(Serialize)]
    struct Wrap(i8);
    #[derive(Serialize)]
    struct Pair(u8, bool);
    #[derive(Serialize)]
    enum E {
        A,
        B(u8),
        C(u8, u8),
        D { x: f64 },
    }

    #[test]
    fn renders_what_the_encoder_writes() {
        assert_eq!(root("paris"), r#""paris""#);
        assert_eq!(root(&42u64), "42");
        assert_eq!(root(&-7i32), "-7");
        assert_eq!(root(&i128::MIN), i128::MIN.to_string());
        assert_eq!(root(&u128::MAX), u128::MAX.to_string());
        assert_eq!(root(&true), "true");
        assert_eq!(root(&1.5f64), "1.5");
        assert_eq!(root(&2.5f32), "2.5");
        assert_eq!(root(&'x'), "'x'");
        assert_eq!(root(&("prices", 3u32)), r#"("prices", 3)"#);
        assert_eq!(root(&("one",)), r#"("one",)"#);
        assert_eq!(root(&vec![1u8, 2]), "(1, 2)");
        assert_eq!(root(&Some(1u8)), "Some(1)");
        assert_eq!(root(&None::<u8>), "None");
        assert_eq!(root(&()), "()");
        assert_eq!(root(&Unit), "Unit");
        assert_eq!(root(&Wrap(-1)), "Wrap(-1)");
        assert_eq!(root(&Pair(1, false)), "Pair(1, false)");
        assert_eq!(root(&E::A), "E::A");
        assert_eq!(root(&E::B(1)), "E::B(1)");
        assert_eq!(root(&E::C(1, 2)), "E::C(1, 2)");
        assert_eq!(root(&E::D { x: 0.5 }), "E::D { x: 0.5 }");
        assert_eq!(
            root(&Day { n: 3, city: "oslo" }),
            r#"Day { n: 3, city: "oslo" }"#
        );
        let map: BTreeMap<&str, u8> = [("a", 1), ("b", 2)].into();
        assert_eq!(root(&map), r#"{"a": 1, "b": 2}"#);
        assert_eq!(root(&"quote\"d"), r#""quote\"d""#);
    }

    #[test]
    fn the_namespace_is_split_off() {
        assert_eq!(
            shown(Some("reports"), "q1"),
            (Some("reports".to_string()), r#""q1""#.to_string())
        );
        assert_eq!(
            shown(Some(""), &1u8),
            (Some(String::new()), "1".to_string())
        );
    }

    #[test]
    fn what_does_not_parse_is_hex() {
        assert_eq!(render(&[0xff, 0x01]), "0xff01");
        // A string cut short, trailing bytes, an unterminated sequence.
        assert_eq!(render(&[STR, 5, b'a']), "0x100561");
        assert_eq!(render(&[TRUE, TRUE]), "0x0202");
        assert_eq!(render(&[SEQ, TRUE]), "0x1902");
        assert_eq!(render(&[]), "0x");
        assert_eq!(split_scope(&[7]), None);
        assert_eq!(split_scope(&[NAMED, 9, b'a']), None);
    }

    #[test]
    fn deep_nesting_renders_as_hex_without_recursing_far() {
        let deep = vec![SOME; 100_000];
        assert!(render(&deep).starts_with("0x1313"));
        let seqs = vec![SEQ; 100_000];
        assert!(render(&seqs).starts_with("0x1919"));
    }

    /// Any bytes render, without a panic: random ones, and valid keys with bytes changed.
    #[test]
    fn never_panics_on_any_bytes() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..20_000 {
            let len = rng.random_range(0..48);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random_range(0..0x20u8)).collect();
            let _ = render(&bytes);
            let _ = split_scope(&bytes);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = render(&bytes);
        }
        let valid = encode_key_in(
            Some("ns"),
            &(Day { n: 3, city: "x" }, vec![E::D { x: 1.0 }]),
        )
        .unwrap()
        .bytes
        .to_vec();
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            let cut = rng.random_range(0..=bytes.len());
            if let Some((_, rest)) = split_scope(&bytes[..cut]) {
                let _ = render(rest);
            }
        }
    }
}
