//! The key of a call: `(Hidden((build, types, const parameters)), self, arguments)`, built the
//! same way by the function and by its `remove` and `explain`. The build is what `cfg!` says
//! of `debug_assertions`, `test` and each predicate the function's code names; the types are
//! those of `Self`, of the type parameters and of the `impl Trait` arguments (whatever their
//! names), each as `tiered::__memoize::type_part` gives it: a closure's makes the call
//! memory-only.

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::{Ident, Type};

use crate::signature::Analysis;

/// Where the key is built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// In the function: arguments are owned or references, as declared.
    Call,
    /// In the generated `remove` and `explain`: owned arguments are taken by reference, and
    /// `self` as `&self`.
    Remove,
}

/// The expression giving the `MemoKey` of a call, for the `Memoized` named `memo`. `cfgs`:
/// the predicates of the `cfg!(…)`, `#[cfg(…)]` and `#[cfg_attr(…)]` the function's code
/// names, whose values in the build go into the key.
pub fn key_expr(
    memo: &Ident,
    analysis: &Analysis,
    skip_self: bool,
    side: Side,
    cfgs: &[TokenStream],
) -> TokenStream {
    let (build, types) = (hidden("__tiered_build"), hidden("__tiered_types"));
    let type_part = quote!(::tiered::__memoize::type_part);
    let type_part_of_val = quote!(::tiered::__memoize::type_part_of_val);
    let mut type_parts = Vec::new();
    if analysis.in_impl {
        // Instantiations of a generic impl share one path; their entries must not mix.
        type_parts.push(quote!(#type_part::<Self>(false)));
    }
    for (t, callable) in &analysis.type_params {
        type_parts.push(quote!(#type_part::<#t>(#callable)));
    }
    // An anonymous type parameter counts as named ones do, whatever the argument's name.
    for arg in &analysis.key_args {
        let (ident, Some(callable)) = (&arg.ident, arg.impl_trait) else {
            continue;
        };
        type_parts.push(match (is_reference(&arg.ty), side) {
            (true, _) => quote!(#type_part_of_val(&*#ident, #callable)),
            (false, Side::Call) => quote!(#type_part_of_val(&#ident, #callable)),
            (false, Side::Remove) => quote!(#type_part_of_val(#ident, #callable)),
        });
    }
    // What the key holds besides `self` and the arguments, in one part that a listing knows
    // to leave out of the call it shows.
    let mut hidden_parts = vec![quote!(#build)];
    if !type_parts.is_empty() {
        hidden_parts.push(quote!(#types));
    }
    for c in &analysis.const_params {
        hidden_parts.push(quote!(&#c));
    }
    let hidden_parts = tuple(hidden_parts);
    let hidden_part = quote!(::tiered::__memoize::Hidden(#hidden_parts));
    let mut parts = Vec::new();
    if let (Some(r), false) = (&analysis.receiver, skip_self) {
        let this = &r.self_token;
        let span = this.span;
        parts.push(match side {
            Side::Call => {
                // `Self` itself rather than `&Self`, so that the error names the type to change.
                let this = match r.reference {
                    Some(_) => quote_spanned!(span=> &*#this),
                    None => quote_spanned!(span=> &#this),
                };
                quote_spanned!(span=> (&::tiered::__memoize::self_part(#this)).key_part())
            }
            // The helper takes `&self` whatever the method takes; unchecked, as below.
            Side::Remove => quote!((&::tiered::__memoize::Part(&*#this)).key_part()),
        });
    }
    for arg in analysis.key_args.iter().filter(|a| a.by_value) {
        let ident = &arg.ident;
        parts.push(match side {
            // Checked: a type that is not `Serialize` is a compile error at the argument.
            Side::Call => {
                quote_spanned!(ident.span()=> (&::tiered::__memoize::part(&#ident)).key_part())
            }
            // Unchecked (the function's own check reports it, once).
            Side::Remove if is_reference(&arg.ty) => {
                quote!((&::tiered::__memoize::Part(&#ident)).key_part())
            }
            Side::Remove => quote!((&::tiered::__memoize::Part(#ident)).key_part()),
        });
    }
    // The hidden part first and at the top level, however many parts follow (past 15 they
    // are grouped in tuples of 16), so that a listing finds it.
    let tuple = if parts.len() < 16 {
        tuple(std::iter::once(hidden_part).chain(parts).collect())
    } else {
        let rest = tuple(parts);
        quote!((#hidden_part, #rest))
    };
    quote! {
        {
            #[allow(unused_imports)]
            use ::tiered::__memoize::{SerializePart as _, UnserializablePart as _};
            // What the build decided, in the key: a debug and a release build, or builds with
            // other features, keep their own entries (and share one version).
            #[allow(unexpected_cfgs)]
            let #build: &[bool] = &[
                ::core::cfg!(debug_assertions),
                ::core::cfg!(test)
                #(, ::core::cfg!(#cfgs))*
            ];
            let #types: &[::tiered::__memoize::TypePart] = &[#(#type_parts),*];
            ::tiered::__memoize::memo_key(&#memo, #types, &#tuple)
        }
    }
}

/// The predicates of the `cfg!(…)` calls and `#[cfg(…)]` and `#[cfg_attr(…, …)]` attributes in
/// `tokens` (anywhere, macro input included), each once, in order, without `debug_assertions`
/// and `test`, which every key holds.
pub fn cfg_predicates(tokens: TokenStream) -> Vec<TokenStream> {
    let mut found: Vec<TokenStream> = Vec::new();
    collect_cfgs(tokens, &mut found);
    let mut seen = vec!["debug_assertions".to_string(), "test".to_string()];
    found.retain(|p| {
        let text = p.to_string();
        let new = !seen.contains(&text);
        seen.push(text);
        new
    });
    found
}

fn collect_cfgs(tokens: TokenStream, found: &mut Vec<TokenStream>) {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, tree) in trees.iter().enumerate() {
        let TokenTree::Group(g) = tree else { continue };
        let before = |back: usize| i.checked_sub(back).map(|j| &trees[j]);
        let is_punct = |t: Option<&TokenTree>, c: char| matches!(t, Some(TokenTree::Punct(p)) if p.as_char() == c);
        // `cfg!(pred)`, `core::cfg!(pred)`, `cfg![pred]`…
        if is_punct(before(1), '!') && matches!(before(2), Some(TokenTree::Ident(i)) if i == "cfg")
        {
            found.push(g.stream());
        }
        // `#[cfg(pred)]`, `#![cfg(pred)]`, `#[cfg_attr(pred, attr)]`
        if g.delimiter() == Delimiter::Bracket
            && (is_punct(before(1), '#') || (is_punct(before(1), '!') && is_punct(before(2), '#')))
        {
            let mut inner = g.stream().into_iter();
            if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(args))) =
                (inner.next(), inner.next())
            {
                if name == "cfg" {
                    found.push(args.stream());
                } else if name == "cfg_attr" {
                    let pred: TokenStream = args
                        .stream()
                        .into_iter()
                        .take_while(|t| !matches!(t, TokenTree::Punct(p) if p.as_char() == ','))
                        .collect();
                    found.push(pred);
                }
            }
        }
        collect_cfgs(g.stream(), found);
    }
}

/// The parameter type of an argument in the generated `remove`: `&T` for an owned `T`, a
/// shared reference as it is, `&T` for `&mut T`.
pub fn remove_param_type(ty: &Type) -> TokenStream {
    match ty {
        Type::Reference(r) => {
            let (lifetime, elem) = (&r.lifetime, &r.elem);
            quote!(&#lifetime #elem)
        }
        // `impl A + B` needs parentheses behind a `&`.
        Type::ImplTrait(t) if t.bounds.len() > 1 => quote!(&(#t)),
        other => quote!(&#other),
    }
}

fn is_reference(ty: &Type) -> bool {
    matches!(ty, Type::Reference(_))
}

/// A tuple of the parts; serde implements `Serialize` for tuples of up to 16 elements, so longer
/// lists nest.
fn tuple(parts: Vec<TokenStream>) -> TokenStream {
    if parts.len() <= 16 {
        return quote!((#(#parts,)*));
    }
    let chunks: Vec<TokenStream> = parts.chunks(16).map(|c| tuple(c.to_vec())).collect();
    tuple(chunks)
}

/// A name for generated locals that the function's own code cannot see.
pub fn hidden(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn predicates(source: &str) -> Vec<String> {
        let f: syn::ItemFn = syn::parse_str(source).expect("test source parses");
        cfg_predicates(f.block.to_token_stream())
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn every_cfg_the_body_names_is_found_once() {
        let found = predicates(
            r#"fn f(x: u32) -> u32 {
                #[cfg(test)]
                let y = 1;
                #[cfg_attr(feature = "fast", inline)]
                fn g() {}
                let z = if cfg!(feature = "alt") { x * 1000 } else { x };
                println!("{}", core::cfg!(target_os = "linux"));
                if cfg!(debug_assertions) || cfg!(feature = "alt") { 0 } else {
                    { #[cfg(any(unix, windows))] { 1 } }
                }
            }"#,
        );
        let expected = [
            r#"feature = "fast""#,
            r#"feature = "alt""#,
            r#"target_os = "linux""#,
            "any (unix , windows)",
        ];
        assert_eq!(found, expected);
        assert_eq!(predicates("fn f() { cfg(x); cfg![y]; }"), ["y"]);
    }

    #[test]
    fn the_key_holds_what_the_build_decided() {
        let f: syn::ItemFn =
            syn::parse_str(r#"fn f(x: u32) -> u32 { if cfg!(feature = "alt") { x } else { 0 } }"#)
                .unwrap();
        let analysis = crate::signature::analyze(&f.sig, &crate::args::Args::default()).unwrap();
        let cfgs = cfg_predicates(f.block.to_token_stream());
        let memo = hidden("memo");
        let key = key_expr(&memo, &analysis, false, Side::Call, &cfgs).to_string();
        for wanted in [
            "cfg ! (debug_assertions)",
            "cfg ! (test)",
            r#"cfg ! (feature = "alt")"#,
        ] {
            assert!(key.contains(wanted), "{wanted} in {key}");
        }
    }
}
