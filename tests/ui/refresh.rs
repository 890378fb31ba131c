#![allow(dead_code)]

use std::rc::Rc;

#[tiered::memoize(refresh = "1m")]
fn borrowed(name: &str, times: u32, _conn: &Conn) -> String {
    name.repeat(times as usize)
}

#[tiered::memoize(refresh = "1m")]
fn not_send(id: u32, _shared: Rc<u32>) -> u32 {
    id + *_shared
}

struct Conn;

impl Conn {
    #[tiered::memoize(refresh = "1m", skip_self)]
    fn fetch(&self, id: u32) -> u32 {
        id
    }
}

#[tiered::memoize(refresh = "1m")]
async fn later(id: u32) -> u32 {
    id
}

#[tiered::memoize(refresh = "soon")]
fn bad_duration() -> u32 {
    1
}

#[tiered::memoize(ttl = "1m", refresh = "1h")]
fn never_due() -> u32 {
    1
}

#[tiered::memoize(refresh = "0s")]
fn always_due() -> u32 {
    1
}

#[tiered::memoize(ttl = "1h", refresh_early = "1m")]
fn early_without_refresh() -> u32 {
    1
}

fn main() {}
