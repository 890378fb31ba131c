//! The owner's side: the socket's listener and one set of threads per client.
//!
//! Per connection, one thread reads the client's messages and applies them in order (so one
//! key's writes from that client land in its order); answers that must wait (for a commit,
//! for the other clients to apply a change) are waited for by a second thread, in order, and
//! a third writes every outgoing frame. The reading thread never waits for a client, so two
//! clients waiting for each other's acknowledgements cannot block each other. Lease waits
//! and compactions, which may be long, get a thread each.
//!
//! A connection from another user is closed at once. A message that is malformed, truncated,
//! oversized or of another version gets an error answer and the connection is closed; the
//! owner goes on serving the others.

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use super::lease::{Asked, Holder};
use super::peers::{self, Peer};
use super::wire::{self, Down, FrameError, Reply, Request, StoredRecord, Up};
use super::{socket, Owner, State};
use crate::disk::Stored;
use crate::tiers::Above;
use crate::Durability;

pub(crate) struct Server {
    dir: PathBuf,
    inode: u64,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves the folder's socket.
    pub fn start(state: &Arc<State>, owner: &Arc<Owner>) -> std::io::Result<Server> {
        let (listener, inode) = socket::listen(&state.dir)?;
        // A child of a fork lets go of the listener: see `fork.rs`.
        let watch = crate::fork::watch(&listener);
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (stop, state, owner) = (stop.clone(), Arc::downgrade(state), Arc::downgrade(owner));
            std::thread::Builder::new()
                .name("tiered-server".into())
                .spawn(move || {
                    accept(&listener, &stop, &state, &owner);
                    drop(listener);
                    drop(watch);
                })?
        };
        tracing::debug!(socket = %state.dir.join(socket::SOCKET_FILE).display(), "serving the cache folder");
        Ok(Server {
            dir: state.dir.clone(),
            inode,
            stop,
            accept: Some(accept),
        })
    }

    /// Stops accepting, removes the socket file and ends every connection; `clean`: every
    /// write acknowledged to a client is committed (the clients are told so).
    pub fn stop(mut self, peers: &peers::Peers, clean: bool) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accepting thread, which then sees `stop`; not through a socket file that
        // another owner put in its place (that owner's thread would wake, never this one).
        let woke = socket::is_ours(&self.dir, self.inode) && socket::connect(&self.dir).is_ok();
        if let (true, Some(accept)) = (woke, self.accept.take()) {
            let _ = accept.join();
        }
        socket::remove(&self.dir, self.inode);
        for peer in peers.all() {
            // A clean end: every write acknowledged so far is committed, so the client's
            // unflushed batched writes are not reported lost.
            if clean {
                peer.write_now(&wire::frame(&Down::Reply {
                    id: 0,
                    reply: Reply::Closing,
                }));
            }
            peer.cut();
        }
    }
}

fn accept(listener: &UnixListener, stop: &AtomicBool, state: &Weak<State>, owner: &Weak<Owner>) {
    for stream in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "could not accept a connection");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        match socket::peer_uid(&stream) {
            Ok(uid) if uid == socket::my_uid() => {}
            other => {
                tracing::warn!(peer = ?other, "refused a connection from another user");
                continue;
            }
        }
        let (state, owner) = (state.clone(), owner.clone());
        let spawned = std::thread::Builder::new()
            .name("tiered-conn".into())
            .spawn(move || serve(stream, &state, &owner));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "could not start a thread for a client");
        }
    }
}

/// A reply to send once something is waited for.
type Job = Box<dyn FnOnce() -> Reply + Send>;

fn serve(stream: UnixStream, state: &Weak<State>, owner: &Weak<Owner>) {
    CONNECTION_THREAD.with(|c| c.set(true));
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    // A child of a fork lets go of the connection (see `fork.rs`); declared before the
    // buffered reader that owns the descriptor, so dropped after it.
    let _watch = crate::fork::watch(&reader);
    // Buffered: a frame's header and body in one read.
    let mut reader = std::io::BufReader::with_capacity(64 << 10, reader);
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    // A client that stops reading cannot hold a thread of the owner forever.
    let _ = writer.set_write_timeout(Some(peers::ACK_TIMEOUT));
    let (out, frames) = mpsc::channel::<Vec<u8>>();
    let epochs = owner.upgrade().and_then(|o| o.epochs.clone());
    let peer = Arc::new(Peer::new(id, out, stream, writer, epochs));
    let sending = {
        let peer = peer.clone();
        std::thread::Builder::new()
            .name("tiered-conn-out".into())
            .spawn(move || send_frames(&peer, &frames))
    };
    let (jobs, queue) = mpsc::channel::<(u64, Job)>();
    let waiting = {
        let peer = peer.clone();
        std::thread::Builder::new()
            .name("tiered-conn-wait".into())
            .spawn(move || {
                for (id, job) in queue {
                    let answer = job();
                    reply(&peer, id, answer);
                }
            })
    };
    if sending.is_err() || waiting.is_err() {
        peer.cut();
        return;
    }
    let mut greeted = false;
    loop {
        let up = match wire::read_frame::<Up>(&mut reader) {
            Ok(up) => up,
            Err(FrameError::Io(_)) => break,
            Err(e) => {
                tracing::warn!(client = id, error = %e, "closing a connection that sent a bad message");
                reply(&peer, 0, Reply::Error(e.to_string()));
                break;
            }
        };
        // A closing owner answers nothing: its clients send their requests again to the
        // process that takes the folder over.
        let (Some(state), Some(owner)) = (state.upgrade(), owner.upgrade()) else {
            break;
        };
        // The cache is being dropped (its close stops serving, then tells the clients whether
        // the end is clean): left unanswered, like what follows, but the connection stays
        // up for that word.
        if state.above().is_none() {
            continue;
        }
        // Stopping: left unanswered, sent again by the client to the next owner.
        if owner.quiet.load(Ordering::SeqCst) {
            continue;
        }
        owner.busy.fetch_add(1, Ordering::SeqCst);
        if owner.quiet.load(Ordering::SeqCst) {
            owner.busy.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let _busy = Busy(&owner.busy);
        match (greeted, up.request) {
            (false, Request::Hello { pid }) => {
                greeted = true;
                peer.greeted(pid);
                owner.peers.add_then(peer.clone(), || {
                    // Under the clients' lock: a change made after this snapshot is sent to
                    // this client as a notice, after this answer. Queued, like the notices:
                    // a client slow to read its greeting holds no one else's write. Only
                    // bumped labels: a tag at generation 0 needs no entry (names come with
                    // scans), and the greeting stays small.
                    let generations = state
                        .gens
                        .snapshot()
                        .into_iter()
                        .filter(|(_, g)| *g > 0)
                        .map(|(l, g)| (l.to_string(), g))
                        .collect();
                    let (slot, epoch) = peer.slot();
                    peer.queue(wire::frame(&Down::Reply {
                        id: up.id,
                        reply: Reply::Hello {
                            pid: std::process::id(),
                            generations,
                            slot,
                            epoch,
                        },
                    }));
                });
            }
            (false, _) | (true, Request::Hello { .. }) => {
                reply(
                    &peer,
                    up.id,
                    Reply::Error("expected a greeting first, once".into()),
                );
                break;
            }
            (true, request) => handle(&state, &owner, &peer, up.id, request, &jobs),
        }
    }
    // Dead first, then its leases: a lease granted meanwhile sees it dead and is given back.
    peer.finish();
    if let Some(owner) = owner.upgrade() {
        owner.peers.remove(id);
        owner.leases.release_all(Holder::Client(id));
    }
}

thread_local! {
    /// Set on a connection's reading thread, which counts itself in `Owner::busy` while it
    /// applies a request (and may, holding the cache's last handle, close it from there).
    static CONNECTION_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// How many of `Owner::busy` the calling thread accounts for itself (0 or 1).
pub(crate) fn own_busy() -> usize {
    // `try_with`: at exit this thread's locals may be gone already.
    usize::from(
        CONNECTION_THREAD
            .try_with(std::cell::Cell::get)
            .unwrap_or(false),
    )
}

/// A request being applied (see `Owner::stop_serving`).
struct Busy<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The connection's sending thread: writes the queued notices; closes the connection once
/// the queue is closed (see `Peer::finish`).
fn send_frames(peer: &Peer, frames: &mpsc::Receiver<Vec<u8>>) {
    for frame in frames {
        peer.write_now(&frame);
    }
    let _ = peer.stream.shutdown(std::net::Shutdown::Both);
}

fn reply(peer: &Peer, id: u64, reply: Reply) {
    peer.write_now(&wire::frame(&Down::Reply { id, reply }));
}

fn record(stored: Option<Stored>) -> Reply {
    Reply::Record(stored.map(|s| StoredRecord {
        bytes: s.bytes.to_vec(),
        last_access_ms: s.last_access_ms,
    }))
}

/// The most record bytes one scan answer carries, well under the frame's bound.
const SCAN_BYTES: usize = wire::MAX_FRAME / 4;
/// The most records one scan answer reads.
const SCAN_RECORDS: usize = 4096;

/// A page of records for a client, cut short (with its cursor) past [`SCAN_BYTES`].
fn scanned(
    owner: &Owner,
    gens: &crate::generations::Generations,
    after: Option<u128>,
    max: u32,
) -> Reply {
    // A client's page size is bounded here too: the records are read before they are cut.
    let max = (max as usize).min(SCAN_RECORDS);
    let (page, mut next) = match owner.local.scan(after, max) {
        Ok(page) => page,
        Err(e) => return Reply::Error(e.to_string()),
    };
    let mut records = Vec::with_capacity(page.len());
    let mut bytes = 0;
    for s in page {
        if bytes > 0 && bytes + s.bytes.len() > SCAN_BYTES {
            // Cut short: the client goes on after the last record it got.
            next = records.last().map(|r: &wire::ScannedRecord| r.digest);
            break;
        }
        bytes += s.bytes.len();
        records.push(wire::ScannedRecord {
            digest: s.digest,
            bytes: s.bytes.to_vec(),
            last_access_ms: s.last_access_ms,
        });
    }
    // The names of the records' labels, which a client may not know (a tag first used after
    // it connected).
    let mut labels: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        if let Ok(rec) = crate::record::decode(&r.bytes) {
            for (id, _) in rec.generations() {
                if seen.insert(id) {
                    if let Some((label, _)) = gens.label_of(id) {
                        labels.push(label.to_string());
                    }
                }
            }
        }
    }
    Reply::Scanned {
        records,
        next,
        labels,
    }
}

fn done(result: crate::Result<()>) -> Reply {
    match result {
        Ok(()) => Reply::Done,
        Err(e) => Reply::Error(e.to_string()),
    }
}

/// A client's record (or its removal, `None`), stored like a write of this process: in the
/// key's order, in both tiers (the memory tier drops its value, which this process cannot
/// decode without its type), and sent to the other clients.
fn apply_write(
    state: &State,
    owner: &Arc<Owner>,
    above: &dyn Above,
    digest: u128,
    record: Option<Vec<u8>>,
) -> super::Ticket {
    let reservation = record.as_ref().map(|r| owner.local.reserve(r.len()));
    let mut held = state.stripes.lock(digest);
    above.forget_held(&mut held, digest);
    super::owner_write(owner, digest, record, reservation)
}

/// A client's invalidation: bumped here, persisted and sent to the other clients. Returns
/// the new generation and what to wait on. Counted by the client that made it, not here:
/// each process's `Stats` count its own operations (`docs/processes.md`).
fn bump_served(
    state: &State,
    owner: &Arc<Owner>,
    label: String,
    settle: bool,
) -> (u64, super::Ticket) {
    let generation = state.gens.bump(&label);
    tracing::debug!(%label, generation, "invalidated by a client");
    (
        generation,
        super::owner_bump(owner, label, generation, settle),
    )
}

fn handle(
    state: &Arc<State>,
    owner: &Arc<Owner>,
    peer: &Arc<Peer>,
    id: u64,
    request: Request,
    jobs: &mpsc::Sender<(u64, Job)>,
) {
    // Checked by the caller; a cache that closed since is left to the next owner.
    // Dropped since the check: left unanswered (see `serve`).
    let Some(above) = state.above() else {
        return;
    };
    // A client that asks for a commit gets its answer after one, whatever this process's
    // own durability.
    let batched = state.cfg.durability != Durability::Immediate;
    let flush_if = move |durable: bool, owner: &Owner| {
        if durable && batched {
            owner.local.flush()
        } else {
            Ok(())
        }
    };
    let wait = |job: Job| {
        let _ = jobs.send((id, job));
    };
    let client = peer.id;
    match request {
        Request::Hello { .. } => {}
        Request::Read { digest } => reply(peer, id, record(owner.local.read(digest))),
        Request::Put {
            digest,
            record,
            durable,
            labels,
        } => {
            for label in labels {
                state.gens.know(&label, crate::generations::id(&label));
            }
            let ticket = peers::on_behalf_of(client, || {
                apply_write(state, owner, &*above, digest, Some(record))
            });
            let owner = owner.clone();
            wait(Box::new(move || {
                done(ticket.wait().and_then(|()| flush_if(durable, &owner)))
            }));
        }
        Request::Remove { digest, durable } => {
            // Remembered for every process's `explain`: the removing client's own memory of
            // it ends with that process.
            above.bury_removal(digest, owner.local.read(digest));
            let ticket =
                peers::on_behalf_of(client, || apply_write(state, owner, &*above, digest, None));
            let owner = owner.clone();
            wait(Box::new(move || {
                done(ticket.wait().and_then(|()| flush_if(durable, &owner)))
            }));
        }
        Request::Bump {
            label,
            settle,
            durable,
        } => {
            let (generation, ticket) =
                peers::on_behalf_of(client, || bump_served(state, owner, label.clone(), settle));
            let owner = owner.clone();
            wait(Box::new(move || {
                match ticket.wait().and_then(|()| flush_if(durable, &owner)) {
                    Ok(()) => Reply::Bumped { label, generation },
                    Err(e) => Reply::Error(e.to_string()),
                }
            }));
        }
        Request::Touch { touches } => {
            for (digest, now_ms, idle) in touches {
                owner.local.touch(digest, now_ms, idle);
            }
        }
        Request::Flush => {
            let owner = owner.clone();
            wait(Box::new(move || done(owner.local.flush())));
        }
        Request::Compact => {
            let (owner, peer) = (owner.clone(), peer.clone());
            let _ = std::thread::Builder::new()
                .name("tiered-compact".into())
                .spawn(move || reply(&peer, id, done(owner.local.compact())));
        }
        Request::Lease { digest, force } => {
            let (owner, peer) = (owner.clone(), peer.clone());
            let _ = std::thread::Builder::new()
                .name("tiered-lease".into())
                .spawn(move || {
                    let who = Holder::Client(peer.id);
                    match owner.leases.ask(
                        digest,
                        who,
                        force,
                        || owner.local.read(digest),
                        |holder| owner.holder_runs(holder),
                    ) {
                        Asked::Found(stored) => reply(&peer, id, record(Some(stored))),
                        Asked::Granted if peer.is_alive() => reply(&peer, id, Reply::Granted),
                        // Its holder is gone: the lease goes back at once.
                        Asked::Granted => owner.leases.release(digest, who),
                    }
                });
        }
        Request::Release { digest } => owner.leases.release(digest, Holder::Client(client)),
        Request::Relet { digests } => {
            for digest in digests {
                owner.leases.relet(digest, Holder::Client(client));
            }
        }
        Request::Ack { seq } => peer.acked(seq),
        // Only when asked with an id (a client's ping carries none: any frame will do, and
        // this one answers at once).
        Request::Ping => reply(peer, id, Reply::Pong),
        Request::Stats => reply(peer, id, Reply::Stats(Box::new(above.stats()))),
        Request::Report { stats } => peer.reported(stats),
        Request::Fate { digest } => reply(peer, id, Reply::Fate(above.fate(digest))),
        Request::Processes => {
            let mut all = vec![crate::ProcessStats {
                pid: std::process::id(),
                holds_folder: true,
                this_process: false,
                stats: above.own_stats(),
            }];
            all.extend(owner.peers.figures());
            reply(peer, id, Reply::Processes(all));
        }
        Request::Scan { after, max } => reply(peer, id, scanned(owner, &state.gens, after, max)),
        Request::ClearExpired => {
            let peer = peer.clone();
            let _ = std::thread::Builder::new()
                .name("tiered-clear".into())
                .spawn(move || {
                    let answer = match above.clear_expired() {
                        Ok(n) => Reply::Count(n),
                        Err(e) => Reply::Error(e.to_string()),
                    };
                    reply(&peer, id, answer);
                });
        }
    }
}
