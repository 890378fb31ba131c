#[tiered::memoize]
async fn fetch(id: u32) -> String {
    format!("user {id}")
}

fn main() {
    let _ = fetch(1);
}
