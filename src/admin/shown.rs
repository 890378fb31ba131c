//! Keys written as `tiered ls` shows them (`"paris"`, `42`, `("prices", 3)`, `Day { n: 3 }`,
//! `Kind::Daily`, see `readable.rs`), read back into the key encodings they can stand for.
//!
//! The readable form drops what the encoding keeps: an integer's width, a float's width, an
//! enum variant's index, whether `Name(x)` was a newtype or a one-field tuple struct. So a text
//! stands for several encodings, and a lookup tries each: `5` is any integer kind that holds
//! 5, `5u32` only a `u32`; `1.5` a `f64` or a `f32`, `1.5f32` only the latter; a variant's
//! index is a hole any index fills ([`Form`]). At most [`MAX_KEYS`] forms: a text that stands
//! for more is refused, with how to narrow it.

use crate::key::serializer::{
    Sink, BYTES, CHAR, END, F32, F64, FALSE, I128, I16, I32, I64, I8, MAP, NEWTYPE_STRUCT,
    NEWTYPE_VARIANT, NONE, SEQ, SOME, STR, STRUCT, STRUCT_VARIANT, TRUE, TUPLE_STRUCT,
    TUPLE_VARIANT, U128, U16, U32, U64, U8, UNIT, UNIT_STRUCT, UNIT_VARIANT,
};

/// The most encodings one text may stand for.
pub(crate) const MAX_KEYS: usize = 4096;
/// Deeper texts are refused: bounds the recursion on hostile input.
const MAX_DEPTH: usize = 64;

/// One item of a key, as written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item {
    Bool(bool),
    /// An integer: its sign and magnitude, and its kind's tag if a suffix named it.
    Int {
        negative: bool,
        magnitude: u128,
        kind: Option<u8>,
    },
    /// A float: its text (parsed at each width), and its tag if a suffix named it.
    Float {
        text: String,
        kind: Option<u8>,
    },
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Item>),
    Unit,
    /// A tuple or a sequence: `(a, b)`, `(a,)`.
    Seq(Vec<Item>),
    Map(Vec<(Item, Item)>),
    /// A struct or an enum variant: `Name`, `Name(a, b)`, `Name { f: a }`, `Enum::Variant`.
    Named {
        name: String,
        body: Body,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Body {
    Bare,
    Paren(Vec<Item>),
    Braces(Vec<(String, Item)>),
}

/// Reads a whole text as one item.
///
/// # Errors
/// What is wrong, and where (a character offset).
pub(crate) fn parse(text: &str) -> Result<Item, String> {
    let mut p = Parser {
        chars: text.chars().collect(),
        at: 0,
    };
    let item = p.item(0)?;
    p.space();
    if p.at < p.chars.len() {
        return Err(p.error("nothing more"));
    }
    Ok(item)
}

/// Every encoding `item` stands for (the key's bytes after its scope).
///
/// # Errors
/// When it stands for more than [`MAX_KEYS`], saying how to narrow it.
pub(crate) fn encodings(item: &Item) -> Result<Vec<Form>, String> {
    expand(item)
}

struct Parser {
    chars: Vec<char>,
    at: usize,
}

impl Parser {
    fn error(&self, expected: &str) -> String {
        match self.chars.get(self.at) {
            Some(c) => format!(
                "expected {expected} at character {}, found {c:?}",
                self.at + 1
            ),
            None => format!("expected {expected} at the end"),
        }
    }

    fn space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.space();
        self.chars.get(self.at).copied()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.error(&format!("{c:?}")))
        }
    }

    fn item(&mut self, depth: usize) -> Result<Item, String> {
        if depth > MAX_DEPTH {
            return Err(format!("a key nested more than {MAX_DEPTH} deep"));
        }
        match self.peek() {
            None => Err(self.error("a key")),
            Some('"') => Ok(Item::Str(self.quoted('"')?)),
            Some('\'') => {
                let s = self.quoted('\'')?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Ok(Item::Char(c)),
                    _ => Err(format!("{s:?} is not one character")),
                }
            }
            Some('(') => self.tuple(depth),
            Some('{') => self.map(depth),
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some('b') if self.chars.get(self.at + 1) == Some(&'"') => {
                self.at += 1;
                Ok(Item::Bytes(self.byte_string()?))
            }
            Some(c) if c.is_alphabetic() || c == '_' => self.named(depth),
            Some(_) => Err(self.error("a key")),
        }
    }

    /// `(`: `()`, `(a,)`, `(a, b)`; `(a)` is `a`.
    fn tuple(&mut self, depth: usize) -> Result<Item, String> {
        self.expect('(')?;
        if self.eat(')') {
            return Ok(Item::Unit);
        }
        let (items, trailing) = self.list(')', depth)?;
        if items.len() == 1 && !trailing {
            return Ok(items.into_iter().next().unwrap_or(Item::Unit));
        }
        Ok(Item::Seq(items))
    }

    /// Items up to `close` (eaten), comma separated; whether a comma came last.
    fn list(&mut self, close: char, depth: usize) -> Result<(Vec<Item>, bool), String> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok((items, true));
            }
            items.push(self.item(depth + 1)?);
            if self.eat(close) {
                return Ok((items, false));
            }
            self.expect(',')?;
        }
    }

    fn map(&mut self, depth: usize) -> Result<Item, String> {
        self.expect('{')?;
        let mut entries = Vec::new();
        loop {
            if self.eat('}') {
                return Ok(Item::Map(entries));
            }
            let k = self.item(depth + 1)?;
            self.expect(':')?;
            let v = self.item(depth + 1)?;
            entries.push((k, v));
            if self.eat('}') {
                return Ok(Item::Map(entries));
            }
            self.expect(',')?;
        }
    }

    fn word(&mut self) -> String {
        self.space();
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            self.at += 1;
        }
        self.chars[start..self.at].iter().collect()
    }

    /// A path: words joined by `::` (a struct name, `Enum::Variant`, a function's path).
    fn path(&mut self) -> String {
        let mut name = self.word();
        while self.chars.get(self.at) == Some(&':') && self.chars.get(self.at + 1) == Some(&':') {
            self.at += 2;
            name.push_str("::");
            name.push_str(&self.word());
        }
        name
    }

    fn named(&mut self, depth: usize) -> Result<Item, String> {
        let name = self.path();
        match name.as_str() {
            "true" => return Ok(Item::Bool(true)),
            "false" => return Ok(Item::Bool(false)),
            "None" => return Ok(Item::None),
            "NaN" | "inf" => {
                return Ok(Item::Float {
                    text: name,
                    kind: None,
                })
            }
            "Some" if self.peek() == Some('(') => {
                self.expect('(')?;
                let inner = self.item(depth + 1)?;
                self.expect(')')?;
                return Ok(Item::Some(Box::new(inner)));
            }
            _ => {}
        }
        let body = match self.peek() {
            Some('(') => {
                self.at += 1;
                Body::Paren(self.list(')', depth)?.0)
            }
            Some('{') => {
                self.at += 1;
                let mut fields = Vec::new();
                loop {
                    if self.eat('}') {
                        break;
                    }
                    let field = self.word();
                    if field.is_empty() {
                        return Err(self.error("a field name"));
                    }
                    self.expect(':')?;
                    fields.push((field, self.item(depth + 1)?));
                    if self.eat('}') {
                        break;
                    }
                    self.expect(',')?;
                }
                Body::Braces(fields)
            }
            _ => Body::Bare,
        };
        Ok(Item::Named { name, body })
    }

    /// An integer or a float, with an optional width suffix (`5u32`, `1.5f32`).
    fn number(&mut self) -> Result<Item, String> {
        self.space();
        let start = self.at;
        let negative = self.chars.get(self.at) == Some(&'-');
        if negative {
            self.at += 1;
        }
        if self.chars[self.at..].starts_with(&['i', 'n', 'f']) {
            self.at += 3;
            return Ok(Item::Float {
                text: "-inf".into(),
                kind: None,
            });
        }
        let mut float = false;
        while let Some(&c) = self.chars.get(self.at) {
            let exponent_sign =
                (c == '-' || c == '+') && matches!(self.chars.get(self.at - 1), Some('e' | 'E'));
            if c.is_ascii_digit() || c == '_' {
            } else if c == '.' || c == 'e' || c == 'E' || exponent_sign {
                float = true;
            } else {
                break;
            }
            self.at += 1;
        }
        let text: String = self.chars[start..self.at]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        let suffix = self.word();
        let kind = match suffix.as_str() {
            "" => None,
            "u8" => Some(U8),
            "u16" => Some(U16),
            "u32" => Some(U32),
            "u64" | "usize" => Some(U64),
            "u128" => Some(U128),
            "i8" => Some(I8),
            "i16" => Some(I16),
            "i32" => Some(I32),
            "i64" | "isize" => Some(I64),
            "i128" => Some(I128),
            "f32" => Some(F32),
            "f64" => Some(F64),
            other => return Err(format!("unknown number suffix {other:?} after {text}")),
        };
        let is_float_kind = matches!(kind, Some(F32 | F64));
        if float || is_float_kind {
            if kind.is_some() && !is_float_kind {
                return Err(format!("{text}{suffix} is not an integer"));
            }
            if text.parse::<f64>().is_err() {
                return Err(format!("{text} is not a number"));
            }
            return Ok(Item::Float { text, kind });
        }
        let digits = text.trim_start_matches('-');
        let magnitude = digits
            .parse::<u128>()
            .map_err(|_| format!("{text} is not a number tiered keys can hold"))?;
        Ok(Item::Int {
            negative: negative && magnitude != 0,
            magnitude,
            kind,
        })
    }

    /// A string or char literal with Rust's escapes, as `{:?}` writes them.
    fn quoted(&mut self, quote: char) -> Result<String, String> {
        self.space();
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(&c) = self.chars.get(self.at) else {
                return Err(format!("a {quote} left open"));
            };
            self.at += 1;
            match c {
                c if c == quote => return Ok(out),
                '\\' => {
                    let code = self.escape(false)?;
                    out.push(char::from_u32(code).ok_or("an escape that is not a character")?);
                }
                c => out.push(c),
            }
        }
    }

    /// `b"…"` with the escapes of `escape_ascii`.
    fn byte_string(&mut self) -> Result<Vec<u8>, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.chars.get(self.at) else {
                return Err("a \" left open".into());
            };
            self.at += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let code = self.escape(true)?;
                    out.push(u8::try_from(code).map_err(|_| "a byte over 0xff".to_string())?);
                }
                c if c.is_ascii() => out.push(c as u8),
                c => return Err(format!("{c:?} in a byte string: write it as \\x escapes")),
            }
        }
    }

    /// After a backslash: the code point it stands for.
    fn escape(&mut self, bytes: bool) -> Result<u32, String> {
        let Some(&c) = self.chars.get(self.at) else {
            return Err("an escape at the end".into());
        };
        self.at += 1;
        Ok(match c {
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            '0' => 0,
            '\\' | '"' | '\'' => c as u32,
            'x' => {
                let hex: String = self.chars.iter().skip(self.at).take(2).collect();
                self.at += 2;
                let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("\\x{hex}"))?;
                if !bytes && code > 0x7f {
                    return Err(format!("\\x{hex} in a string: write \\u{{{hex}}}"));
                }
                code
            }
            'u' if !bytes => {
                if self.chars.get(self.at) != Some(&'{') {
                    return Err("\\u without {".into());
                }
                let end = self.chars[self.at..]
                    .iter()
                    .position(|c| *c == '}')
                    .ok_or("\\u{ left open")?;
                let hex: String = self.chars[self.at + 1..self.at + end].iter().collect();
                self.at += end + 1;
                let code = u32::from_str_radix(&hex, 16).map_err(|_| format!("\\u{{{hex}}}"))?;
                char::from_u32(code).ok_or(format!("\\u{{{hex}}} is not a character"))? as u32
            }
            other => return Err(format!("unknown escape \\{other}")),
        })
    }
}

/// The bytes `f` writes.
fn bytes(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v);
    v
}

/// One stored form a text stands for: its bytes, with holes where an enum variant's index
/// goes (the readable form does not show it; any index matches).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Form {
    bytes: Vec<u8>,
    /// Offsets in `bytes` where a varint index is missing, in order.
    holes: Vec<usize>,
}

impl Form {
    pub fn fixed(bytes: Vec<u8>) -> Form {
        Form {
            bytes,
            holes: Vec::new(),
        }
    }

    pub fn then(&self, tail: &Form) -> Form {
        let mut out = self.clone();
        out.holes
            .extend(tail.holes.iter().map(|h| h + self.bytes.len()));
        out.bytes.extend_from_slice(&tail.bytes);
        out
    }

    pub fn push(&mut self, byte: u8) {
        self.bytes.push(byte);
    }

    /// The form without its first byte (a tag whose bytes hold no hole).
    pub fn after_first(&self) -> Form {
        Form {
            bytes: self.bytes[1..].to_vec(),
            holes: self.holes.iter().map(|h| h - 1).collect(),
        }
    }

    /// The key's bytes, when no variant index is missing.
    pub fn exact(&self) -> Option<&[u8]> {
        self.holes.is_empty().then_some(&self.bytes[..])
    }

    /// Whether a stored key (its bytes after the scope) is this form, any index in the holes.
    pub fn matches(&self, key: &[u8]) -> bool {
        let mut rest = key;
        let mut from = 0;
        for &h in &self.holes {
            let Some(after) = rest.strip_prefix(&self.bytes[from..h]) else {
                return false;
            };
            // A varint: bytes with the high bit set, then one without.
            let Some(end) = after.iter().position(|b| b & 0x80 == 0) else {
                return false;
            };
            rest = &after[end + 1..];
            from = h;
        }
        rest == &self.bytes[from..]
    }
}

fn too_many() -> String {
    format!(
        "this key stands for more than {MAX_KEYS} stored forms: give the numbers' widths \
         (5u32, -2i64, 1.5f64)"
    )
}

/// Each form of `heads` followed by each of `tails` (all pairs), within [`MAX_KEYS`].
fn product(heads: &[Form], tails: &[Form]) -> Result<Vec<Form>, String> {
    if heads.len().saturating_mul(tails.len()) > MAX_KEYS {
        return Err(too_many());
    }
    Ok(heads
        .iter()
        .flat_map(|h| tails.iter().map(move |t| h.then(t)))
        .collect())
}

/// The forms of items in a row (each one's forms after the others').
fn row(items: &[Item]) -> Result<Vec<Form>, String> {
    let mut all = vec![Form::fixed(Vec::new())];
    for item in items {
        all = product(&all, &expand(item)?)?;
    }
    Ok(all)
}

/// Each of `heads`, then each of `body`, then `END` when `closed`.
fn framed(heads: Vec<Form>, body: &[Form], closed: bool) -> Result<Vec<Form>, String> {
    let mut all = product(&heads, body)?;
    if closed {
        for f in &mut all {
            f.push(END);
        }
    }
    Ok(all)
}

fn tag_name(tag: u8, name: &str) -> Form {
    Form::fixed(bytes(|v| {
        v.put_byte(tag);
        v.put_name(name);
    }))
}

/// An `Enum::Variant` header, its index a hole; none when `name` is not a path of two.
fn variant_head(tag: u8, name: &str) -> Option<Form> {
    let (enum_name, variant) = name.rsplit_once("::")?;
    let mut head = tag_name(tag, enum_name);
    head.holes.push(head.bytes.len());
    Some(head.then(&Form::fixed(bytes(|v| v.put_name(variant)))))
}

fn expand(item: &Item) -> Result<Vec<Form>, String> {
    let one = |f: &dyn Fn(&mut Vec<u8>)| Ok(vec![Form::fixed(bytes(f))]);
    match item {
        Item::Bool(b) => one(&|v| v.put_byte(if *b { TRUE } else { FALSE })),
        Item::Int {
            negative,
            magnitude,
            kind,
        } => Ok(integers(*negative, *magnitude, *kind)),
        Item::Float { text, kind } => Ok(floats(text, *kind)),
        Item::Char(c) => one(&|v| {
            v.put_byte(CHAR);
            v.put_varint(u128::from(u32::from(*c)));
        }),
        Item::Str(s) => Ok(vec![tag_name(STR, s)]),
        Item::Bytes(b) => one(&|v| {
            v.put_byte(BYTES);
            v.put_varint(b.len() as u128);
            v.put(b);
        }),
        Item::None => one(&|v| v.put_byte(NONE)),
        Item::Some(inner) => framed(vec![Form::fixed(vec![SOME])], &expand(inner)?, false),
        // `()`: the unit value, or an empty sequence (shown alike).
        Item::Unit => Ok(vec![Form::fixed(vec![UNIT]), Form::fixed(vec![SEQ, END])]),
        Item::Seq(items) => framed(vec![Form::fixed(vec![SEQ])], &row(items)?, true),
        Item::Map(entries) => {
            // Each entry's forms; a map's entries are stored sorted (`MapEncoder`), which a
            // form with a missing variant index can only approximate.
            let mut all: Vec<Vec<Form>> = vec![Vec::new()];
            for (k, val) in entries {
                let forms = product(&expand(k)?, &expand(val)?)?;
                if all.len().saturating_mul(forms.len()) > MAX_KEYS {
                    return Err(too_many());
                }
                all = all
                    .iter()
                    .flat_map(|done| {
                        forms.iter().map(move |f| {
                            let mut next = done.clone();
                            next.push(f.clone());
                            next
                        })
                    })
                    .collect();
            }
            Ok(all
                .into_iter()
                .map(|mut entries| {
                    entries.sort_unstable_by(|a, b| a.bytes.cmp(&b.bytes));
                    let mut f = Form::fixed(vec![MAP]);
                    for e in &entries {
                        f = f.then(e);
                    }
                    f.push(END);
                    f
                })
                .collect())
        }
        Item::Named { name, body } => named(name, body),
    }
}

fn named(name: &str, body: &Body) -> Result<Vec<Form>, String> {
    match body {
        Body::Bare => Ok([
            Some(tag_name(UNIT_STRUCT, name)),
            variant_head(UNIT_VARIANT, name),
        ]
        .into_iter()
        .flatten()
        .collect()),
        Body::Paren(items) => {
            let inner = row(items)?;
            let mut all = Vec::new();
            if items.len() == 1 {
                let heads = [
                    Some(tag_name(NEWTYPE_STRUCT, name)),
                    variant_head(NEWTYPE_VARIANT, name),
                ];
                all.extend(framed(
                    heads.into_iter().flatten().collect(),
                    &inner,
                    false,
                )?);
            }
            let heads = [
                Some(tag_name(TUPLE_STRUCT, name)),
                variant_head(TUPLE_VARIANT, name),
            ];
            all.extend(framed(heads.into_iter().flatten().collect(), &inner, true)?);
            cap(all)
        }
        Body::Braces(fields) => {
            let mut inner = vec![Form::fixed(Vec::new())];
            for (field, value) in fields {
                let head = tag_name(STR, field);
                inner = product(&inner, &framed(vec![head], &expand(value)?, false)?)?;
            }
            let heads = [
                Some(tag_name(STRUCT, name)),
                variant_head(STRUCT_VARIANT, name),
            ];
            cap(framed(heads.into_iter().flatten().collect(), &inner, true)?)
        }
    }
}

fn cap(all: Vec<Form>) -> Result<Vec<Form>, String> {
    if all.len() > MAX_KEYS {
        Err(too_many())
    } else {
        Ok(all)
    }
}

/// The integer kinds that hold the value (only `kind` if given).
fn integers(negative: bool, magnitude: u128, kind: Option<u8>) -> Vec<Form> {
    const UNSIGNED: [(u8, u32); 5] = [(U8, 8), (U16, 16), (U32, 32), (U64, 64), (U128, 128)];
    const SIGNED: [(u8, u32); 5] = [(I8, 8), (I16, 16), (I32, 32), (I64, 64), (I128, 128)];
    let mut out = Vec::new();
    for (tag, bits) in UNSIGNED {
        let fits = !negative && (bits == 128 || magnitude >> bits == 0);
        if fits && kind.is_none_or(|k| k == tag) {
            out.push(Form::fixed(bytes(|v| {
                v.put_byte(tag);
                v.put_varint(magnitude);
            })));
        }
    }
    for (tag, bits) in SIGNED {
        // |min| = 2^(bits-1) for negatives, max = 2^(bits-1) - 1 for the others.
        let limit = 1u128 << (bits - 1);
        let fits = if negative {
            magnitude <= limit
        } else {
            magnitude < limit
        };
        if fits && kind.is_none_or(|k| k == tag) {
            // Zigzag: n >= 0 → 2n; n < 0 → 2|n| - 1.
            let z = if negative {
                2 * (magnitude - 1) + 1
            } else {
                2 * magnitude
            };
            out.push(Form::fixed(bytes(|v| {
                v.put_byte(tag);
                v.put_varint(z);
            })));
        }
    }
    out
}

/// The float widths the text is written in (only `kind` if given).
fn floats(text: &str, kind: Option<u8>) -> Vec<Form> {
    let mut out = Vec::new();
    if kind.is_none_or(|k| k == F64) {
        if let Ok(f) = text.parse::<f64>() {
            out.push(Form::fixed(bytes(|v| {
                v.put_byte(F64);
                v.put(&f.to_bits().to_le_bytes());
            })));
        }
    }
    if kind.is_none_or(|k| k == F32) {
        if let Ok(f) = text.parse::<f32>() {
            // A width the text fits only when it reads back the same.
            if kind.is_some() || f.is_nan() || format!("{f:?}") == text {
                out.push(Form::fixed(bytes(|v| {
                    v.put_byte(F32);
                    v.put(&f.to_bits().to_le_bytes());
                })));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    use super::*;
    use crate::admin::readable::{render, split_scope};
    use crate::key::encode_key_in;

    /// The key's own bytes and the text `tiered ls` shows for them.
    fn stored<K: Serialize + ?Sized>(key: &K) -> (Vec<u8>, String) {
        let ek = encode_key_in(None, key).unwrap();
        let (_, rest) = split_scope(&ek.bytes).unwrap();
        (rest.to_vec(), render(rest))
    }

    /// The text the listing shows reads back into the stored key, among few others.
    fn reads_back<K: Serialize + ?Sized>(key: &K) {
        let (bytes, text) = stored(key);
        let item = parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let all = encodings(&item).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            all.iter().any(|f| f.matches(&bytes)),
            "{text} does not stand for its own key"
        );
    }

    #[derive(Serialize)]
    struct Day {
        n: u8,
        city: &'static str,
    }
    #[derive(Serialize)]
    struct Id(u64);
    #[derive(Serialize)]
    struct Pair(i32, String);
    #[derive(Serialize)]
    struct Marker;
    #[derive(Serialize)]
    enum Kind {
        Daily,
        #[allow(dead_code)]
        Weekly,
        Every(u16),
        Span(u8, u8),
        Window {
            from: i8,
            to: i8,
        },
    }

    #[test]
    fn every_kind_of_key_the_listing_shows_reads_back_into_itself() {
        reads_back("paris");
        reads_back("quote \" back\\slash\nnew line\ttab \u{7f} é ü 日本 \0");
        reads_back(&42u8);
        reads_back(&42u16);
        reads_back(&70_000u32);
        reads_back(&u64::MAX);
        reads_back(&u128::MAX);
        reads_back(&-1i8);
        reads_back(&i16::MIN);
        reads_back(&i64::MIN);
        reads_back(&i128::MIN);
        reads_back(&i128::MAX);
        reads_back(&0i32);
        reads_back(&1.5f64);
        reads_back(&0.1f32);
        reads_back(&-2.5e-7f64);
        reads_back(&1e300f64);
        reads_back(&f64::INFINITY);
        reads_back(&f64::NEG_INFINITY);
        reads_back(&f32::NAN);
        reads_back(&'x');
        reads_back(&'\'');
        reads_back(&'\n');
        reads_back(&true);
        reads_back(&());
        reads_back(&None::<u8>);
        reads_back(&Some(("a", 1u8)));
        reads_back(&("prices", 3u32, -1i64, 2.5f32));
        reads_back(&("one",));
        reads_back(&vec![1u8, 2, 3]);
        reads_back(&Vec::<u8>::new());
        reads_back(&serde_bytes_like(b"raw\x00\xff\"'\\"));
        reads_back(&Day { n: 3, city: "oslo" });
        reads_back(&Id(7));
        reads_back(&Pair(-3, "x".into()));
        reads_back(&Marker);
        reads_back(&Kind::Daily);
        reads_back(&Kind::Every(9));
        reads_back(&Kind::Span(1, 2));
        reads_back(&Kind::Window { from: -1, to: 1 });
        reads_back(&BTreeMap::from([("b", 2u8), ("a", 1u8)]));
        reads_back(&((1u8, (2u16, (3u32,))), [Some(Kind::Daily), None]));
    }

    /// Bytes serialized as bytes (what `serde_bytes` does), not as a sequence.
    fn serde_bytes_like(b: &'static [u8]) -> impl Serialize {
        struct B(&'static [u8]);
        impl Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }

    fn forms(text: &str) -> Vec<Vec<u8>> {
        encodings(&parse(text).unwrap())
            .unwrap()
            .iter()
            .map(|f| f.exact().unwrap().to_vec())
            .collect()
    }

    #[test]
    fn a_number_stands_for_every_width_that_holds_it_and_a_suffix_for_one() {
        assert!(forms("5").contains(&stored(&5u32).0));
        assert!(forms("5").contains(&stored(&5i8).0));
        assert_eq!(forms("5").len(), 10);
        assert_eq!(forms("5u32"), vec![stored(&5u32).0]);
        assert_eq!(forms("300").len(), 8, "u8 and i8 cannot hold 300");
        assert_eq!(
            forms("-129").len(),
            4,
            "i16, i32, i64 and i128: i8 cannot hold it"
        );
        assert_eq!(forms("-2i64"), vec![stored(&-2i64).0]);
        assert_eq!(forms("1.5f32"), vec![stored(&1.5f32).0]);
        assert!(!forms("(\"a\", 5u8)").contains(&stored(&("a", 5u16)).0));
    }

    #[test]
    fn bad_texts_say_what_is_wrong_and_never_panic() {
        for text in [
            "",
            "(",
            "(1",
            "\"open",
            "'ab'",
            "{1:",
            "Day {",
            "Day { n }",
            "5x",
            "1.5u8",
            "b\"é\"",
            "\"\\q\"",
            "\"\\u{110000}\"",
            ")",
            "1 2",
            "--5",
            "340282366920938463463374607431768211456",
            "'",
            "b\"\\x\"",
            "Name(",
            "Some(",
            "\"\\u{12\"",
        ] {
            assert!(
                parse(text).and_then(|i| encodings(&i)).is_err(),
                "{text:?} was accepted"
            );
        }
        let deep = "(".repeat(100) + &")".repeat(100);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn too_many_forms_are_refused_with_how_to_narrow_them() {
        let e = encodings(&parse("(1, 2, 3, 4)").unwrap()).unwrap_err();
        assert!(e.contains("5u32"), "{e}");
        assert_eq!(
            encodings(&parse("(1u8, 2, 3, 4)").unwrap()).unwrap().len(),
            1000
        );
    }
}
