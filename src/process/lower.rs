//! The folder as the tier below memory: each call done here if this process owns the folder,
//! else sent to the process that does (see the module docs).

use std::sync::{Arc, Weak};
use std::time::Instant;

#[cfg(unix)]
use super::{client, takeover, wire};
use super::{owner_bump, owner_lease, owner_write, refresh_view, DiskTier, Lease, Role, Ticket};
use crate::disk::{self, blobs, Reservation, SideReservation};
use crate::error::{Error, Result};
use crate::generations::Generations;
use crate::record::BlobRef;
use crate::stats::Stats;
use crate::tiers::{self, Above, Lower, Scanned, Staged, Staging, Stored};

/// A side file written for a record not yet put: deleted if the record never will be, pinned
/// until it is (see `disk/blobs.rs`).
struct SideFile {
    blob: BlobRef,
    _pin: blobs::Pin,
}

impl tiers::Wait for Ticket {
    fn wait(self: Box<Self>) -> Result<()> {
        Ticket::wait(*self)
    }
}

impl DiskTier {
    fn write(
        &self,
        digest: u128,
        record: Option<Vec<u8>>,
        reservation: Option<Reservation>,
    ) -> tiers::Ticket {
        let ticket = match self.state.role() {
            Some(Role::Owner(o)) => owner_write(&o, digest, record, reservation),
            #[cfg(unix)]
            Some(Role::Client(c)) => client::write(&self.state, Some(&c), digest, record),
            #[cfg(unix)]
            None => client::write(&self.state, None, digest, record),
            #[cfg(not(unix))]
            None => unreachable!("without sockets a process is always its folder's owner"),
        };
        tiers::Ticket::new(ticket)
    }

    /// Room for a side file among the writes not yet committed; a client's side files are
    /// admitted by the owner.
    fn reserve_side(&self, bytes: usize) -> SideReservation {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.reserve_side(bytes),
            _ => SideReservation::none(),
        }
    }
}

impl Lower for DiskTier {
    /// The owner starts serving its socket; a client starts applying the owner's notices to
    /// the cache above.
    fn attach(&self, above: Weak<dyn Above>) {
        let _ = self.state.above.set(above);
        refresh_view(&self.state);
        #[cfg(unix)]
        if let Some(Role::Owner(owner)) = self.state.role() {
            takeover::serve(&self.state, &owner);
        }
    }

    /// A failure to read (here or through the owner) is a miss.
    fn read(&self, digest: u128) -> Option<Stored> {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.read(digest),
            #[cfg(unix)]
            _ => client::read(&self.state, digest),
            #[cfg(not(unix))]
            None => None,
        }
    }

    fn touch(&self, digest: u128, now_ms: u64, idle: bool) {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.touch(digest, now_ms, idle),
            #[cfg(unix)]
            Some(Role::Client(c)) => c.touch(digest, now_ms, idle),
            None => {}
        }
    }

    /// A client cannot tell without asking, so it says yes (the owner ignores a removal of
    /// nothing).
    fn may_contain(&self, digest: u128) -> bool {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.may_contain(digest),
            _ => true,
        }
    }

    /// A side file's bytes, mapped, not copied. Side files are read directly by every
    /// process of the folder.
    fn out_of_line(&self, blob: &BlobRef) -> Option<Arc<crate::bytes::Source>> {
        blobs::read_shared(&self.state.dir, blob)
    }

    fn out_of_line_present(&self, blob: &BlobRef) -> bool {
        blobs::present(&self.state.dir, blob)
    }

    fn out_of_line_bytes(&self, blob: &BlobRef) -> std::result::Result<Vec<u8>, String> {
        blobs::try_read(&self.state.dir, blob)
    }

    /// In digest order; the cursor is the last digest seen: see `disk/scan.rs`.
    fn scan(&self, after: Option<u128>, max: usize) -> Result<(Vec<Scanned>, Option<u128>)> {
        match self.state.usable_role()? {
            Role::Owner(o) => o.local.scan(after, max),
            #[cfg(unix)]
            Role::Client(_) => client::scan(&self.state, after, max),
        }
    }

    /// Refused above the folder's capacity (the record would be evicted by its own commit).
    /// A payload of `blobs::THRESHOLD` bytes or more goes to a side file, durably, written
    /// directly by this process (the owner's or not); room for it first, so that the files
    /// of writes not yet committed are bounded too.
    fn stage(&self, payload: Vec<u8>, record_bytes: u64) -> Result<Staging> {
        let capacity = self.state.cfg.capacity;
        if record_bytes > capacity {
            return Ok(Staging::TooLarge { capacity });
        }
        if payload.len() < blobs::THRESHOLD {
            return Ok(Staging::Ready(Staged::inline(payload)));
        }
        let room = self.reserve_side(payload.len());
        let (blob, pin) = blobs::write(&self.state.dir, &payload)
            .map_err(|e| Error::io(self.state.dir.join(blobs::FOLDER), e))?;
        Ok(Staging::Ready(Staged {
            payload: blob.to_bytes().to_vec(),
            out_of_line: true,
            room: Some(Box::new(room)),
            // Held until the put has been waited for: see `disk/blobs.rs`.
            keep: Some(Box::new(SideFile { blob, _pin: pin })),
        }))
    }

    /// Room in the writer's queue (with the side file's); a client's writes are admitted by
    /// the owner.
    fn reserve(&self, record_len: usize, staged: &mut Staged) -> tiers::Reservation {
        let room = match self.state.role() {
            Some(Role::Owner(o)) => o.local.reserve(record_len),
            _ => Reservation::none(),
        };
        let room = match staged.take_room::<SideReservation>() {
            Some(side) => room.with_side(side),
            None => room,
        };
        tiers::Reservation::new(room)
    }

    /// Deletes the side file written for it.
    fn unstage(&self, mut staged: Staged) {
        if let Some(side) = staged.take_kept::<SideFile>() {
            blobs::delete(&self.state.dir, &[side.blob.id]);
        }
    }

    fn put(&self, digest: u128, record: Vec<u8>, room: tiers::Reservation) -> tiers::Ticket {
        let room = room.take::<Reservation>();
        debug_assert!(room.is_some(), "a reservation this tier did not make");
        let room = room.unwrap_or_else(Reservation::none);
        self.write(digest, Some(record), Some(room))
    }

    fn remove(&self, digest: u128) -> tiers::Ticket {
        self.write(digest, None, None)
    }

    /// The owner tells its clients; a client's removal always goes to the owner
    /// (`may_contain`).
    fn forget_elsewhere(&self, digest: u128) -> Option<tiers::Ticket> {
        match self.state.role() {
            #[cfg(unix)]
            Some(Role::Owner(o)) => o
                .tell(wire::Notice::Forget { digest })
                .map(|acks| tiers::Ticket::new(Ticket::Told(acks))),
            _ => {
                let _ = digest;
                None
            }
        }
    }

    /// A client leaves it to the owner's sweeper (which finds expired and invalidated
    /// records itself): a removal sent from here could land after another process rewrote
    /// the key.
    fn discard(&self, digest: u128) {
        if let Some(Role::Owner(o)) = self.state.role() {
            o.local.discard(digest);
        }
    }

    /// Persisted, then told to the other processes. The owner raises the generation first;
    /// a client's follows the owner's answer (a bump made here first would stay ahead of the
    /// owner's if the request failed, and every record this process stamped after it would
    /// reach the owner as stale), or is raised here if this process took the folder over
    /// meanwhile.
    fn bump(&self, gens: &Generations, label: String, settle: bool) -> Result<()> {
        let generation = self.is_owner().then(|| gens.bump(&label));
        match self.state.usable_role()? {
            Role::Owner(o) => {
                let generation = generation.unwrap_or_else(|| gens.bump(&label));
                owner_bump(&o, label, generation, settle).wait()
            }
            #[cfg(unix)]
            Role::Client(_) => client::bump(&self.state, label, settle),
        }
    }

    /// See `lease.rs`.
    fn lease(&self, digest: u128, force: bool) -> Result<tiers::Lease> {
        let lease = match self.state.usable_role()? {
            Role::Owner(o) => owner_lease(&o, digest, force),
            #[cfg(unix)]
            Role::Client(_) => client::lease(&self.state, digest, force)?,
        };
        Ok(match lease {
            Lease::Found(stored) => tiers::Lease::Found(stored),
            Lease::Granted(guard) => tiers::Lease::Granted(tiers::LeaseGuard::new(guard)),
        })
    }

    /// By the owner, for a client. Writes an owner acknowledged and then lost (it ended
    /// before committing them) are reported here, once per thread: every thread that flushes
    /// after the loss learns of it (its own writes may be among those lost).
    fn flush(&self) -> Result<()> {
        match self.state.usable_role()? {
            Role::Owner(o) => o.local.flush(),
            #[cfg(unix)]
            Role::Client(_) => client::simple(&self.state, wire::Request::Flush),
        }?;
        thread_local! {
            static REPORTED: std::cell::RefCell<std::collections::HashMap<u64, u64>> =
                std::cell::RefCell::default();
        }
        let lost = self
            .state
            .batched_lost
            .load(std::sync::atomic::Ordering::Acquire);
        // At exit the thread's locals may be gone already (exit() runs their destructors
        // before the exit hook): then nothing counts as reported.
        let reported = REPORTED
            .try_with(|r| {
                let mut r = r.borrow_mut();
                let seen = r.entry(self.state.id).or_insert(0);
                std::mem::replace(seen, lost.max(*seen))
            })
            .unwrap_or(0);
        if lost > reported {
            return Err(Error::WritesLost {
                path: self.state.dir.clone(),
                writes: lost - reported,
            });
        }
        Ok(())
    }

    /// Commits, sweeps, evicts and compacts the database file (see `disk/space.rs`).
    fn compact(&self) -> Result<()> {
        match self.state.usable_role()? {
            Role::Owner(o) => o.local.compact(),
            #[cfg(unix)]
            Role::Client(_) => client::simple(&self.state, wire::Request::Compact),
        }
    }

    fn settle(&self, until: Instant) -> Result<()> {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.settle(until),
            _ => Ok(()),
        }
    }

    /// A client (or a process between two owners) asks the owner; the owner does it itself.
    fn clear_expired_elsewhere(&self) -> Option<Result<u64>> {
        match self.state.role() {
            #[cfg(unix)]
            Some(Role::Client(_)) | None => Some(client::clear_expired(&self.state)),
            _ => None,
        }
    }

    /// Stops serving the folder's socket: other processes take the folder over.
    fn stop_serving(&self) {
        if let Some(Role::Owner(o)) = self.state.role() {
            o.stop_serving();
        }
    }

    /// An owner stops serving and removes its socket and owner files, if they are still its
    /// own.
    fn leave_at_exit(&self) {
        if let Some(Role::Owner(o)) = self.state.role() {
            // Commits what it acknowledged before it tells its clients the end is clean.
            o.stop_serving();
            o.local.leave_at_exit();
        }
    }

    /// Stops serving (the clients take over), commits everything queued and releases the
    /// file; a client just disconnects.
    fn close(&self) -> Result<()> {
        if self
            .state
            .closed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(()); // closed already
        }
        match self.state.role() {
            Some(Role::Owner(o)) => {
                o.stop_serving();
                o.local.close()
            }
            #[cfg(unix)]
            Some(Role::Client(c)) => {
                c.close();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The owner not answering, or the folder waited for.
    fn health(&self) -> Option<crate::Health> {
        match self.state.role() {
            #[cfg(unix)]
            Some(Role::Client(c)) => match (&c.detached, c.silent_since()) {
                (Some(why), Some(since)) => Some(crate::Health::WaitingForFolder {
                    reason: why.clone(),
                    since,
                }),
                (None, Some(since)) => Some(crate::Health::OwnerNotAnswering {
                    pid: c.owner_pid,
                    since,
                }),
                (_, None) => None,
            },
            _ => None,
        }
    }

    fn outage(&self) -> Option<disk::Outage> {
        match self.state.role() {
            Some(Role::Owner(o)) => o.local.outage(),
            _ => None,
        }
    }

    /// The owner's figures, for a client.
    fn shared_stats(&self) -> Option<Stats> {
        match self.state.role() {
            #[cfg(unix)]
            Some(Role::Client(c)) => c.stats(),
            _ => None,
        }
    }

    /// The holder's clients' last reports (for the holder), or every process as the holder
    /// has them (for a client, which then leaves itself out).
    fn other_processes(&self) -> Result<Vec<crate::ProcessStats>> {
        #[cfg(unix)]
        {
            let me = std::process::id();
            let mut all = client::processes(&self.state)?;
            all.retain(|p| p.pid != me || p.holds_folder);
            Ok(all)
        }
        #[cfg(not(unix))]
        Ok(Vec::new())
    }

    /// The holder's memory of a dropped key, for a client.
    fn fate(&self, digest: u128) -> Option<crate::Explanation> {
        match self.state.role() {
            #[cfg(unix)]
            Some(Role::Client(c)) if c.detached.is_none() => c.fate(digest),
            _ => None,
        }
    }

    fn folder(&self) -> Option<&DiskTier> {
        Some(self)
    }
}
