//! The options of `#[memoize(...)]` and `#[fingerprint(...)]`.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, ExprLit, Lit, Meta, Path, Token};

use crate::duration::{parse_duration, parse_time_of_day};

/// A duration option: a string read at compile time, or an expression giving a `Duration`.
pub enum DurationArg {
    Millis(u64),
    Expr(Expr),
}

/// The options, checked for form (values of the right kind, none twice, none unknown).
#[derive(Default)]
pub struct Args {
    pub cache: Option<Expr>,
    pub ttl: Option<DurationArg>,
    pub idle: Option<DurationArg>,
    /// `refresh = "1m"`: `Options::refresh_after`, through `Memoized::call_refresh` and kin.
    pub refresh: Option<DurationArg>,
    /// `refresh_early = "1m"`: `Options::refresh_early` (with `refresh` only).
    pub refresh_early: Option<DurationArg>,
    /// Where `refresh` was written, for the error that compares it with `ttl`.
    pub refresh_span: Option<Expr>,
    pub expires_at: Option<Expr>,
    /// `at = "HH:MM"`: hour and minute.
    pub at: Option<(u8, u8)>,
    pub tags: Option<Vec<Expr>>,
    pub memory_only: bool,
    pub version: Option<Expr>,
    pub deps: Vec<Path>,
    /// Where `skip_self` was written, if it was.
    pub skip_self: Option<Span>,
    /// Where `cache_none = false` was written, if it was (`cache_none = true` is the default).
    pub no_cached_none: Option<Span>,
}

/// Which attribute the options belong to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Macro {
    Memoize,
    Fingerprint,
}

const MEMOIZE_OPTIONS: &[&str] = &[
    "cache",
    "ttl",
    "idle",
    "refresh",
    "refresh_early",
    "expires_at",
    "at",
    "tags",
    "memory_only",
    "version",
    "deps",
    "skip_self",
    "cache_none",
];
const FINGERPRINT_OPTIONS: &[&str] = &["version", "deps"];

impl Args {
    pub fn parse(tokens: TokenStream, attribute: Macro) -> syn::Result<Args> {
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
        let mut args = Args::default();
        let mut seen: Vec<String> = Vec::new();
        let known = match attribute {
            Macro::Memoize => MEMOIZE_OPTIONS,
            Macro::Fingerprint => FINGERPRINT_OPTIONS,
        };
        for meta in metas {
            let name = quote::ToTokens::to_token_stream(meta.path())
                .to_string()
                .replace(' ', "");
            if !known.contains(&name.as_str()) {
                return Err(Error::new_spanned(
                    meta.path(),
                    format!(
                        "unknown option `{name}`; the options are: {}",
                        known.join(", ")
                    ),
                ));
            }
            if seen.contains(&name) {
                return Err(Error::new_spanned(
                    meta.path(),
                    format!("`{name}` is given twice"),
                ));
            }
            seen.push(name.clone());
            match name.as_str() {
                "memory_only" => {
                    flag(&meta)?;
                    args.memory_only = true;
                }
                "skip_self" => {
                    flag(&meta)?;
                    args.skip_self = Some(meta.span());
                }
                _ => {
                    let value = value(meta, &name)?;
                    args.set(&name, value)?;
                }
            }
        }
        if args.refresh_early.is_some() && args.refresh.is_none() {
            return Err(Error::new(
                Span::call_site(),
                "`refresh_early` goes with `refresh`: it starts the refresh of a value before \
                 its refresh age; give `refresh = \"5m\"` too",
            ));
        }
        if let (Some(DurationArg::Millis(ttl)), Some(DurationArg::Millis(refresh)), Some(at)) =
            (&args.ttl, &args.refresh, &args.refresh_span)
        {
            if refresh >= ttl {
                return Err(Error::new_spanned(
                    at,
                    format!(
                        "`refresh` ({refresh} ms) is not shorter than `ttl` ({ttl} ms): the value \
                         expires before it is due for a refresh, so none would happen; give a \
                         `refresh` shorter than the `ttl`"
                    ),
                ));
            }
        }
        Ok(args)
    }

    fn set(&mut self, name: &str, value: Expr) -> syn::Result<()> {
        let deadline_set = self.at.is_some() || self.expires_at.is_some();
        if matches!(name, "at" | "expires_at") && deadline_set {
            return Err(Error::new_spanned(
                &value,
                "give one of `at` and `expires_at`: both set the entry's deadline",
            ));
        }
        match name {
            "cache" => self.cache = Some(value),
            "ttl" => self.ttl = Some(duration(value)?),
            "idle" => self.idle = Some(duration(value)?),
            "refresh" => {
                let refresh = duration(value.clone())?;
                if let DurationArg::Millis(0) = refresh {
                    return Err(Error::new_spanned(
                        &value,
                        "`refresh` of zero would recompute the value in the background at every \
                         hit: give the age after which a value is due, such as \"1m\"",
                    ));
                }
                self.refresh = Some(refresh);
                self.refresh_span = Some(value);
            }
            "refresh_early" => self.refresh_early = Some(duration(value)?),
            "expires_at" => self.expires_at = Some(value),
            "at" => {
                let text = string(&value, "at = \"16:00\"")?;
                self.at =
                    Some(parse_time_of_day(&text).map_err(|e| Error::new_spanned(&value, e))?);
            }
            "tags" => match value {
                Expr::Array(array) => self.tags = Some(array.elems.into_iter().collect()),
                other => {
                    return Err(Error::new_spanned(
                        other,
                        "write the tags as a list: `tags = [\"prices\", \"eu\"]`",
                    ))
                }
            },
            "version" => self.version = Some(value),
            "deps" => self.deps = deps(value)?,
            "cache_none" => {
                match &value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Bool(b), ..
                    }) => {
                        if !b.value {
                            self.no_cached_none = Some(b.span());
                        }
                    }
                    other => return Err(Error::new_spanned(
                        other,
                        "write `cache_none = false` (to leave `None` out of the cache) or leave \
                         it out",
                    )),
                }
            }
            _ => {
                let message = format!("unknown option `{name}`");
                return Err(Error::new_spanned(value, message));
            }
        }
        Ok(())
    }
}

fn flag(meta: &Meta) -> syn::Result<()> {
    match meta {
        Meta::Path(_) => Ok(()),
        other => {
            let name = quote::ToTokens::to_token_stream(other.path()).to_string();
            Err(Error::new_spanned(
                other,
                format!("`{name}` takes no value: write just `{name}`"),
            ))
        }
    }
}

fn value(meta: Meta, name: &str) -> syn::Result<Expr> {
    match meta {
        Meta::NameValue(nv) => Ok(nv.value),
        other => Err(Error::new_spanned(
            other,
            format!("`{name}` needs a value: write `{name} = ...`"),
        )),
    }
}

fn string(value: &Expr, example: &str) -> syn::Result<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(Error::new_spanned(
            other,
            format!("write a string: `{example}`"),
        )),
    }
}

fn duration(value: Expr) -> syn::Result<DurationArg> {
    match &value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => parse_duration(&s.value())
            .map(DurationArg::Millis)
            .map_err(|e| Error::new(s.span(), e)),
        _ => Ok(DurationArg::Expr(value)),
    }
}

fn deps(value: Expr) -> syn::Result<Vec<Path>> {
    let hint = "list functions marked `#[tiered::memoize]` or `#[tiered::fingerprint]` by \
                path: `deps = [parse_row, crate::db::query]`";
    let Expr::Array(array) = value else {
        return Err(Error::new_spanned(value, hint));
    };
    array
        .elems
        .into_iter()
        .map(|e| match e {
            Expr::Path(p) if p.qself.is_none() => Ok(p.path),
            other => Err(Error::new_spanned(other, hint)),
        })
        .collect()
}
