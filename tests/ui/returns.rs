#![allow(dead_code)]

#[tiered::memoize]
fn borrowed() -> &'static str {
    "a"
}

#[tiered::memoize]
fn borrowed_ok() -> Result<&'static str, String> {
    Ok("a")
}

#[tiered::memoize]
fn opaque() -> impl Iterator<Item = u32> {
    0..3
}

#[tiered::memoize]
const fn constant() -> u32 {
    1
}

struct Repo;

impl Repo {
    #[tiered::fingerprint]
    fn method(&self) -> u32 {
        1
    }
}

#[tiered::memoize]
struct NotAFunction;

fn main() {}
