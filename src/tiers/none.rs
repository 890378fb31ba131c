//! The tier below memory of a cache in memory only: it keeps nothing (foyer's `NoopEngine`
//! plays the same part). Each method, its own or the trait's provided one, does what the
//! engine did with no disk tier.

use std::sync::Weak;

use super::Ticket;
use super::{Above, Lease, LeaseGuard, Lower, Reservation, Scanned, Staged, Staging, Stored};
use crate::error::Result;
use crate::generations::Generations;

/// Keeps nothing: every read misses, no value is encoded for it (`keeps_records` is false).
pub(crate) struct NoTier;

impl Lower for NoTier {
    fn keeps_records(&self) -> bool {
        false
    }

    fn attach(&self, _above: Weak<dyn Above>) {}

    fn read(&self, _digest: u128) -> Option<Stored> {
        None
    }

    fn may_contain(&self, _digest: u128) -> bool {
        false
    }

    fn scan(&self, _after: Option<u128>, _max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        Ok((Vec::new(), None))
    }

    fn stage(&self, payload: Vec<u8>, _record_bytes: u64) -> Result<Staging> {
        // Never asked: nothing is encoded for a tier that keeps no records.
        Ok(Staging::Ready(Staged::inline(payload)))
    }

    fn reserve(&self, _record_len: usize, _staged: &mut Staged) -> Reservation {
        Reservation::none()
    }

    fn put(&self, _digest: u128, _record: Vec<u8>, _room: Reservation) -> Ticket {
        Ticket::done()
    }

    fn remove(&self, _digest: u128) -> Ticket {
        Ticket::done()
    }

    fn bump(&self, gens: &Generations, label: String, _settle: bool) -> Result<()> {
        gens.bump(&label);
        Ok(())
    }

    fn lease(&self, _digest: u128, _force: bool) -> Result<Lease> {
        // No one shares this cache's misses.
        Ok(Lease::Granted(LeaseGuard::none()))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }
}
