//! Connections to the server for reads and leases: a few kept open and reused, none opened
//! more often than the backoff allows after a failure, each command bounded by the command
//! timeout. What is wrong with the server (since when, why) is kept here for `health()`, and
//! logged once per outage.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use redis::{Client, Connection, RedisResult};

use crate::disk::lock;

/// How many idle connections are kept for reuse.
const KEPT: usize = 8;
/// The first wait before connecting again after a failure; doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(super) struct Link {
    client: Client,
    /// The server as messages name it (no password).
    shown: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    retry: Mutex<Retry>,
    /// What went wrong last and since when; `None` while the server answers.
    outage: Mutex<Option<(String, SystemTime)>>,
}

#[derive(Default)]
struct Retry {
    not_before: Option<Instant>,
    backoff: Duration,
}

impl Link {
    pub fn new(
        client: Client,
        shown: String,
        connect_timeout: Duration,
        command_timeout: Duration,
    ) -> Self {
        Link {
            client,
            shown,
            connect_timeout,
            command_timeout,
            idle: Mutex::default(),
            retry: Mutex::default(),
            outage: Mutex::default(),
        }
    }

    pub fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// A new connection with the timeouts set, unless a failure was too recent.
    pub fn connect(&self) -> Result<Connection, String> {
        if let Some(at) = lock(&self.retry).not_before {
            if Instant::now() < at {
                return Err("waiting to connect again".into());
            }
        }
        let made = self
            .client
            .get_connection_with_timeout(self.connect_timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(self.command_timeout))?;
                c.set_write_timeout(Some(self.command_timeout))?;
                Ok(c)
            });
        match made {
            Ok(c) => Ok(c),
            Err(e) => {
                self.failed(&e.to_string());
                Err(e.to_string())
            }
        }
    }

    /// Runs `f` on a connection; a failure drops the connection and is reported once.
    pub fn run<T>(&self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, String> {
        let taken = lock(&self.idle).pop();
        let mut con = match taken {
            Some(c) => c,
            None => self.connect()?,
        };
        match f(&mut con) {
            Ok(v) => {
                self.answered();
                let mut idle = lock(&self.idle);
                if idle.len() < KEPT {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) => {
                let message = e.to_string();
                if e.is_unrecoverable_error() || e.is_timeout() || e.is_connection_dropped() {
                    // Dropped with the connection; the server may still be fine for others.
                    self.failed(&message);
                } else {
                    // The server answered with an error (e.g. OOM when full): the connection
                    // is sound.
                    let mut idle = lock(&self.idle);
                    if idle.len() < KEPT {
                        idle.push(con);
                    }
                }
                Err(message)
            }
        }
    }

    /// The server answered: backoff and outage end.
    pub fn answered(&self) {
        *lock(&self.retry) = Retry::default();
        if lock(&self.outage).take().is_some() {
            tracing::info!("the Redis server answers again");
        }
    }

    /// A connection failed: wait before the next one, and report the outage once.
    pub fn failed(&self, why: &str) {
        {
            let mut retry = lock(&self.retry);
            retry.backoff = (retry.backoff * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
            retry.not_before = Some(Instant::now() + retry.backoff);
        }
        lock(&self.idle).clear();
        let mut outage = lock(&self.outage);
        if outage.is_none() {
            tracing::warn!(
                error = %why,
                "the Redis server cannot be reached: reads miss it and writes wait to be \
                 sent until it answers"
            );
            *outage = Some((format!("{}: {why}", self.shown), SystemTime::now()));
        }
    }

    /// What is wrong with the server, if anything.
    pub fn outage(&self) -> Option<(String, SystemTime)> {
        lock(&self.outage).clone()
    }
}
