//! What a memoized function's signature means for the cache: which arguments form the key,
//! whether it is a method, and how its return value is cached.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Error, FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Signature, Type};

use crate::args::Args;

/// An argument that takes part in the key, by its value, its type or both.
pub struct KeyArg {
    /// Its name; a hidden one for an `impl Trait` argument named `_`.
    pub ident: Ident,
    pub ty: Type,
    /// Its value is part of the key (its name does not start with `_`).
    pub by_value: bool,
    /// For an argument whose type holds `impl Trait`: whether a bound is `Fn`, `FnMut` or
    /// `FnOnce`. Its type is part of the key, whatever its name.
    pub impl_trait: Option<bool>,
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
    /// The arguments that take part in the key, in order.
    pub key_args: Vec<KeyArg>,
    /// The signature to emit: an `impl Trait` argument named `_` gets a hidden name, so that
    /// its type can be read.
    pub sig: Signature,
    /// The `self` argument, if any.
    pub receiver: Option<syn::Receiver>,
    /// Inside an impl block: a `self` argument, or `Self` named in the signature.
    pub in_impl: bool,
    pub returns: Returns,
    /// The return type; `()` when none is written.
    pub ret: Type,
    /// Type parameters, each with whether it has an `Fn`, `FnMut` or `FnOnce` bound.
    pub type_params: Vec<(Ident, bool)>,
    pub const_params: Vec<Ident>,
}

/// The traits whose implementors are functions: closures, function items and pointers.
const CALLABLE: [&str; 3] = ["Fn", "FnMut", "FnOnce"];

pub fn analyze(sig: &Signature, args: &Args) -> syn::Result<Analysis> {
    if let Some(c) = &sig.constness {
        return Err(Error::new(c.span, "a `const fn` cannot be memoized"));
    }
    let mut key_args = Vec::new();
    let mut receiver = None;
    let mut emitted = sig.clone();
    for (i, input) in emitted.inputs.iter_mut().enumerate() {
        match input {
            FnArg::Receiver(r) => receiver = Some(r.clone()),
            FnArg::Typed(t) => {
                let impl_trait = mentions(t.ty.to_token_stream(), &["impl"])
                    .then(|| mentions(t.ty.to_token_stream(), &CALLABLE));
                let ident = match argument_name(&t.pat)? {
                    Some(ident) => ident,
                    None if impl_trait.is_some() => {
                        let ident = Ident::new(&format!("__tiered_arg{i}"), Span::mixed_site());
                        *t.pat = syn::parse_quote!(#ident);
                        ident
                    }
                    None => continue,
                };
                let by_value = !ident.to_string().starts_with('_');
                if by_value || impl_trait.is_some() {
                    key_args.push(KeyArg {
                        ident,
                        ty: (*t.ty).clone(),
                        by_value,
                        impl_trait,
                    });
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
    if args.refresh.is_some() {
        check_refresh(sig)?;
    }
    let returns = returns(&ret, args.no_cached_none)?;
    check_value_type(&ret, returns)?;
    let mut type_params = Vec::new();
    let mut const_params = Vec::new();
    for param in &sig.generics.params {
        match param {
            syn::GenericParam::Type(t) => {
                type_params.push((t.ident.clone(), callable_param(sig, t)));
            }
            syn::GenericParam::Const(c) => const_params.push(c.ident.clone()),
            syn::GenericParam::Lifetime(_) => {}
        }
    }
    let in_impl = receiver.is_some() || mentions(sig.to_token_stream(), &["Self"]);
    Ok(Analysis {
        key_args,
        sig: emitted,
        receiver,
        in_impl,
        returns,
        ret,
        type_params,
        const_params,
    })
}

/// Whether a type parameter has an `Fn`, `FnMut` or `FnOnce` bound, in its declaration or in
/// the where clause.
fn callable_param(sig: &Signature, param: &syn::TypeParam) -> bool {
    if mentions(param.bounds.to_token_stream(), &CALLABLE) {
        return true;
    }
    let Some(clause) = &sig.generics.where_clause else {
        return false;
    };
    clause.predicates.iter().any(|p| match p {
        syn::WherePredicate::Type(t) => {
            matches!(&t.bounded_ty, Type::Path(path) if path.qself.is_none() && path.path.is_ident(&param.ident))
                && mentions(t.bounds.to_token_stream(), &CALLABLE)
        }
        _ => false,
    })
}

/// `refresh` moves the computation, the arguments with it, to a thread of its own: borrowed
/// arguments (and `&self`) cannot go, and an `async fn` is not supported. Errors that say so,
/// one per argument; an owned argument that is not `Send + 'static` is reported by the check
/// the body makes (`tiered::__memoize::refresh_arg`).
fn check_refresh(sig: &Signature) -> syn::Result<()> {
    const NEEDS: &str = "#[memoize(refresh)] needs arguments that are Send + 'static, since they \
                         move into the recomputation that runs in the background";
    if let Some(a) = &sig.asyncness {
        return Err(Error::new(
            a.span,
            "#[memoize(refresh)] does not work on an `async fn` yet (its recomputation would \
             need to run on a runtime of its own): memoize a blocking function, or leave out \
             `refresh`",
        ));
    }
    let mut errors: Option<Error> = None;
    for input in &sig.inputs {
        let error = match input {
            FnArg::Receiver(r) if borrows(r.ty.to_token_stream()) => Error::new_spanned(
                r,
                format!(
                    "{NEEDS}: `self` is borrowed. Take `self` by value (a cheap `Clone` \
                     handle), or memoize a free function of owned arguments"
                ),
            ),
            FnArg::Typed(t) if borrows(t.ty.to_token_stream()) => {
                let name = match &*t.pat {
                    Pat::Ident(p) => format!("`{}`", p.ident),
                    _ => "this argument".into(),
                };
                Error::new_spanned(
                    &t.ty,
                    format!(
                        "{NEEDS}: {name} is borrowed. Take it by value (`String` rather than \
                         `&str`, `Vec<T>` rather than `&[T]`, `Arc<T>` rather than `&T` for a \
                         shared handle), or leave out `refresh`"
                    ),
                )
            }
            _ => continue,
        };
        match &mut errors {
            Some(all) => all.combine(error),
            None => errors = Some(error),
        }
    }
    errors.map_or(Ok(()), Err)
}

/// Whether a type's tokens borrow: a reference or a lifetime other than `'static`.
fn borrows(tokens: TokenStream) -> bool {
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let is_static = |i: usize| {
        matches!(
            (trees.get(i), trees.get(i + 1)),
            (Some(TokenTree::Punct(q)), Some(TokenTree::Ident(id))) if q.as_char() == '\'' && id == "static"
        )
    };
    trees.iter().enumerate().any(|(i, tree)| match tree {
        TokenTree::Punct(p) if p.as_char() == '&' => !is_static(i + 1),
        TokenTree::Punct(p) if p.as_char() == '\'' => !is_static(i),
        TokenTree::Group(g) => borrows(g.stream()),
        _ => false,
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
        assert!(a
            .key_args
            .iter()
            .all(|k| k.by_value && k.impl_trait.is_none()));
        assert!(a.returns == Returns::Result && !a.in_impl);
        assert_eq!(a.type_params.len(), 1);
        assert_eq!(a.const_params.len(), 1);

        let a = analyze_str("fn f(&self) -> Option<u8> {}", &Args::default()).unwrap();
        assert!(a.returns == Returns::Plain && a.in_impl && a.receiver.is_some());
        let a = analyze_str("fn new(id: u8) -> Self {}", &Args::default()).unwrap();
        assert!(a.in_impl && a.receiver.is_none());
    }

    #[test]
    fn types_count_in_the_key_whatever_the_arguments_name() {
        let a = analyze_str(
            "fn f<F: Fn(u32) -> u32, G, T: Clone>(x: u32, _f: F, _: impl FnMut(), _s: &impl Serialize, _g: G) where G: Copy + FnOnce() {}",
            &Args::default(),
        )
        .unwrap();
        let callable: Vec<(String, bool)> = a
            .type_params
            .iter()
            .map(|(t, c)| (t.to_string(), *c))
            .collect();
        let expected = [("F", true), ("G", true), ("T", false)];
        assert_eq!(callable, expected.map(|(t, c)| (t.to_string(), c)));
        // `x` by value; the two `impl Trait` arguments by type, `_` under a hidden name.
        let parts: Vec<(bool, Option<bool>)> = a
            .key_args
            .iter()
            .map(|k| (k.by_value, k.impl_trait))
            .collect();
        assert_eq!(
            parts,
            [(true, None), (false, Some(true)), (false, Some(false))]
        );
        assert!(a
            .sig
            .to_token_stream()
            .to_string()
            .contains("__tiered_arg2"));
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

    #[test]
    fn refresh_refuses_borrowed_arguments_and_async() {
        let refresh = Args {
            refresh: Some(crate::args::DurationArg::Millis(60_000)),
            ..Args::default()
        };
        for source in [
            "fn f(x: &str) {}",
            "fn f(x: Vec<&'a str>) {}",
            "fn f(x: std::borrow::Cow<'_, str>) {}",
            "fn f(_conn: &&'static Conn) {}",
            "fn f(&self) {}",
            "fn f(self: &Self) {}",
            "async fn f(x: u8) {}",
        ] {
            let err = analyze_str(source, &refresh).err().expect(source);
            assert!(
                err.to_string().starts_with("#[memoize(refresh)]"),
                "{source}: {err}"
            );
        }
        let err = analyze_str("fn f(a: &u8, b: u8, c: &u8) {}", &refresh)
            .err()
            .unwrap();
        assert_eq!(
            err.into_iter().count(),
            2,
            "one error per borrowed argument"
        );
        for source in [
            "fn f(x: String, _y: &'static str, z: Vec<&'static [u8]>) {}",
            "fn f(self, n: u32) -> Self {}",
            "fn f(self: Box<Self>) {}",
        ] {
            assert!(analyze_str(source, &refresh).is_ok(), "{source}");
        }
        assert!(analyze_str("fn f(x: &str) {}", &Args::default()).is_ok());
    }
}
