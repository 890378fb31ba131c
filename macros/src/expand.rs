//! What `#[memoize]` and `#[fingerprint]` expand to.
//!
//! A free function keeps its signature; its body becomes a call to `tiered::Memoized` with the
//! body as the computation, and a field-less struct of the same name (type namespace only)
//! carries `VERSION`, `memo()`, `clear()`, `remove(..)`, `explain(..)` and `stats()`. A method
//! cannot have a struct beside it, so it gets associated `<name>_memo()` and
//! `<name>_explain(..)` functions instead.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{AttrStyle, Error, FnArg, ItemFn, Pat};

use crate::args::{Args, DurationArg, Macro};
use crate::key::{cfg_predicates, hidden, key_expr, remove_param_type, Side};
use crate::signature::{analyze, mentions, Analysis, Returns};
use crate::version::code_version;

/// `#[memoize(attr)] item`; errors become `compile_error!`s beside the unchanged item.
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    with_item(item, "#[tiered::memoize]", |func| {
        let args = Args::parse(attr, Macro::Memoize)?;
        let analysis = analyze(&func.sig, &args)?;
        let version = version_expr(func, &args);
        Ok(if analysis.in_impl {
            method(func, &args, &analysis, version)
        } else {
            free_fn(func, &args, &analysis, version)
        })
    })
}

/// `#[fingerprint(attr)] item`: the function unchanged, and a struct with its `VERSION`.
pub fn fingerprint(attr: TokenStream, item: TokenStream) -> TokenStream {
    with_item(item, "#[tiered::fingerprint]", |func| {
        let args = Args::parse(attr, Macro::Fingerprint)?;
        let analysis = analyze(&func.sig, &Args::default())?;
        if analysis.in_impl {
            return Err(Error::new(
                func.sig.ident.span(),
                "#[tiered::fingerprint] goes on free functions (it adds a struct of the same \
                 name, which an impl block cannot hold)",
            ));
        }
        let version = version_expr(func, &args);
        let (vis, name) = (&func.vis, &func.sig.ident);
        let doc = format!(
            "The code version of `{}` (from `#[tiered::fingerprint]`), for the `deps` of \
             memoized functions that call it.",
            name.unraw()
        );
        Ok(quote! {
            #func
            #[allow(non_camel_case_types, dead_code)]
            #[doc = #doc]
            #vis struct #name {}
            #[allow(dead_code)]
            impl #name {
                /// The function's code version: changes whenever its code does.
                pub const VERSION: u64 = #version;
            }
        })
    })
}

fn with_item(
    item: TokenStream,
    attribute: &str,
    expand: impl FnOnce(&ItemFn) -> syn::Result<TokenStream>,
) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(_) => {
            let span = item.clone().into_iter().next().map(|t| t.span());
            let message = format!("{attribute} goes on a function with a body");
            let mut out = Error::new(span.unwrap_or_else(proc_macro2::Span::call_site), message)
                .to_compile_error();
            out.extend(item);
            return out;
        }
    };
    expand(&func).unwrap_or_else(|e| {
        let mut out = e.to_compile_error();
        out.extend(func.into_token_stream());
        out
    })
}

/// `VERSION`: the hash of the function's tokens, with `version = N` and `deps` folded in.
fn version_expr(func: &ItemFn, args: &Args) -> TokenStream {
    let own = Literal::u64_suffixed(code_version(&func.sig, &func.block));
    if args.version.is_none() && args.deps.is_empty() {
        return own.into_token_stream();
    }
    let version = args.version.iter();
    let deps = &args.deps;
    quote!(::tiered::combine_versions(&[#own #(, #version)* #(, #deps::VERSION)*]))
}

/// The predicates of the `cfg`s the function's code names (see `key::cfg_predicates`).
fn cfgs(func: &ItemFn) -> Vec<TokenStream> {
    let mut tokens = func.sig.to_token_stream();
    tokens.extend(func.block.to_token_stream());
    cfg_predicates(tokens)
}

fn free_fn(func: &ItemFn, args: &Args, analysis: &Analysis, version: TokenStream) -> TokenStream {
    let (vis, sig, name) = (&func.vis, &analysis.sig, &func.sig.ident);
    let shown = name.unraw().to_string();
    let outer = func
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Outer));
    let body = body(func, args, analysis, quote!(#name::memo()));

    let (param, cache) = helper_cache(args, func);
    let memo = hidden("memo");
    let key = key_expr(&memo, analysis, false, Side::Remove, &cfgs(func));
    let key_params = key_params(analysis);
    let stored = stored_type(analysis);
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let struct_doc =
        format!("The cache entries of the memoized function `{shown}()` (`#[tiered::memoize]`).");
    let version_doc = format!(
        "The code version of `{shown}()`: changes whenever its code does (comments and \
         formatting aside)."
    );
    let memo_doc = format!("`{shown}()`'s `tiered::Memoized`: its entries in any cache.");
    let clear_doc = format!("Drops every entry of `{shown}()` in its cache.");
    let remove_doc = format!(
        "Drops the entry of `{shown}()` for these arguments; returns whether there was one."
    );
    let stats_doc = format!("`{shown}()`'s hits and misses in its cache since it was opened.");
    let explain_doc = explain_doc(&shown);
    quote! {
        #(#outer)*
        #vis #sig {
            #body
        }

        #[allow(non_camel_case_types, dead_code)]
        #[doc = #struct_doc]
        #vis struct #name {}

        // `remove` and `explain` take as many arguments as the function has in its key.
        #[allow(dead_code, clippy::too_many_arguments)]
        impl #name {
            #[doc = #version_doc]
            pub const VERSION: u64 = #version;

            #[doc = #memo_doc]
            pub fn memo() -> ::tiered::Memoized {
                ::tiered::Memoized::new(
                    ::core::concat!(::core::module_path!(), "::", #shown),
                    Self::VERSION,
                )
            }

            #[doc = #clear_doc]
            pub fn clear(#param) -> ::tiered::Result<()> {
                Self::memo().clear(#cache)
            }

            #[doc = #remove_doc]
            pub fn remove #generics (#param #(#key_params),*) -> ::tiered::Result<bool>
            #where_clause
            {
                let #memo = Self::memo();
                #memo.remove(#cache, #key)
            }

            #[doc = #explain_doc]
            pub fn explain #generics (#param #(#key_params),*)
                -> ::tiered::Result<::tiered::Explanation>
            #where_clause
            {
                let #memo = Self::memo();
                #memo.explain::<#stored>(#cache, &#key)
            }

            #[doc = #stats_doc]
            pub fn stats(#param) -> ::tiered::MemoStats {
                Self::memo().stats(#cache)
            }
        }
    }
}

fn method(func: &ItemFn, args: &Args, analysis: &Analysis, version: TokenStream) -> TokenStream {
    let (vis, sig) = (&func.vis, &analysis.sig);
    let shown = sig.ident.unraw().to_string();
    let memo_fn = format_ident!("{}_memo", shown, span = sig.ident.span());
    let outer = func
        .attrs
        .iter()
        .filter(|a| matches!(a.style, AttrStyle::Outer));
    let body = body(func, args, analysis, quote!(Self::#memo_fn()));
    let doc = format!(
        "`{shown}()`'s `tiered::Memoized`, to clear its entries or read its figures in a \
         cache. Its path is the path of `Self` without generic arguments, then `::{shown}`."
    );
    // Items are not hygienic: names a user's `version = EXPR` cannot mean.
    let (version_id, path_id) = (hidden("__TIERED_VERSION"), hidden("__TIERED_PATH"));
    let explain_fn = format_ident!("{}_explain", shown, span = sig.ident.span());
    let (param, cache) = helper_cache(args, func);
    let memo = hidden("memo");
    let skip_self = args.skip_self.is_some();
    let key = key_expr(&memo, analysis, skip_self, Side::Remove, &cfgs(func));
    let this = match (&analysis.receiver, skip_self) {
        (Some(_), false) => quote!(&self,),
        _ => quote!(),
    };
    let key_params = key_params(analysis);
    let stored = stored_type(analysis);
    let (generics, where_clause) = (&sig.generics, &sig.generics.where_clause);
    let explain_doc = explain_doc(&shown);
    quote! {
        #(#outer)*
        #vis #sig {
            #body
        }

        #[doc = #doc]
        #[allow(dead_code)]
        #vis fn #memo_fn() -> ::tiered::Memoized {
            const #version_id: u64 = #version;
            // A static cannot name `Self`; its first use in the body can.
            static #path_id: ::std::sync::OnceLock<::std::string::String> =
                ::std::sync::OnceLock::new();
            ::tiered::__memoize::method_memo(
                &#path_id,
                ::std::any::type_name::<Self>(),
                #shown,
                #version_id,
            )
        }

        #[doc = #explain_doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis fn #explain_fn #generics (#this #param #(#key_params),*)
            -> ::tiered::Result<::tiered::Explanation>
        #where_clause
        {
            let #memo = Self::#memo_fn();
            #memo.explain::<#stored>(#cache, &#key)
        }
    }
}

/// The cache parameter of the generated helpers and the expression that reaches the cache:
/// when the cache expression needs the call's arguments or `self`, the helpers take the cache
/// as their first parameter instead.
fn helper_cache(args: &Args, func: &ItemFn) -> (TokenStream, TokenStream) {
    let cache_param = hidden("cache");
    match &args.cache {
        Some(expr) if mentions_arguments(expr.to_token_stream(), func) => (
            quote!(#cache_param: &::tiered::Cache,),
            quote!(#cache_param),
        ),
        _ => {
            let expr = cache_expr(args);
            (quote!(), quote!(&(#expr)))
        }
    }
}

/// The parameters of `remove` and `explain`: the key arguments, owned ones by reference.
fn key_params(analysis: &Analysis) -> Vec<TokenStream> {
    analysis
        .key_args
        .iter()
        .map(|a| {
            let (ident, ty) = (&a.ident, remove_param_type(&a.ty));
            quote!(#ident: #ty)
        })
        .collect()
}

/// The type of the value a call stores, which `explain` asks the cache about: the return type,
/// or what `Ok` or `Some` holds when only those are cached.
fn stored_type(analysis: &Analysis) -> TokenStream {
    let ret = &analysis.ret;
    match analysis.returns {
        Returns::Plain => quote!(#ret),
        Returns::Result => quote!(<#ret as ::tiered::__memoize::OkValue>::Value),
        Returns::SomeOnly => quote!(<#ret as ::tiered::__memoize::SomeValue>::Value),
    }
}

fn explain_doc(shown: &str) -> String {
    format!(
        "Why a call of `{shown}()` with these arguments would not be answered from its cache \
         (`Explanation::NeverWritten`, `Expired`, `Invalidated` by a tag or a clear, \
         `CodeChanged`, `Evicted`, `Removed`…), or `Explanation::Hit` if it would. Changes \
         nothing: no drop, no promotion, nothing counted.\n\n\
         # Errors\n\
         `tiered::Error::Encode` if the arguments cannot be encoded as a key."
    )
}

/// The new body: key and options first (the arguments then move into the computation), then
/// the call to `Memoized` with the original body as the computation.
fn body(func: &ItemFn, args: &Args, analysis: &Analysis, memo_expr: TokenStream) -> TokenStream {
    let (memo, cache, key, options, value) = (
        hidden("__tiered_memo"),
        hidden("__tiered_cache"),
        hidden("__tiered_key"),
        hidden("__tiered_options"),
        hidden("__tiered_value"),
    );
    let inner = func
        .attrs
        .iter()
        .filter(|a| !matches!(a.style, AttrStyle::Outer));
    let cache_value = cache_expr(args);
    let key_value = key_expr(
        &memo,
        analysis,
        args.skip_self.is_some(),
        Side::Call,
        &cfgs(func),
    );
    let option_calls = option_calls(args);
    let (ret, block) = (&analysis.ret, &func.block);
    let call = if func.sig.asyncness.is_some() {
        let method = match analysis.returns {
            Returns::Plain => quote!(call_async),
            Returns::Result => quote!(call_result_async),
            Returns::SomeOnly => quote!(call_option_async),
        };
        // `let value: Ret = body;` gives `?` in the body the type to convert into.
        quote! {
            ::tiered::__memoize_async! {
                #memo.#method(#cache, &#options, #key, move || async move {
                    let #value: #ret = #block;
                    #value
                })
                .await
            }
        }
    } else if args.refresh.is_some() {
        let method = match analysis.returns {
            Returns::Plain => quote!(call_refresh),
            Returns::Result => quote!(call_result_refresh),
            Returns::SomeOnly => quote!(call_option_refresh),
        };
        // The computation may run later on another thread, with the arguments moved into it:
        // each must be `Send + 'static`, checked where it is declared (borrowed ones were
        // refused by `analyze`).
        let checks = refresh_checks(func);
        quote! {
            #checks
            #memo.#method(#cache, &#options, #key, move || -> #ret #block)
        }
    } else {
        let method = match analysis.returns {
            Returns::Plain => quote!(call),
            Returns::Result => quote!(call_result),
            Returns::SomeOnly => quote!(call_option),
        };
        quote!(#memo.#method(#cache, &#options, #key, move || -> #ret #block))
    };
    // A cache reached through an argument or `self` is held as a handle of its own (a
    // clone: one reference count), so that the computation may take the argument or `self`
    // by value or by `&mut`.
    let cache_binding = if args
        .cache
        .as_ref()
        .is_some_and(|expr| mentions_arguments(expr.to_token_stream(), func))
    {
        let owned = hidden("__tiered_cache_handle");
        quote! {
            let #owned: ::tiered::Cache = {
                let borrowed: &::tiered::Cache = &(#cache_value);
                ::core::clone::Clone::clone(borrowed)
            };
            let #cache: &::tiered::Cache = &#owned;
        }
    } else {
        quote!(let #cache: &::tiered::Cache = &(#cache_value);)
    };
    quote! {
        #(#inner)*
        let #memo = #memo_expr;
        #cache_binding
        let #key = #key_value;
        let #options = ::tiered::Options::new() #option_calls;
        #call
    }
}

/// `tiered::__memoize::refresh_arg(&arg)` for `self` taken by value and each named argument:
/// a compile error at the argument if its type is not `Send + 'static`.
fn refresh_checks(func: &ItemFn) -> TokenStream {
    let check = quote!(::tiered::__memoize::refresh_arg);
    func.sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(r) => {
                let this = &r.self_token;
                Some(quote_spanned!(this.span=> #check(&#this);))
            }
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => {
                    let ident = &p.ident;
                    Some(quote_spanned!(t.ty.span()=> #check(&#ident);))
                }
                _ => None,
            },
        })
        .collect()
}

fn cache_expr(args: &Args) -> TokenStream {
    match &args.cache {
        Some(expr) => expr.to_token_stream(),
        None => quote!(::tiered::global()),
    }
}

fn option_calls(args: &Args) -> TokenStream {
    let mut calls = TokenStream::new();
    let duration = |d: &DurationArg| match d {
        DurationArg::Millis(ms) => {
            let ms = Literal::u64_suffixed(*ms);
            quote!(::core::time::Duration::from_millis(#ms))
        }
        DurationArg::Expr(e) => e.to_token_stream(),
    };
    if let Some(ttl) = &args.ttl {
        let d = duration(ttl);
        calls.extend(quote!(.ttl(#d)));
    }
    if let Some(idle) = &args.idle {
        let d = duration(idle);
        calls.extend(quote!(.idle(#d)));
    }
    if let Some(refresh) = &args.refresh {
        let d = duration(refresh);
        calls.extend(quote!(.refresh_after(#d)));
    }
    if let Some(early) = &args.refresh_early {
        let d = duration(early);
        calls.extend(quote!(.refresh_early(#d)));
    }
    if let Some(at) = &args.expires_at {
        calls.extend(quote!(.expires_at(#at)));
    }
    if let Some((hour, minute)) = args.at {
        let (h, m) = (Literal::u8_suffixed(hour), Literal::u8_suffixed(minute));
        calls.extend(quote!(.expires_at(::tiered::next_local_time(#h, #m))));
    }
    if let Some(tags) = &args.tags {
        // Each as `&str`, so that a list may mix `&str` and `String`.
        calls.extend(quote!(.tags([#(::core::convert::AsRef::<str>::as_ref(&#tags)),*])));
    }
    if args.memory_only {
        calls.extend(quote!(.memory_only()));
    }
    calls
}

/// Whether `tokens` name `self` or one of the function's arguments.
fn mentions_arguments(tokens: TokenStream, func: &ItemFn) -> bool {
    let names: Vec<String> = func
        .sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(p.ident.to_string()),
                _ => None,
            },
        })
        .collect();
    let mut words: Vec<&str> = names.iter().map(String::as_str).collect();
    words.push("self");
    mentions(tokens, &words)
}
