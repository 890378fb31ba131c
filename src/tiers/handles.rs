//! The handles a tier below memory gives the engine and takes back: each holds the tier's
//! own state, which the engine never looks into. Those that hold nothing allocate nothing.

use std::any::Any;

use super::Stored;
use crate::error::Result;

/// A queued write: wait on it (outside every lock) for its outcome.
#[must_use = "a write's outcome is known only by waiting on its ticket"]
pub(crate) struct Ticket(Option<Box<dyn Wait>>);

/// What a tier's ticket waits for.
pub(crate) trait Wait: Send {
    /// Waits for the write's outcome.
    ///
    /// # Errors
    /// The write's failure, as the tier reports it.
    fn wait(self: Box<Self>) -> Result<()>;
}

impl Ticket {
    /// A write with nothing left to wait for.
    pub fn done() -> Self {
        Ticket(None)
    }

    pub fn new(wait: impl Wait + 'static) -> Self {
        Ticket(Some(Box::new(wait)))
    }

    /// Waits for the write's outcome (see the tier's docs for what it waits for and how
    /// long at most).
    ///
    /// # Errors
    /// The write's failure.
    pub fn wait(self) -> Result<()> {
        match self.0 {
            Some(wait) => wait.wait(),
            None => Ok(()),
        }
    }
}

/// Room for one write among those not yet done; given back when dropped unused.
pub(crate) struct Reservation(Option<Box<dyn Any + Send>>);

impl Reservation {
    /// No room held.
    pub fn none() -> Self {
        Reservation(None)
    }

    pub fn new(room: impl Any + Send) -> Self {
        Reservation(Some(Box::new(room)))
    }

    /// The tier's own room, if this holds one of type `T`.
    pub fn take<T: Any>(self) -> Option<T> {
        self.0
            .and_then(|room| room.downcast::<T>().ok())
            .map(|room| *room)
    }
}

/// What [`Lower::stage`](super::Lower::stage) decided.
pub(crate) enum Staging {
    /// Ready to go into a record.
    Ready(Staged),
    /// The record would be larger than the tier can ever hold.
    TooLarge { capacity: u64 },
    /// The tier does not take records this large: the value (its payload given back) stays
    /// in the memory tier, and the key's older record below is removed.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    KeepAbove(Vec<u8>),
}

/// A payload prepared for its record. Drop it only after the put of its record has been
/// waited for, or give it to [`Lower::unstage`](super::Lower::unstage).
pub(crate) struct Staged {
    /// What the record carries: the payload, or the reference to where the tier put it.
    pub payload: Vec<u8>,
    /// Whether the payload was put out of line (the record's `Meta::in_blob`).
    pub out_of_line: bool,
    /// Room the tier held for what it put out of line; taken by `reserve`.
    pub(crate) room: Option<Box<dyn Any + Send>>,
    /// What the tier keeps alive until the record's put is done (a side file's pin).
    pub(crate) keep: Option<Box<dyn Any + Send>>,
}

impl Staged {
    /// A payload that goes into its record as it is.
    pub fn inline(payload: Vec<u8>) -> Self {
        Staged {
            payload,
            out_of_line: false,
            room: None,
            keep: None,
        }
    }

    /// The room held by the tier of type `T`, once.
    pub fn take_room<T: Any>(&mut self) -> Option<T> {
        self.room
            .take()
            .and_then(|room| room.downcast::<T>().ok())
            .map(|room| *room)
    }

    /// What the tier keeps alive of type `T`, once.
    pub fn take_kept<T: Any>(&mut self) -> Option<T> {
        self.keep
            .take()
            .and_then(|keep| keep.downcast::<T>().ok())
            .map(|keep| *keep)
    }
}

/// What asking for a key's lease gave.
pub(crate) enum Lease {
    /// The key has a record: decode it instead of computing.
    Found(Stored),
    /// This caller computes the key; dropping the guard gives the lease back.
    Granted(LeaseGuard),
}

/// A held lease, given back when dropped (after the computed value was stored). `Send`: an
/// async read-through holds it across `.await`.
pub(crate) struct LeaseGuard(#[allow(dead_code)] Option<Box<dyn Send + Sync>>);

impl LeaseGuard {
    /// A lease that holds nothing: no one else to keep out.
    pub fn none() -> Self {
        LeaseGuard(None)
    }

    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        LeaseGuard(Some(Box::new(guard)))
    }
}
