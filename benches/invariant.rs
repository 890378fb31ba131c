//! The ordering invariant of `tests/ordering.rs` (see `tests/common/invariant.rs`), run long.
//!
//! `cargo bench --bench invariant` runs it for `TIERED_INVARIANT_SECS` seconds (default 60),
//! in rounds of at most `TIERED_INVARIANT_ROUND_SECS` (default 15), each in a fresh folder
//! with its own seed (`TIERED_INVARIANT_SEED` sets the first; each round prints its own), and
//! exits non-zero at the first round that breaks the invariant, printing the violations.
//! Under `cargo test --benches` (no `--bench` argument) it runs one second, as a smoke test.

#[path = "../tests/common/invariant.rs"]
mod invariant;

use std::time::{Duration, Instant};

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a whole number"),
    }
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let total = Duration::from_secs(env_u64("TIERED_INVARIANT_SECS").unwrap_or(if benching {
        60
    } else {
        1
    }));
    let round = Duration::from_secs(env_u64("TIERED_INVARIANT_ROUND_SECS").unwrap_or(15).max(1));
    let first_seed = env_u64("TIERED_INVARIANT_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let began = Instant::now();
    let (mut rounds, mut ops) = (0u64, 0u64);
    while rounds == 0 || began.elapsed() < total {
        let left = total
            .saturating_sub(began.elapsed())
            .max(Duration::from_millis(200));
        let mut cfg = invariant::Config::standard(left.min(round));
        cfg.seed = first_seed.wrapping_add(rounds);
        let dir = tempfile::tempdir().expect("temporary folder");
        match invariant::run(dir.path(), &cfg) {
            Ok(s) => {
                println!(
                    "round {rounds} (seed {}): {} ops, {} reads checked, {} computed, \
                     {} invalidations, {} keys present, {:.1} s",
                    cfg.seed,
                    s.ops,
                    s.reads_checked,
                    s.computed,
                    s.invalidations,
                    s.keys_present,
                    s.elapsed.as_secs_f64()
                );
                ops += s.ops;
            }
            Err(report) => {
                eprintln!(
                    "round {rounds} (seed {}) broke the invariant:\n{report}",
                    cfg.seed
                );
                std::process::exit(1);
            }
        }
        rounds += 1;
    }
    println!(
        "invariant held: {rounds} round(s), {ops} operations, {:.1} s",
        began.elapsed().as_secs_f64()
    );
}
