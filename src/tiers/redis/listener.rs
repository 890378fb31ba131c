//! The listener: one RESP3 connection per cache that only receives. The writer's connection
//! redirects its tracking here (broadcast mode, on the prefixes of records and generations),
//! so every write another client makes to this cache's keys arrives as an `invalidate` push:
//! a record's key makes the cache forget that key, a generation's key makes the label move
//! on, and a flush (a push with no keys) drops everything the cache holds from Redis.
//!
//! When the connection ends (killed, the server restarted) the cache drops what it holds
//! from Redis (it may have missed pushes), the listener connects again, the writer enables
//! tracking towards the new connection, and the cache drops once more what it read
//! meanwhile (see `Shared::tracking_confirmed`).

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use redis::{PushKind, Value};

use super::keys::Changed;
use super::Shared;

/// How long a read waits before the listener checks whether the cache was closed.
const POLL: Duration = Duration::from_millis(250);
/// The wait before connecting again after a failure.
const RETRY: Duration = Duration::from_millis(100);

pub(super) fn run(shared: Weak<Shared>) {
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.closed.load(Ordering::Acquire) {
            return;
        }
        let connected = s
            .listener_client
            .get_connection_with_timeout(s.link.command_timeout())
            .and_then(|con| {
                con.set_read_timeout(Some(POLL))?;
                Ok(con)
            })
            .and_then(|mut con| {
                // Named, so that an operator (or a test) can tell it in `CLIENT LIST`.
                let named = redis::cmd("CLIENT")
                    .arg("SETNAME")
                    .arg("tiered-listener")
                    .query::<()>(&mut con);
                if let Err(e) = named {
                    if e.is_connection_dropped() || e.is_timeout() || e.is_io_error() {
                        return Err(e);
                    }
                }
                // A server that refuses CLIENT commands still serves pub/sub: no id then.
                let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap_or(-1);
                Ok((con, id))
            });
        let (mut con, id) = match connected {
            Ok(c) => c,
            Err(e) => {
                s.link.failed(&e.to_string());
                drop(s);
                std::thread::sleep(RETRY);
                continue;
            }
        };
        *crate::disk::lock(&s.listener) = Some(id);
        s.subscribed.store(false, Ordering::Release);
        s.nudge_writer();
        drop(s);
        let why = listen(&shared, &mut con);
        let Some(s) = shared.upgrade() else { return };
        *crate::disk::lock(&s.listener) = None;
        s.subscribing.store(false, Ordering::Release);
        s.subscribed.store(false, Ordering::Release);
        if s.closed.load(Ordering::Acquire) {
            return;
        }
        s.tracking_lost(&why);
        drop(s);
        std::thread::sleep(RETRY);
    }
}

/// Receives pushes until the connection ends; why it ended.
fn listen(shared: &Weak<Shared>, con: &mut redis::Connection) -> String {
    loop {
        let received = con.recv_response();
        let Some(s) = shared.upgrade() else {
            return "the cache was dropped".into();
        };
        if s.closed.load(Ordering::Acquire) {
            return "the cache was closed".into();
        }
        if s.restart_listener.swap(false, Ordering::AcqRel) {
            return "it heard nothing back from the server".into();
        }
        // The server refused tracking: hear the writers' channel instead (once per
        // connection; the confirmation arrives as a push).
        if s.pubsub.load(Ordering::Acquire) && !s.subscribing.swap(true, Ordering::AcqRel) {
            let subscribe = redis::cmd("SUBSCRIBE")
                .arg(s.keys.channel())
                .get_packed_command();
            if let Err(e) = con.send_packed_command(&subscribe) {
                return e.to_string();
            }
        }
        match received {
            Ok(Value::Push {
                kind: PushKind::Subscribe,
                ..
            }) => {
                s.subscribed.store(true, Ordering::Release);
                s.nudge_writer();
            }
            Ok(Value::Push {
                kind: PushKind::Message,
                data,
            }) => published(&s, &data),
            Ok(Value::Push {
                kind: PushKind::Invalidate,
                data,
            }) => heard(&s, &data),
            Ok(_) => {}
            Err(e) if e.is_timeout() => {}
            Err(e) => return e.to_string(),
        }
    }
}

/// A notice of the writers' channel (pub/sub mode, `keys::notice`). A process's own notices
/// are skipped (its own writes, as `NOLOOP` does), but its probes count.
fn published(s: &Shared, data: &[Value]) {
    let Some(Value::BulkString(payload)) = data.get(1) else {
        return;
    };
    let Some((sender, changed)) = super::keys::read_notice(&String::from_utf8_lossy(payload))
    else {
        return;
    };
    let changed: Vec<Changed> = changed
        .into_iter()
        .filter(|c| sender != s.me || matches!(c, Changed::Probe(_)))
        .collect();
    apply(s, Some(changed));
}

/// An `invalidate` push: the keys other clients changed, or none for a flush.
fn heard(s: &Shared, data: &[Value]) {
    let changed = match data.first() {
        Some(Value::Array(keys)) => Some(
            keys.iter()
                .filter_map(|key| match key {
                    Value::BulkString(key) => s.keys.parse(key),
                    _ => None,
                })
                .collect(),
        ),
        // `FLUSHALL` or `FLUSHDB`: every key.
        _ => None,
    };
    apply(s, changed);
}

/// What other processes changed (`None`: everything, a flush), applied to the cache above.
fn apply(s: &Shared, changed: Option<Vec<Changed>>) {
    let Some(above) = s.above() else { return };
    let Some(changed) = changed else {
        s.tokens.forget_all();
        above.missed_changes();
        s.wake_waiters();
        return;
    };
    let mut generations = false;
    for change in changed {
        match change {
            Changed::Record(digest) => above.forget(digest),
            Changed::Probe(token) => {
                // Every process's probes reach every listener: only this one's counts.
                let mut probe = crate::disk::lock(&s.probe);
                if probe.sent.is_some_and(|(sent, _)| sent == token) {
                    probe.heard = token;
                }
            }
            Changed::Generation(id) => {
                // Read now: an invalidation's token is told from a first use's by its mark.
                let key = s.keys.generation(id);
                let current = s
                    .link
                    .run(|con| redis::cmd("GET").arg(&key).query::<Option<u64>>(con))
                    // Unknown: taken as an invalidation, to be safe.
                    .unwrap_or(Some(super::tokens::BUMPED));
                generations |= s.tokens.heard(&s.gens, id, current);
            }
        }
    }
    if generations {
        above.generations_changed();
    }
    s.wake_waiters();
}
