//! `explain` of a key written as `tiered ls` shows it, or of a memoized call written as a call
//! (`load_prices("eu", 1, 5)`): for the command line, which has no key types.

use std::collections::{BTreeSet, HashMap};

use serde::de::IgnoredAny;

use super::readable;
use super::shown::{self, Body, Form, Item};
use crate::engine::Inner;
use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::key::serializer::{Sink, END, SEQ, U64, UNIT};
use crate::key::{EncodedKey, NAMED, ROOT};

/// Records read per step of the scan for a memoized function's entries.
const PAGE: usize = 1024;

fn bad_key(text: &str, why: String) -> Error {
    Error::Encode {
        what: format!("the key {text:?}"),
        detail: format!(
            "{why} (write keys as `tiered ls` shows them: \"text\", 42, 42u32, 1.5, \
             (\"a\", 1), Name {{ field: 1 }}, Enum::Variant, or a memoized call: name(args))"
        ),
    }
}

impl Inner {
    /// Why the key written `text` in `namespace` is, or is not, live, whatever its value's
    /// type (`Hit` for any live value). In the root, a call `name(args)` whose `name` is a
    /// memoized function that has entries or a version note in the cache is explained as
    /// that function's call.
    pub(crate) fn explain_shown(&self, namespace: Option<&str>, text: &str) -> Result<Explanation> {
        let item = shown::parse(text).map_err(|e| bad_key(text, e))?;
        if namespace.is_none() {
            if let Item::Named {
                name,
                body: Body::Paren(args),
            } = &item
            {
                if let Some(why) = self.explain_call(name, args).map_err(|e| match e {
                    Error::Encode { detail, .. } => bad_key(text, detail),
                    other => other,
                })? {
                    return Ok(why);
                }
            }
        }
        let keys = shown::encodings(&item).map_err(|e| bad_key(text, e))?;
        self.explain_first(namespace, &keys)
    }

    /// The first telling answer among `forms` (keys' bytes after the scope): a live value
    /// first, then any reason other than "never written". A form with an enum variant's
    /// index missing is looked for among the records (a scan): found while its record is in
    /// the folder only.
    fn explain_first(&self, namespace: Option<&str>, forms: &[Form]) -> Result<Explanation> {
        let mut prefix = Vec::new();
        match namespace {
            None => prefix.put_byte(ROOT),
            Some(name) => {
                prefix.put_byte(NAMED);
                prefix.put_name(name);
            }
        }
        let mut keys: Vec<Vec<u8>> = forms
            .iter()
            .filter_map(|f| f.exact().map(<[u8]>::to_vec))
            .collect();
        if keys.len() < forms.len() {
            let mut after = None;
            loop {
                let cursor = self.each_stored(after, PAGE, |_, _, rec, _| {
                    if let Some(key) = rec.key.strip_prefix(&prefix[..]) {
                        if forms.iter().any(|f| f.exact().is_none() && f.matches(key)) {
                            keys.push(key.to_vec());
                        }
                    }
                })?;
                match cursor {
                    Some(c) => after = Some(c),
                    None => break,
                }
            }
        }
        let mut found = None;
        for key in keys {
            let mut full = prefix.clone();
            full.extend_from_slice(&key);
            match self.explain_encoded::<IgnoredAny>(&EncodedKey::from_bytes(&full)) {
                // Read as `IgnoredAny`, any stored value is of "another type": it is live.
                Explanation::Hit | Explanation::OtherType { .. } => return Ok(Explanation::Hit),
                Explanation::NeverWritten => {}
                other => {
                    found.get_or_insert(other);
                }
            }
        }
        Ok(found.unwrap_or(Explanation::NeverWritten))
    }

    /// `name(args)` as a call of each memoized function whose path is `name` or ends with
    /// `::name`; `None` if the cache knows no such function (no entry, no version note).
    fn explain_call(&self, name: &str, args: &[Item]) -> Result<Option<Explanation>> {
        let named = |path: &str| {
            path == name
                || super::pages::call_name(path) == name
                || path.ends_with(&format!("::{name}"))
        };
        // One pass over the records: the keys of each such function's entries, and the
        // functions the cache noted a version of.
        let mut functions: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        // The hidden parts each function noted (`memo::CALL_FORM`), for when none of its
        // entries is left.
        let mut forms: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
        let mut after = None;
        loop {
            let mut page = Vec::new();
            let cursor =
                self.each_stored(after, PAGE, |_, _, rec, _| page.push(rec.key.to_vec()))?;
            for full in page {
                let Some((Some(ns), key)) = readable::split_scope(&full) else {
                    continue;
                };
                if ns == crate::memo::VERSIONS {
                    match shown::parse(&readable::render(key)) {
                        Ok(Item::Str(path)) if named(&path) => {
                            functions.entry(path).or_default();
                        }
                        Ok(Item::Seq(parts)) => {
                            if let [Item::Str(tag), Item::Str(path)] = &parts[..] {
                                if tag == crate::memo::CALL_FORM && named(path) {
                                    let note = crate::key::encode_key_in(
                                        Some(crate::memo::VERSIONS),
                                        &(crate::memo::CALL_FORM, path.as_str()),
                                    )?;
                                    let hidden = self
                                        .read_quietly::<String>(&note)
                                        .and_then(|hex| unhex(&hex));
                                    if let Some(hidden) = hidden {
                                        forms.entry(path.clone()).or_default().push(hidden);
                                    }
                                }
                            }
                        }
                        _ => {}
                    }
                } else if named(&ns) {
                    functions.entry(ns).or_default().push(key.to_vec());
                }
            }
            match cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        if functions.is_empty() {
            return Ok(None);
        }
        let mut found = None;
        for (path, keys) in &functions {
            let noted = forms.get(path).map_or(&[][..], Vec::as_slice);
            let why = self.explain_call_of(path, keys, noted, args)?;
            if why == Explanation::Hit {
                return Ok(Some(why));
            }
            if why != Explanation::NeverWritten || found.is_none() {
                found = Some(why);
            }
        }
        Ok(found)
    }

    /// A version noted under `key` in the memoized functions' bookkeeping.
    fn noted_version<K: serde::Serialize + ?Sized>(&self, key: &K) -> Option<u64> {
        let ek = crate::key::encode_key_in(Some(crate::memo::VERSIONS), key).ok()?;
        self.read_quietly::<u64>(&ek)
    }

    /// A call of the function at `path`, whose entries' keys are `keys` and whose noted
    /// hidden parts are `noted`.
    fn explain_call_of(
        &self,
        path: &str,
        keys: &[Vec<u8>],
        noted: &[Vec<u8>],
        args: &[Item],
    ) -> Result<Explanation> {
        let current = self.noted_version(&path);
        // The hidden parts in use (what `#[memoize]` puts before the arguments), none included.
        let mut hidden: BTreeSet<&[u8]> = BTreeSet::from([&[][..]]);
        hidden.extend(noted.iter().map(Vec::as_slice));
        let mut older = BTreeSet::new();
        // The version the last code change dropped (`memo::REPLACED`).
        let replaced = self.noted_version(&(crate::memo::REPLACED, path));
        if let Some(replaced) = replaced.filter(|v| Some(*v) != current) {
            older.insert(replaced);
        }
        for key in keys {
            if let Some((version, part)) = readable::split_call(key) {
                hidden.insert(part);
                if Some(version) != current {
                    older.insert(version);
                }
            }
        }
        let forms = call_forms(args, &hidden).map_err(|detail| Error::Encode {
            what: format!("the call of {path}"),
            detail,
        })?;
        if let Some(version) = current {
            let why = self.explain_first(Some(path), &with_version(version, &forms))?;
            if why != Explanation::NeverWritten {
                return Ok(why);
            }
        }
        // Stored by another version of the function's code only: its record is still here,
        // or what became of it is remembered (dropped when the code changed).
        let stored: BTreeSet<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for version in older {
            let old_forms = with_version(version, &forms);
            if old_forms
                .iter()
                .any(|f| stored.iter().any(|k| f.matches(k)))
                || self.explain_first(Some(path), &old_forms)? != Explanation::NeverWritten
            {
                return Ok(Explanation::CodeChanged);
            }
        }
        Ok(Explanation::NeverWritten)
    }
}

/// The forms of a call's arguments after its code version: as a tuple (after each hidden
/// part), as a lone argument, or as none (`()`).
fn call_forms(args: &[Item], hidden: &BTreeSet<&[u8]>) -> std::result::Result<Vec<Form>, String> {
    // Each is SEQ, the arguments, END: the hidden part goes after SEQ.
    let row = shown::encodings(&Item::Seq(args.to_vec()))?;
    let mut forms = Vec::new();
    for part in hidden {
        let mut head = vec![SEQ];
        head.extend_from_slice(part);
        let head = Form::fixed(head);
        for r in &row {
            forms.push(head.then(&r.after_first()));
        }
    }
    match args {
        [] => forms.push(Form::fixed(vec![UNIT])),
        [one] => forms.extend(shown::encodings(one)?),
        _ => {}
    }
    Ok(forms)
}

/// Each form as a whole call key: `(version, form)`.
fn with_version(version: u64, forms: &[Form]) -> Vec<Form> {
    let mut head = vec![SEQ, U64];
    head.put_varint(u128::from(version));
    let head = Form::fixed(head);
    forms
        .iter()
        .map(|form| {
            let mut f = head.then(form);
            f.push(END);
            f
        })
        .collect()
}

/// The bytes of a hex text (two digits a byte), if it is one.
fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
