#![allow(dead_code)]

struct Conn;

#[tiered::memoize]
fn not_serialize(day: u32, conn: &Conn) -> u32 {
    let _ = conn;
    day
}

#[tiered::memoize]
fn pattern((a, b): (u32, u32)) -> u32 {
    a + b
}

fn main() {}
