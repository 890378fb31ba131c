#![allow(dead_code)]

struct Client {
    base: String,
}

impl Client {
    #[tiered::memoize]
    fn fetch(&self, path: String) -> String {
        format!("{}{path}", self.base)
    }
}

fn main() {}
