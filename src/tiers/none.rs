//! The tier below memory of a cache in memory only: it keeps nothing (foyer's `NoopEngine`
//! plays the same part). Each method does what the engine did with no disk tier.

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::Ticket;
use super::{Above, Lease, LeaseGuard, Lower, Reservation, Scanned, Staged, Staging, Stored};
use crate::error::Result;
use crate::generations::Generations;
use crate::record::BlobRef;
use crate::stats::Stats;

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

    fn touch(&self, _digest: u128, _now_ms: u64, _idle: bool) {}

    fn may_contain(&self, _digest: u128) -> bool {
        false
    }

    fn out_of_line(&self, _blob: &BlobRef) -> Option<Arc<crate::bytes::Source>> {
        None
    }

    fn out_of_line_present(&self, _blob: &BlobRef) -> bool {
        false
    }

    fn out_of_line_bytes(&self, _blob: &BlobRef) -> std::result::Result<Vec<u8>, String> {
        Err("the cache keeps nothing below memory".into())
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

    fn unstage(&self, _staged: Staged) {}

    fn put(&self, _digest: u128, _record: Vec<u8>, _room: Reservation) -> Ticket {
        Ticket::done()
    }

    fn remove(&self, _digest: u128) -> Ticket {
        Ticket::done()
    }

    fn forget_elsewhere(&self, _digest: u128) -> Option<Ticket> {
        None
    }

    fn discard(&self, _digest: u128) {}

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

    fn compact(&self) -> Result<()> {
        Ok(())
    }

    fn settle(&self, _until: Instant) -> Result<()> {
        Ok(())
    }

    fn clear_expired_elsewhere(&self) -> Option<Result<u64>> {
        None
    }

    fn stop_serving(&self) {}

    fn leave_at_exit(&self) {}

    fn close(&self) -> Result<()> {
        Ok(())
    }

    fn health(&self) -> Option<crate::Health> {
        None
    }

    fn outage(&self) -> Option<crate::disk::Outage> {
        None
    }

    fn shared_stats(&self) -> Option<Stats> {
        None
    }
}
