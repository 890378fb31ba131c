//! A function's code version: xxh3 over its tokens, walked structurally.
//!
//! Whitespace and comments never reach a macro as tokens, and doc comments (which do, as
//! `#[doc = "…"]` attributes) are skipped, so only edits to the code change the version.
//! Inside a macro call's input, doc comments count: the macro may read them (`stringify!`,
//! a derive's help text), so there they are code.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use xxhash_rust::xxh3::Xxh3;

/// Bumped when the walk below or the layout of the key changes, so that every function gets
/// a new version then (and its entries of the old layout are reclaimed, not left unreachable).
/// 3: the key holds what the build decided and the parts of types (`key.rs`).
/// 4: those, with the const parameters, in one hidden part that listings leave out.
const SCHEME: u8 = 4;

/// The version of a function with this signature and body (its attributes and visibility are
/// not part of them).
pub fn code_version(sig: &syn::Signature, body: &syn::Block) -> u64 {
    let mut h = Xxh3::new();
    h.update(&[SCHEME]);
    hash_tokens(&mut h, sig.to_token_stream(), false);
    hash_tokens(&mut h, body.to_token_stream(), false);
    h.digest()
}

/// `in_macro`: the tokens are (inside) a macro call's input, where doc comments count.
fn hash_tokens(h: &mut Xxh3, tokens: TokenStream, in_macro: bool) {
    let mut iter = tokens.into_iter().peekable();
    // The last two trees: `name !` before a group makes it a macro call's input.
    let (mut before_last, mut last): (Option<TokenTree>, Option<TokenTree>) = (None, None);
    while let Some(tree) = iter.next() {
        // `#[doc …]` or `#![doc …]`: a doc comment (or a doc attribute) outside macro input.
        if let (false, TokenTree::Punct(p)) = (in_macro, &tree) {
            if p.as_char() == '#' {
                let mut ahead = iter.clone();
                if matches!(ahead.peek(), Some(TokenTree::Punct(bang)) if bang.as_char() == '!') {
                    ahead.next();
                }
                if let Some(TokenTree::Group(g)) = ahead.next() {
                    if g.delimiter() == Delimiter::Bracket && is_doc(g.stream()) {
                        iter = ahead;
                        continue;
                    }
                }
            }
        }
        let macro_input = matches!(
            (&before_last, &last, &tree),
            (Some(TokenTree::Ident(_)), Some(TokenTree::Punct(bang)), TokenTree::Group(_))
                if bang.as_char() == '!'
        );
        hash_tree(h, tree.clone(), in_macro || macro_input);
        before_last = last.replace(tree);
    }
}

fn is_doc(attr: TokenStream) -> bool {
    matches!(attr.into_iter().next(), Some(TokenTree::Ident(i)) if i == "doc")
}

fn hash_tree(h: &mut Xxh3, tree: TokenTree, in_macro: bool) {
    match tree {
        TokenTree::Ident(i) => {
            h.update(b"i");
            hash_text(h, &i.to_string());
        }
        TokenTree::Punct(p) => {
            let spacing = match p.spacing() {
                Spacing::Alone => b'a',
                Spacing::Joint => b'j',
            };
            let mut buf = [0u8; 4];
            h.update(b"p");
            h.update(p.as_char().encode_utf8(&mut buf).as_bytes());
            h.update(&[spacing]);
        }
        TokenTree::Literal(l) => {
            h.update(b"l");
            hash_text(h, &l.to_string());
        }
        TokenTree::Group(g) => {
            let open = match g.delimiter() {
                Delimiter::Parenthesis => b'(',
                Delimiter::Brace => b'{',
                Delimiter::Bracket => b'[',
                Delimiter::None => b'_',
            };
            h.update(&[b'g', open]);
            hash_tokens(h, g.stream(), in_macro);
            h.update(b"e");
        }
    }
}

/// Length-prefixed, so that adjacent texts cannot run into each other.
fn hash_text(h: &mut Xxh3, text: &str) {
    h.update(&(text.len() as u64).to_le_bytes());
    h.update(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version_of(source: &str) -> u64 {
        let f: syn::ItemFn = syn::parse_str(source).expect("test source parses");
        code_version(&f.sig, &f.block)
    }

    const BASE: &str = "fn load(day: u32) -> Vec<u8> {
        let rows = query(day); // fetch
        rows.iter().map(|r| r * 2).collect()
    }";

    #[test]
    fn comments_whitespace_and_docs_do_not_change_the_version() {
        let base = version_of(BASE);
        let same = [
            "fn load(day:u32)->Vec<u8>{let rows=query(day);rows.iter().map(|r|r*2).collect()}",
            "/// Loads a day.\nfn load(day: u32) -> Vec<u8> {
                //! inner doc
                /* block comment */
                /// a doc comment on a statement
                let rows = query(day);
                // a line comment
                rows.iter()
                    .map(|r| r * 2)
                    .collect()
            }",
            "#[doc = \"explicit doc\"] #[inline] pub fn load(day: u32) -> Vec<u8> {
                #[doc(hidden)]
                let rows = query(day);
                rows.iter().map(|r| r * 2).collect()
            }",
        ];
        for source in same {
            assert_eq!(version_of(source), base, "{source}");
        }
    }

    #[test]
    fn code_edits_change_the_version() {
        let base = version_of(BASE);
        let edited = [
            // the body
            "fn load(day: u32) -> Vec<u8> { let rows = query(day); rows.iter().map(|r| r * 3).collect() }",
            // a literal's spelling
            "fn load(day: u32) -> Vec<u8> { let rows = query(day); rows.iter().map(|r| r * 0x2).collect() }",
            // the signature
            "fn load(day: u64) -> Vec<u8> { let rows = query(day); rows.iter().map(|r| r * 2).collect() }",
            "fn load(day: u32) -> Vec<u16> { let rows = query(day); rows.iter().map(|r| r * 2).collect() }",
            // grouping: same tokens, other delimiters
            "fn load(day: u32) -> Vec<u8> { let rows = query(day); rows.iter().map(|r| (r * 2)).collect() }",
            // a non-doc attribute inside the body
            "fn load(day: u32) -> Vec<u8> { #[allow(unused)] let rows = query(day); rows.iter().map(|r| r * 2).collect() }",
            // a turbofish added
            "fn load(day: u32) -> Vec<u8> { let rows = query(day); rows.iter().map(|r| r * 2).collect::<Vec<_>>() }",
        ];
        for source in edited {
            assert_ne!(version_of(source), base, "{source}");
        }
        // Ident and literal text are delimited: `ab` then `c` is not `a` then `bc`.
        assert_ne!(
            version_of("fn f() { ab; c; }"),
            version_of("fn f() { a; bc; }")
        );
    }

    #[test]
    fn doc_comments_a_macro_reads_change_the_version() {
        // `stringify!` (or a derive's help text) reads them: there they are code.
        let one = version_of("fn f() -> &'static str { stringify!(/// one\n x) }");
        let two = version_of("fn f() -> &'static str { stringify!(/// two\n x) }");
        assert_ne!(one, two);
        let one = version_of("fn f() { m! { #[doc = \"one\"] struct S; } }");
        let two = version_of("fn f() { m! { #[doc = \"two\"] struct S; } }");
        assert_ne!(one, two);
        // Outside macro input they still do not count.
        assert_eq!(
            version_of("fn f() { /// one\n let x = 1; }"),
            version_of("fn f() { /// two\n let x = 1; }")
        );
    }
}
