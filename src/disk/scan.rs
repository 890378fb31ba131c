//! Walking the committed records in digest order, a page at a time: for the admin functions
//! (`admin/pages.rs`: listing, export, clearing expired entries) and tools.
//!
//! A page is read in one read transaction, so it is consistent with itself; pages are not
//! consistent with each other (writes land in between), which a listing can live with. This
//! process's uncommitted writes overlay the file, as for a read.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::Arc;

use super::tables::{last_access, ACCESS, RECORDS};
use super::{lock, LocalTier};
use crate::error::Result;

pub(crate) use crate::tiers::Scanned;

impl LocalTier {
    /// Up to `max` records (at least one) whose digest comes after `after`, and the cursor to
    /// continue from: the last digest scanned, or `None` when the table has no more.
    ///
    /// # Errors
    /// [`Error::Storage`](crate::Error::Storage) if the tier is out of service or the read
    /// fails (which takes it out of service, as any failed read does).
    pub fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        let max = max.max(1);
        let shared = &self.shared;
        let page = shared.read(|txn| {
            let records = txn.open_table(RECORDS)?;
            let access = txn.open_table(ACCESS)?;
            let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
            let mut out = Vec::new();
            let mut last = None;
            let mut more = false;
            for item in records.range::<u128>((lower, Bound::Unbounded))? {
                if out.len() >= max {
                    more = true;
                    break;
                }
                let (digest, bytes) = item?;
                let digest = digest.value();
                last = Some(digest);
                let stored = last_access(&access, digest, bytes.value())?;
                out.push(Scanned {
                    digest,
                    bytes: Arc::from(bytes.value()),
                    last_access_ms: stored,
                });
            }
            Ok((out, if more { last } else { None }))
        });
        let Some((mut page, cursor)) = page else {
            return Err(self.storage_error(shared.outage_message()));
        };
        // This process's uncommitted writes win over the file (new keys among them join the
        // page whose digest range holds them), and its read times not yet written over the
        // stored ones.
        if shared
            .pending_len
            .load(std::sync::atomic::Ordering::Acquire)
            != 0
        {
            let pending = lock(&shared.pending);
            let scanned: HashSet<u128> = page.iter().map(|s| s.digest).collect();
            page.retain_mut(|s| match pending.get(&s.digest) {
                None => true,
                Some((_, None)) => false,
                Some((_, Some(bytes))) => {
                    s.bytes = bytes.clone();
                    true
                }
            });
            let in_range = |d: u128| after.is_none_or(|a| d > a) && cursor.is_none_or(|c| d <= c);
            for (digest, (_, bytes)) in pending.iter() {
                if let Some(bytes) = bytes {
                    if in_range(*digest) && !scanned.contains(digest) {
                        page.push(Scanned {
                            digest: *digest,
                            bytes: bytes.clone(),
                            last_access_ms: None,
                        });
                    }
                }
            }
            page.sort_unstable_by_key(|s| s.digest);
        }
        let touches = lock(&shared.touches);
        for s in &mut page {
            if let (Some(stored), Some(touched)) = (s.last_access_ms, touches.get(&s.digest)) {
                s.last_access_ms = Some(stored.max(*touched));
            } else if crate::record::has_idle_limit(&s.bytes) {
                s.last_access_ms = s.last_access_ms.or(touches.get(&s.digest).copied());
            }
        }
        Ok((page, cursor))
    }
}
