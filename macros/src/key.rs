//! The key of a call: `(type names of the generic parameters, self, arguments)`, built the same
//! way by the function and by its `remove`. An `impl Trait` argument's type name goes before
//! its value, as a named type parameter's goes first.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::{Ident, Type};

use crate::signature::{mentions, Analysis};

/// Where the key is built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// In the function: arguments are owned or references, as declared.
    Call,
    /// In the generated `remove`: owned arguments are taken by reference.
    Remove,
}

/// The expression giving the `MemoKey` of a call, for the `Memoized` named `memo`.
pub fn key_expr(memo: &Ident, analysis: &Analysis, skip_self: bool, side: Side) -> TokenStream {
    let mut parts = Vec::new();
    if analysis.in_impl {
        // Instantiations of a generic impl share one path; their entries must not mix.
        parts.push(quote!(::std::any::type_name::<Self>()));
    }
    for t in &analysis.type_params {
        parts.push(quote!(::std::any::type_name::<#t>()));
    }
    for c in &analysis.const_params {
        parts.push(quote!(&#c));
    }
    if let (Some(r), false) = (&analysis.receiver, skip_self) {
        let this = &r.self_token;
        let span = this.span;
        // `Self` itself rather than `&Self`, so that the error names the type to change.
        let this = match r.reference {
            Some(_) => quote_spanned!(span=> &*#this),
            None => quote_spanned!(span=> &#this),
        };
        parts.push(quote_spanned!(span=> (&::tiered::__memoize::self_part(#this)).key_part()));
    }
    for arg in &analysis.key_args {
        let ident = &arg.ident;
        if mentions(arg.ty.to_token_stream(), &["impl"]) {
            // An anonymous type parameter: its name, as for named ones.
            parts.push(match (is_reference(&arg.ty), side) {
                (true, _) => quote!(::std::any::type_name_of_val(&*#ident)),
                (false, Side::Call) => quote!(::std::any::type_name_of_val(&#ident)),
                (false, Side::Remove) => quote!(::std::any::type_name_of_val(#ident)),
            });
        }
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
    let tuple = tuple(parts);
    quote! {
        {
            #[allow(unused_imports)]
            use ::tiered::__memoize::{SerializePart as _, UnserializablePart as _};
            #memo.key(&#tuple)
        }
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
