//! What a memoized function's signature means for the cache: which arguments form the key,
//! whether it is a method, and how its return value is cached.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Error, FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::args::Args;

/// An argument that takes part in the key.
pub struct KeyArg {
    pub ident: Ident,
    pub ty: Type,
}

/// How the return value is cached.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Every value (`Memoized::call`).
    Plain,
    /// `Ok` values only (`Memoized::call_result`).
    Result,
    /// `Some` values only (`Memoized::call_option`, with `cache_none = false`).
    SomeOnly,
}

pub struct Analysis {
    pub key_args: Vec<KeyArg>,
    /// The `self` argument, if any.
    pub receiver: Option<syn::Receiver>,
    /// Inside an impl block: a `self` argument, or `Self` named in the signature.
    pub in_impl: bool,
    pub returns: Returns,
    /// The return type; `()` when none is written.
    pub ret: Type,
    pub type_params: Vec<Ident>,
    pub const_params: Vec<Ident>,
}

pub fn analyze(sig: &Signature, args: &Args) -> syn::Result<Analysis> {
    if let Some(c) = &sig.constness {
        return Err(Error::new(c.span, "a `const fn` cannot be memoized"));
    }
    let mut key_args = Vec::new();
    let mut receiver = None;
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(t) => {
                if let Some(ident) = argument_name(&t.pat)? {
                    if !ident.to_string().starts_with('_') {
                        key_args.push(KeyArg {
                            ident,
                            ty: (*t.ty).clone(),
                        });
                    }
                }
            }
        }
    }
    if let (Some(span), None) = (args.skip_self, &receiver) {
        return Err(Error::new(
            span,
            "`skip_self` is for methods: this function has no `self` argument",
        ));
    }
    let ret = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let returns = returns(&ret, args.no_cached_none)?;
    check_value_type(&ret, returns)?;
    let mut type_params = Vec::new();
    let mut const_params = Vec::new();
    for param in &sig.generics.params {
        match param {
            syn::GenericParam::Type(t) => type_params.push(t.ident.clone()),
            syn::GenericParam::Const(c) => const_params.push(c.ident.clone()),
            syn::GenericParam::Lifetime(_) => {}
        }
    }
    let in_impl = receiver.is_some() || mentions(sig.to_token_stream(), &["Self"]);
    Ok(Analysis {
        key_args,
        receiver,
        in_impl,
        returns,
        ret,
        type_params,
        const_params,
    })
}

/// The argument's name, or `None` for `_`; an error for any other pattern.
fn argument_name(pat: &Pat) -> syn::Result<Option<Ident>> {
    match pat {
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Ok(Some(p.ident.clone())),
        Pat::Wild(_) => Ok(None),
        other => Err(Error::new_spanned(
            other,
            "name this argument (`name: Type`), so that it can take part in the key; \
             `_name: Type` leaves it out of the key",
        )),
    }
}

fn returns(ret: &Type, no_cached_none: Option<Span>) -> syn::Result<Returns> {
    let last = last_segment(ret).map(|s| s.ident.to_string());
    match (last.as_deref(), no_cached_none) {
        (Some("Option"), Some(_)) => Ok(Returns::SomeOnly),
        (_, Some(span)) => Err(Error::new(
            span,
            "`cache_none = false` is for functions returning `Option`",
        )),
        (Some("Result"), None) => Ok(Returns::Result),
        _ => Ok(Returns::Plain),
    }
}

/// The cached value must be owned and nameable.
fn check_value_type(ret: &Type, returns: Returns) -> syn::Result<()> {
    let value = match returns {
        Returns::Plain => Some(ret),
        // `T` of `Result<T, E>` or `Option<T>`, when written out (not through an alias).
        Returns::Result | Returns::SomeOnly => last_segment(ret).and_then(|s| match &s.arguments {
            PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
                GenericArgument::Type(t) => Some(t),
                _ => None,
            }),
            _ => None,
        }),
    };
    match value.map(ungroup) {
        Some(Type::Reference(r)) => Err(Error::new_spanned(
            r,
            "a memoized function returns an owned value (the cached one, cloned): return the \
             owned type, or `Arc<T>` to share one value without copying it (serde's \"rc\" \
             feature)",
        )),
        Some(Type::ImplTrait(t)) => Err(Error::new_spanned(
            t,
            "name the return type: the cache stores values of one concrete, serializable type",
        )),
        _ => Ok(()),
    }
}

fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => ungroup(&g.elem),
        Type::Paren(p) => ungroup(&p.elem),
        other => other,
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ungroup(ty) {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

/// Whether `tokens` hold one of the identifiers (or keywords) `words`.
pub fn mentions(tokens: TokenStream, words: &[&str]) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => words.iter().any(|w| i == w),
        TokenTree::Group(g) => mentions(g.stream(), words),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyze_str(source: &str, args: &Args) -> syn::Result<Analysis> {
        let f: syn::ItemFn = syn::parse_str(source).expect("test source parses");
        analyze(&f.sig, args)
    }

    #[test]
    fn key_arguments_and_return_kinds() {
        let a = analyze_str(
            "fn f<'a, T: Serialize, const N: usize>(day: u32, _conn: &Conn, _: u8, mut name: &'a str, t: T) -> io::Result<Vec<u8>> {}",
            &Args::default(),
        )
        .unwrap();
        let names: Vec<String> = a.key_args.iter().map(|k| k.ident.to_string()).collect();
        assert_eq!(names, ["day", "name", "t"]);
        assert!(a.returns == Returns::Result && !a.in_impl);
        assert_eq!(a.type_params.len(), 1);
        assert_eq!(a.const_params.len(), 1);

        let a = analyze_str("fn f(&self) -> Option<u8> {}", &Args::default()).unwrap();
        assert!(a.returns == Returns::Plain && a.in_impl && a.receiver.is_some());
        let a = analyze_str("fn new(id: u8) -> Self {}", &Args::default()).unwrap();
        assert!(a.in_impl && a.receiver.is_none());
    }

    #[test]
    fn refusals() {
        let args = Args::default();
        for (source, why) in [
            ("fn f((a, b): (u8, u8)) {}", "name this argument"),
            ("fn f(ref a: u8) {}", "name this argument"),
            ("fn f() -> &'static str {}", "owned value"),
            ("fn f() -> Result<&'static str, E> {}", "owned value"),
            (
                "fn f() -> impl Iterator<Item = u8> {}",
                "name the return type",
            ),
            ("const fn f() {}", "const fn"),
        ] {
            let err = analyze_str(source, &args).err().expect(source);
            assert!(err.to_string().contains(why), "{source}: {err}");
        }
        let skip = Args {
            skip_self: Some(Span::call_site()),
            ..Args::default()
        };
        assert!(analyze_str("fn f(x: u8) {}", &skip).is_err());
        let none = Args {
            no_cached_none: Some(Span::call_site()),
            ..Args::default()
        };
        assert!(analyze_str("fn f(x: u8) -> u8 {}", &none).is_err());
        let a = analyze_str("fn f(x: u8) -> Option<u8> {}", &none).unwrap();
        assert!(a.returns == Returns::SomeOnly);
    }
}
