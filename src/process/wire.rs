//! The messages between the owner of a cache folder and its clients, and how they travel.
//!
//! A frame is a header of five bytes, the protocol version then the body's length (`u32`,
//! little-endian), followed by the body: one message in postcard. A frame over
//! [`MAX_FRAME`] bytes, of another version, or whose body does not decode closes the
//! connection (the owner first answers with an error naming what was wrong, when it can).
//! Records are small (a payload of 64 KiB or more lives in a side file that both processes
//! read and write directly), so the bound is never in a caller's way.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The version of this protocol: a frame of another version is refused. 2: the greeting
/// gives the client its epochs slot; `Ping`. 3: `Stats` counts refreshes. 4: `Report` and
/// `Processes` (each process's counters, for `tiered stats`); `Fate` (for `explain`).
pub(crate) const VERSION: u8 = 4;
/// The largest body a frame may carry.
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// A read time: the record's digest, when, and whether it has an idle limit.
pub(crate) type Touch = (u128, u64, bool);

/// A client's message, with the id its answer will carry (`0`: no answer wanted).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Up {
    pub id: u64,
    pub request: Request,
}

/// [`Up`] by reference, for sending: the same bytes.
#[derive(Serialize)]
pub(crate) struct UpRef<'a> {
    pub id: u64,
    pub request: &'a Request,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    /// The first message of a connection.
    Hello {
        pid: u32,
    },
    /// The record of a digest, committed or queued.
    Read {
        digest: u128,
    },
    /// Store a record; answered after the commit when `durable`.
    Put {
        digest: u128,
        record: Vec<u8>,
        durable: bool,
        /// The names of the record's labels still at generation 0 (its tags), which the
        /// owner may not know: written to the folder with the record.
        labels: Vec<String>,
    },
    Remove {
        digest: u128,
        durable: bool,
    },
    /// Move a label to a new generation: an invalidation.
    Bump {
        label: String,
        settle: bool,
        durable: bool,
    },
    /// Read times (digest, when, whether the record has an idle limit), for idle expiry and
    /// eviction order (no answer).
    Touch {
        touches: Vec<(u128, u64, bool)>,
    },
    Flush,
    Compact,
    /// The record of a digest if there is one, else the right to compute it: see `lease.rs`.
    Lease {
        digest: u128,
        force: bool,
    },
    /// Gives a lease back (no answer).
    Release {
        digest: u128,
    },
    /// Leases this client held from the previous owner (no answer).
    Relet {
        digests: Vec<u128>,
    },
    /// Every notice up to `seq` is applied (no answer).
    Ack {
        seq: u64,
    },
    Stats,
    /// Up to `max` records after `after`, in digest order (see `disk/scan.rs`).
    Scan {
        after: Option<u128>,
        max: u32,
    },
    /// Drop every expired entry now.
    ClearExpired,
    /// Answered at once with `Pong`: the owner is running (a client waiting long for an
    /// answer, or one that found its owner silent, asks).
    Ping,
    /// This client's counters (no answer): sent each second while they change, kept by the
    /// owner for `Processes`.
    Report {
        stats: crate::Stats,
    },
    /// Every connected process's last counters, the owner's own included.
    Processes,
    /// What became of a dropped key, as the owner remembers it.
    Fate {
        digest: u128,
    },
}

/// The owner's message: an answer to a request, or a notice of a change.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Down {
    Reply { id: u64, reply: Reply },
    Notice { seq: u64, notice: Notice },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    Hello {
        pid: u32,
        generations: Vec<(String, u64)>,
        /// The client's slot in the folder's epochs file, and the value it holds now (see
        /// `epochs.rs`).
        slot: u32,
        epoch: u64,
    },
    Pong,
    Record(Option<StoredRecord>),
    Done,
    Bumped {
        /// The label moved, so that an answer that comes after its caller gave up (the owner
        /// was stopped) still moves this process's generation.
        label: String,
        generation: u64,
    },
    /// The lease is this client's: compute, store, release.
    Granted,
    Stats(Box<crate::Stats>),
    Scanned {
        records: Vec<ScannedRecord>,
        next: Option<u128>,
        /// The names of the labels the records carry.
        labels: Vec<String>,
    },
    Count(u64),
    Processes(Vec<crate::ProcessStats>),
    Fate(Option<crate::Explanation>),
    /// The request failed; the text says why.
    Error(String),
    /// Unasked (id 0): the owner is closing cleanly; its close commits everything it
    /// acknowledged.
    Closing,
}

/// A record as the owner read it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StoredRecord {
    pub bytes: Vec<u8>,
    pub last_access_ms: Option<u64>,
}

/// A record of a scan.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ScannedRecord {
    pub digest: u128,
    pub bytes: Vec<u8>,
    pub last_access_ms: Option<u64>,
}

/// A change every client applies to its memory tier before it acknowledges.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Notice {
    /// The record of this digest was replaced or removed.
    Forget { digest: u128 },
    /// A label moved to a new generation.
    Generation { label: String, generation: u64 },
    /// Nothing changed: acknowledge, to show the client runs (a lease's holder asked about).
    Ping,
}

/// Encodes one frame.
pub(crate) fn frame<T: Serialize>(message: &T) -> Vec<u8> {
    let out = vec![VERSION, 0, 0, 0, 0];
    // Writing into a Vec cannot fail; a message that cannot be encoded is a bug caught by the
    // tests, sent as an empty body the peer refuses.
    let out = postcard::to_extend(message, out).unwrap_or_else(|_| vec![VERSION, 0, 0, 0, 0]);
    let mut out = out;
    let len = (out.len() - 5) as u32;
    out[1..5].copy_from_slice(&len.to_le_bytes());
    out
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("protocol version {0}, expected {VERSION}: both processes must use the same tiered")]
    Version(u8),
    #[error("a message of {0} bytes, over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("a message that does not decode: {0}")]
    Malformed(postcard::Error),
}

/// Reads one frame (blocking); `Io(UnexpectedEof)` when the peer closed the connection.
pub(crate) fn read_frame<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 5];
    r.read_exact(&mut header)?;
    if header[0] != VERSION {
        return Err(FrameError::Version(header[0]));
    }
    let len = u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    postcard::from_bytes(&body).map_err(FrameError::Malformed)
}

/// Writes one encoded frame.
pub(crate) fn write_frame(w: &mut impl Write, frame: &[u8]) -> io::Result<()> {
    w.write_all(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_bad_frames_are_refused() {
        let up = Up {
            id: 7,
            request: Request::Read { digest: 42 },
        };
        let bytes = frame(&up);
        let back: Up = read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(back.id, 7);
        assert!(matches!(back.request, Request::Read { digest: 42 }));

        let mut other = bytes.clone();
        other[0] = 9;
        assert!(matches!(
            read_frame::<Up>(&mut &other[..]),
            Err(FrameError::Version(9))
        ));
        let mut huge = bytes.clone();
        huge[1..5].copy_from_slice(&(MAX_FRAME as u32 + 1).to_le_bytes());
        assert!(matches!(
            read_frame::<Up>(&mut &huge[..]),
            Err(FrameError::TooLarge(_))
        ));
        let truncated = &bytes[..bytes.len() - 1];
        assert!(matches!(
            read_frame::<Up>(&mut &truncated[..]),
            Err(FrameError::Io(_))
        ));
        let mut garbage = vec![VERSION, 3, 0, 0, 0, 0xff, 0xff, 0xff];
        garbage.truncate(8);
        assert!(matches!(
            read_frame::<Up>(&mut &garbage[..]),
            Err(FrameError::Malformed(_))
        ));
    }
}
