//! A tier below memory for the engine's tests (`engine/tests.rs`): records in a map, every
//! call counted, and hooks that play what another process or machine would do at the worst
//! moment. Behind the same [`Lower`] as the folder, so the engine's rules are checked without
//! a folder, a socket or a second process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use super::{
    Above, Lease, LeaseGuard, Lower, Reservation, Scanned, Staged, Staging, Stored, Ticket,
};
use crate::disk::lock;
use crate::error::Result;
use crate::generations::Generations;
use crate::ordering::Stripes;

type Hook = Box<dyn FnOnce() + Send>;

/// What the calls of [`StandIn`] were.
#[derive(Default)]
pub(crate) struct Calls {
    pub reads: AtomicUsize,
    pub puts: AtomicUsize,
    pub removes: AtomicUsize,
    pub leases: AtomicUsize,
    /// Writes (`put`, `remove`, `discard`, `unstage`) made without the key's stripe lock.
    pub unlocked_writes: AtomicUsize,
}

#[derive(Default)]
pub(crate) struct StandIn {
    records: Mutex<HashMap<u128, Arc<[u8]>>>,
    pub calls: Calls,
    above: OnceLock<Weak<dyn Above>>,
    /// The cache's stripes, to check that writes come inside the key's lock; set by the test.
    pub stripes: OnceLock<Arc<Stripes>>,
    /// Runs once, inside the next `read`, after the record was read and before it is
    /// returned: a write made elsewhere while the answer is on its way.
    pub after_read: Mutex<Option<Hook>>,
    /// A record that another process stores just before the next `lease` is asked for.
    pub stored_before_lease: Mutex<Option<(u128, Arc<[u8]>)>>,
    /// Leases granted and not given back yet.
    pub leases_held: Arc<AtomicUsize>,
    /// How many leases were held when the last `put` came.
    pub held_at_put: AtomicUsize,
    /// Staged payloads given back through `unstage`.
    pub unstaged: AtomicUsize,
    /// What `stage` keeps alive now (for payloads of 1 KiB or more, as a folder keeps a side
    /// file's pin), and how much of it was alive at each ticket's wait.
    pub kept: Arc<AtomicUsize>,
    pub kept_at_wait: Arc<Mutex<Vec<usize>>>,
}

/// What `stage` keeps alive for a payload, until dropped.
struct Kept(Arc<AtomicUsize>);

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A put's ticket: notes, when waited for, how much of what `stage` kept is still alive.
struct NoteKept(Arc<AtomicUsize>, Arc<Mutex<Vec<usize>>>);

impl super::Wait for NoteKept {
    fn wait(self: Box<Self>) -> Result<()> {
        lock(&self.1).push(self.0.load(Ordering::SeqCst));
        Ok(())
    }
}

impl StandIn {
    /// The cache above, as the tier sees it.
    pub fn above(&self) -> Arc<dyn Above> {
        self.above
            .get()
            .and_then(Weak::upgrade)
            .expect("the stand-in is attached to a live cache")
    }

    /// The record of `digest`, if any.
    pub fn record(&self, digest: u128) -> Option<Arc<[u8]>> {
        lock(&self.records).get(&digest).cloned()
    }

    /// Removes the record of `digest` behind the cache's back.
    pub fn take(&self, digest: u128) -> Option<Arc<[u8]>> {
        lock(&self.records).remove(&digest)
    }

    /// `unstage` is not told its key: some stripe must be held.
    fn check_locked_any(&self) {
        if let Some(stripes) = self.stripes.get() {
            if !stripes.any_locked() {
                self.calls.unlocked_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn check_locked(&self, digest: u128) {
        if let Some(stripes) = self.stripes.get() {
            if !stripes.is_locked(digest) {
                self.calls.unlocked_writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A granted lease; given back (counted) when dropped.
struct Released(Arc<AtomicUsize>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lower for Arc<StandIn> {
    fn attach(&self, above: Weak<dyn Above>) {
        let _ = self.above.set(above);
    }

    fn read(&self, digest: u128) -> Option<Stored> {
        self.calls.reads.fetch_add(1, Ordering::Relaxed);
        let found = self.record(digest);
        if let Some(hook) = lock(&self.after_read).take() {
            hook();
        }
        found.map(|bytes| Stored {
            bytes,
            last_access_ms: None,
        })
    }

    fn may_contain(&self, digest: u128) -> bool {
        lock(&self.records).contains_key(&digest)
    }

    fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        let records = lock(&self.records);
        let mut digests: Vec<u128> = records
            .keys()
            .copied()
            .filter(|d| after.is_none_or(|a| *d > a))
            .collect();
        digests.sort_unstable();
        let more = digests.len() > max;
        digests.truncate(max.max(1));
        let page: Vec<Scanned> = digests
            .iter()
            .map(|d| Scanned {
                digest: *d,
                bytes: records[d].clone(),
                last_access_ms: None,
            })
            .collect();
        let cursor = more.then(|| digests.last().copied()).flatten();
        Ok((page, cursor))
    }

    fn stage(&self, payload: Vec<u8>, _record_bytes: u64) -> Result<Staging> {
        let mut staged = Staged::inline(payload);
        if staged.payload.len() >= 1024 {
            self.kept.fetch_add(1, Ordering::SeqCst);
            staged.keep = Some(Box::new(Kept(self.kept.clone())));
        }
        Ok(Staging::Ready(staged))
    }

    fn reserve(&self, _record_len: usize, _staged: &mut Staged) -> Reservation {
        Reservation::none()
    }

    fn unstage(&self, mut staged: Staged) {
        if let Some(keep) = staged.keep.take() {
            // Inside the key's lock, like the folder's deletion of the side file.
            self.check_locked_any();
            drop(keep);
        }
        self.unstaged.fetch_add(1, Ordering::SeqCst);
    }

    fn put(&self, digest: u128, record: Vec<u8>, _room: Reservation) -> Ticket {
        self.check_locked(digest);
        self.calls.puts.fetch_add(1, Ordering::Relaxed);
        self.held_at_put
            .store(self.leases_held.load(Ordering::SeqCst), Ordering::SeqCst);
        lock(&self.records).insert(digest, record.into());
        Ticket::new(NoteKept(self.kept.clone(), self.kept_at_wait.clone()))
    }

    fn remove(&self, digest: u128) -> Ticket {
        self.check_locked(digest);
        self.calls.removes.fetch_add(1, Ordering::Relaxed);
        lock(&self.records).remove(&digest);
        Ticket::done()
    }

    fn forget_elsewhere(&self, digest: u128) -> Option<Ticket> {
        self.check_locked(digest);
        None
    }

    fn discard(&self, digest: u128) {
        self.check_locked(digest);
        lock(&self.records).remove(&digest);
    }

    fn bump(&self, gens: &Generations, label: String, _settle: bool) -> Result<()> {
        gens.bump(&label);
        Ok(())
    }

    fn lease(&self, digest: u128, force: bool) -> Result<Lease> {
        self.calls.leases.fetch_add(1, Ordering::Relaxed);
        if let Some((d, bytes)) = lock(&self.stored_before_lease).take() {
            lock(&self.records).insert(d, bytes);
        }
        match self.record(digest) {
            Some(bytes) if !force => Ok(Lease::Found(Stored {
                bytes,
                last_access_ms: None,
            })),
            _ => {
                self.leases_held.fetch_add(1, Ordering::SeqCst);
                Ok(Lease::Granted(LeaseGuard::new(Released(
                    self.leases_held.clone(),
                ))))
            }
        }
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn close(&self) -> Result<()> {
        Ok(())
    }
}
