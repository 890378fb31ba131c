//! Files to damage: filled with values that can be found in the file's bytes.

use std::path::Path;

use tiered::{Cache, Durability};

/// The value of key `i`: found in the file by its `V<i>-` prefix, of 100 to 1,000 bytes.
pub fn filled_value(i: u32) -> String {
    let len = 100 + (i as usize * 7_919) % 900;
    let mut v = format!("V{i:05}-");
    v.extend((0..len).map(|j| (b'a' + ((i as usize + j) % 26) as u8) as char));
    v
}

/// Fills the cache in `dir` with keys `0..n` (`u32`) and their `filled_value`s.
pub fn fill_values(dir: &Path, n: u32) {
    let cache = Cache::builder()
        .path(dir)
        .durability(Durability::Batched(std::time::Duration::from_millis(50)))
        .open()
        .unwrap();
    for i in 0..n {
        cache.insert(&i, filled_value(i)).unwrap();
    }
    cache.flush().unwrap();
}

/// The start of the 4 KiB page of `file` holding the value of key `i`.
pub fn value_page(file: &[u8], i: u32) -> usize {
    let marker = format!("V{i:05}-").into_bytes();
    let found = file
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the value's marker is in the file");
    found / 4096 * 4096
}

/// Overwrites `start..end` of the file at `path` in place with random bytes, and syncs it.
pub fn damage_in_place(path: &Path, start: usize, end: usize) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(start as u64)).unwrap();
    let mut bytes = vec![0u8; end - start];
    rand::fill(&mut bytes[..]);
    std::io::Write::write_all(&mut f, &bytes).unwrap();
    f.sync_all().unwrap();
}
