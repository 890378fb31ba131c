//! The memory tier: moka, keyed by key digest, holding decoded values (or, for entries loaded
//! by the warm restart, payloads that the first read decodes).

use std::any::Any;
use std::borrow::Cow;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;

use crate::expiry::{Clock, Expiry};
use crate::explain::Explanation;
use crate::record::Meta;
use crate::stats::Counters;

/// What an entry holds.
pub(crate) enum Value {
    /// The value, decoded: a hit downcasts it, with no decoding and no copy.
    Decoded {
        value: Arc<dyn Any + Send + Sync>,
        /// The value's type, for the debug event of a read as another type.
        type_name: &'static str,
    },
    /// A record's payload, loaded by the warm restart (which does not know the value types):
    /// the first read as the stored type decodes it and replaces the entry by the decoded one.
    Raw(Raw),
}

/// An undecoded payload and what its record says about its type.
pub(crate) struct Raw {
    pub payload: Box<[u8]>,
    /// The record's metadata: its type fingerprint, type name id and format are what a read
    /// checks (with `TypeCheck::of`) before it decodes.
    pub meta: Meta,
}

impl Value {
    /// The stored value's type, for messages.
    pub fn type_name(&self) -> Cow<'static, str> {
        match self {
            Value::Decoded { type_name, .. } => Cow::Borrowed(type_name),
            Value::Raw(raw) => crate::fingerprint::describe(raw.meta.type_name_id),
        }
    }
}

/// One value and what is needed to judge it without touching the disk.
pub(crate) struct MemEntry {
    pub value: Value,
    pub key: Box<[u8]>,
    pub expiry: Expiry,
    /// When the value was written (unix ms), for `Options::refresh_after`.
    pub created_ms: u64,
    pub last_access_ms: AtomicU64,
    /// The read time last queued for the disk tier (idle entries only).
    pub disk_touch_ms: AtomicU64,
    pub gens: Box<[(u64, u64)]>,
    /// The generation epoch at which `gens` were last found current.
    pub checked_epoch: AtomicU64,
    pub weight: u32,
    /// Whether the entry also has a record in the disk tier.
    pub on_disk: bool,
    /// Its key's stripe version when it entered the tier: while the stripe still has it, no
    /// write came after this entry (see `ordering.rs`).
    pub written_at: u64,
}

impl MemEntry {
    pub fn touch(&self, now_ms: u64) {
        if self.expiry.idle_ms != 0 {
            self.last_access_ms.store(now_ms, Ordering::Relaxed);
        }
    }
}

/// Digests are already uniform: fold them instead of hashing them again.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut a = [0u8; 8];
            a[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(a)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}

type Moka = moka::sync::Cache<u128, Arc<MemEntry>, BuildHasherDefault<DigestHasher>>;

#[derive(Clone)]
pub(crate) struct MemoryTier {
    moka: Moka,
    capacity: u64,
    counters: Arc<Counters>,
    /// Whether entries on disk may be served: see [`View`].
    pub view: Arc<View>,
    /// Which digests the tier may hold: see [`Seen`].
    seen: Arc<Seen>,
}

/// A bit per digest (its low bits) that the memory tier may hold: set before each insert,
/// never cleared. A digest whose bit is clear was never inserted, so a read skips moka's
/// probe: after a restart, the first read of each key goes straight to the disk (a moka
/// probe that misses costs about a quarter of a microsecond in a fresh process). Never
/// cleared, so it fills over a long run and then every read probes, as without it; clearing
/// would race an insert that set its bit just before.
///
/// Ordering: an insert sets the bit (`SeqCst`) before the entry is in moka, so a read that
/// finds the bit clear started before that insert could be seen; it misses, as a read
/// concurrent with an insert may.
struct Seen {
    words: Box<[AtomicU64]>,
    mask: u64,
}

impl Seen {
    /// About 8 bits per entry the tier can hold (each weighs at least `ENTRY_OVERHEAD`), a
    /// power of two between 2^12 and 2^23 bits (1 MiB, allocated zeroed: untouched pages take
    /// no memory).
    fn for_capacity(capacity: u64) -> Seen {
        let entries = capacity / ENTRY_OVERHEAD as u64;
        let bits = entries
            .saturating_mul(8)
            .clamp(1 << 12, 1 << 23)
            .next_power_of_two();
        Seen {
            words: (0..bits / 64).map(|_| AtomicU64::new(0)).collect(),
            mask: bits - 1,
        }
    }

    fn slot(&self, digest: u128) -> (&AtomicU64, u64) {
        let bit = (digest as u64) & self.mask;
        (&self.words[(bit / 64) as usize], 1 << (bit % 64))
    }

    fn note(&self, digest: u128) {
        let (word, bit) = self.slot(digest);
        if word.load(Ordering::Relaxed) & bit == 0 {
            word.fetch_or(bit, Ordering::SeqCst);
        }
    }

    fn may_hold(&self, digest: u128) -> bool {
        let (word, bit) = self.slot(digest);
        word.load(Ordering::SeqCst) & bit != 0
    }
}

/// Whether this process's entries that are also on disk are still current, when another
/// process holds the folder (see `process/epochs.rs`): one atomic load per memory hit.
///
/// The state is one word: [`View::UNCHECKED`] (this process holds the folder, or has no disk
/// tier: nothing to check), or a slot of the folder's epochs file with the value it must
/// still hold (`slot << 48 | value`, values compared on their low 48 bits). Replaced whole,
/// so a reader never pairs one connection's slot with another's value.
#[derive(Default)]
pub(crate) struct View {
    word: AtomicU64,
    /// The shared counters, once this process was a client.
    epochs: std::sync::OnceLock<Arc<crate::process::Epochs>>,
    /// The word for which the tier last dropped its disk entries (once per staleness).
    dropped_for: AtomicU64,
}

impl View {
    /// Nothing to check: the default.
    pub const UNCHECKED: u64 = 0;
    const VALUE_BITS: u32 = 48;

    /// The epochs file this process maps as a client (mapped once, kept for the cache's life).
    pub fn epochs(&self) -> Option<&Arc<crate::process::Epochs>> {
        self.epochs.get()
    }

    pub fn set_epochs(&self, epochs: Arc<crate::process::Epochs>) -> &Arc<crate::process::Epochs> {
        self.epochs.get_or_init(|| epochs)
    }

    /// From now on, disk entries are current while `slot` holds `value`.
    pub fn check(&self, slot: usize, value: u64) {
        let mask = (1u64 << Self::VALUE_BITS) - 1;
        // Slot + 1, so that no checked word is `UNCHECKED`.
        let word = ((slot as u64 + 1) << Self::VALUE_BITS) | (value & mask);
        self.word.store(word, Ordering::SeqCst);
    }

    /// From now on, nothing to check (this process holds the folder).
    pub fn uncheck(&self) {
        self.word.store(Self::UNCHECKED, Ordering::SeqCst);
    }

    /// Whether disk entries may be served; `Err(word)` when they may not.
    fn current(&self) -> Result<(), u64> {
        let word = self.word.load(Ordering::SeqCst);
        if word == Self::UNCHECKED {
            return Ok(());
        }
        let Some(epochs) = self.epochs.get() else {
            return Err(word);
        };
        let mask = (1u64 << Self::VALUE_BITS) - 1;
        let slot = (word >> Self::VALUE_BITS) as usize - 1;
        if epochs.load(slot) & mask == word & mask {
            Ok(())
        } else {
            Err(word)
        }
    }
}

struct EntryExpiry {
    clock: Arc<dyn Clock>,
}

impl moka::Expiry<u128, Arc<MemEntry>> for EntryExpiry {
    fn expire_after_create(&self, _: &u128, v: &Arc<MemEntry>, _: Instant) -> Option<Duration> {
        v.expiry.remaining(self.clock.now_ms())
    }

    fn expire_after_update(
        &self,
        _: &u128,
        v: &Arc<MemEntry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        v.expiry.remaining(self.clock.now_ms())
    }

    fn expire_after_read(
        &self,
        _: &u128,
        v: &Arc<MemEntry>,
        _: Instant,
        left: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        if v.expiry.idle_ms == 0 {
            return left;
        }
        // A read restarts the idle limit, within the absolute deadline.
        let deadline_only = Expiry {
            idle_ms: 0,
            ..v.expiry
        };
        let idle = Duration::from_millis(v.expiry.idle_ms);
        Some(
            deadline_only
                .remaining(self.clock.now_ms())
                .map_or(idle, |d| d.min(idle)),
        )
    }
}

impl MemoryTier {
    pub fn new(capacity: u64, clock: Arc<dyn Clock>, counters: Arc<Counters>) -> Self {
        let tier_counters = counters.clone();
        let moka = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .initial_capacity(presized_entries(capacity))
            .weigher(|_, e: &Arc<MemEntry>| e.weight)
            .expire_after(EntryExpiry { clock })
            .eviction_listener(
                move |digest: Arc<u128>, e: Arc<MemEntry>, cause| match cause {
                    RemovalCause::Size => {
                        Counters::bump(&counters.evictions);
                        if !e.on_disk {
                            counters.graveyard.bury(*digest, Explanation::Evicted);
                        }
                        tracing::debug!("memory tier evicted an entry to stay within capacity");
                    }
                    // A persisted entry's expiry is counted when its record is found dead (by a
                    // read or the sweeper), so that each entry counts once.
                    RemovalCause::Expired if !e.on_disk => {
                        Counters::bump(&counters.expirations);
                        let last = e.last_access_ms.load(Ordering::Relaxed);
                        let at = crate::explain::expired(e.expiry.expired_at(last));
                        counters.graveyard.bury(*digest, at);
                    }
                    RemovalCause::Expired => {}
                    RemovalCause::Explicit | RemovalCause::Replaced => {}
                },
            )
            .build_with_hasher(BuildHasherDefault::<DigestHasher>::default());
        MemoryTier {
            moka,
            capacity,
            counters: tier_counters,
            view: Arc::default(),
            seen: Arc::new(Seen::for_capacity(capacity)),
        }
    }

    /// The entry of `digest`. An entry that is also on disk is not served while this process's
    /// view of the disk is not current (see [`View`]): the tier then drops every such entry,
    /// once, and the read goes to the disk tier.
    pub fn get(&self, digest: u128) -> Option<Arc<MemEntry>> {
        if !self.seen.may_hold(digest) {
            return None;
        }
        let entry = self.moka.get(&digest)?;
        if entry.on_disk {
            if let Err(word) = self.view.current() {
                if self.view.dropped_for.swap(word, Ordering::SeqCst) != word {
                    tracing::info!(
                        "this process missed changes made by others while it was not running \
                         (stopped, paused or swapping): its memory tier's disk entries are \
                         dropped"
                    );
                    self.drop_persisted();
                }
                return None;
            }
        }
        Some(entry)
    }

    /// Whether the tier's entry for `digest` is `entry` itself.
    pub fn holds(&self, digest: u128, entry: &Arc<MemEntry>) -> bool {
        self.seen.may_hold(digest)
            && self
                .moka
                .get(&digest)
                .is_some_and(|held| Arc::ptr_eq(&held, entry))
    }

    /// Whether the tier holds an entry for `digest`, without counting it as a use.
    pub fn contains(&self, digest: u128) -> bool {
        self.seen.may_hold(digest) && self.moka.contains_key(&digest)
    }

    /// The bytes the tier may hold.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Whether an entry of `weight` can be held at all.
    pub fn admits(&self, weight: u32) -> bool {
        u64::from(weight) <= self.capacity
    }

    /// Counts and logs a value that weighs more than the whole tier, so that it is served
    /// from disk (or, kept in memory only, not kept at all): `Stats::too_large_for_memory`.
    pub fn too_large(&self, weight: u32, on_disk: bool, during: &'static str) {
        Counters::bump(&self.counters.too_large_for_memory);
        tracing::debug!(
            bytes = weight,
            capacity = self.capacity,
            on_disk,
            during,
            "value larger than the memory tier (memory_capacity): not kept in memory; served \
             from disk if it is persisted"
        );
    }

    /// Holds `entry`, unless it weighs more than the whole tier (it could never stay: counted
    /// and logged by [`too_large`](Self::too_large)); any older entry for the digest goes
    /// either way.
    pub fn insert(&self, digest: u128, entry: MemEntry) {
        if !self.admits(entry.weight) {
            self.too_large(entry.weight, entry.on_disk, "insert");
            self.moka.invalidate(&digest);
            return;
        }
        self.seen.note(digest);
        self.moka.insert(digest, Arc::new(entry));
    }

    pub fn remove(&self, digest: u128) {
        self.moka.invalidate(&digest);
    }

    pub fn clear(&self) {
        self.moka.invalidate_all();
    }

    /// Drops every entry that is also on disk, keeping those held in memory only: another
    /// process may have changed the disk's.
    pub fn drop_persisted(&self) {
        for (digest, entry) in self.moka.iter() {
            if entry.on_disk {
                self.moka.invalidate(&*digest);
            }
        }
    }

    /// The digests of the entries kept in memory only whose generations are no longer current
    /// (a tag or namespace invalidated): see `Inner::free_invalidated`.
    pub fn invalidated_memory_only(&self, gens: &crate::generations::Generations) -> Vec<u128> {
        self.moka
            .iter()
            .filter(|(_, entry)| !entry.on_disk && !gens.is_current(entry.gens.iter().copied()))
            .map(|(digest, _)| *digest)
            .collect()
    }

    /// Lets moka finish the work it has queued (evictions, their listeners).
    pub fn run_pending_tasks(&self) {
        self.moka.run_pending_tasks();
    }

    pub fn bytes(&self) -> u64 {
        self.moka.weighted_size()
    }

    pub fn len(&self) -> u64 {
        self.moka.entry_count()
    }

    /// Every entry held now, in no order (for the admin functions: `admin/pages.rs`).
    pub fn entries(&self) -> Vec<(u128, Arc<MemEntry>)> {
        self.moka.iter().map(|(k, v)| (*k, v)).collect()
    }
}

/// The entries moka's hash table is sized for at the start: one per 4 KiB of capacity, at most
/// 16,384 (a table of 256 KiB). A table that starts small doubles and moves every entry each
/// time it fills, which a fresh process pays on its first reads after a restart: in a run of
/// `benches/engine`'s `disk_hit_after_reopen`, a plain moka in front of redb took 1.58 us per
/// first read, 1.44 us presized for its 10,000 entries.
fn presized_entries(capacity: u64) -> usize {
    usize::try_from(capacity / 4096).map_or(16_384, |n| n.min(16_384))
}

/// What an entry costs besides its key, value and generations: moka's bookkeeping (hash table
/// slot, access-order and expiry nodes), the `MemEntry` and its `Arc`, and the allocator's
/// headers of its pieces. Measured: one million `u64` entries under small keys took 577 bytes
/// of RSS each, of which about 60 are key, value and generations (see the test
/// `memory_capacity_bounds_the_real_footprint`).
const ENTRY_OVERHEAD: usize = 512;

/// The weight of an entry, in bytes: an estimate of the memory it really holds, so that
/// `memory_capacity` bounds the process's footprint, not just the encoded bytes. The value
/// counts by its encoded size (its heap parts) plus its inline size.
pub(crate) fn weight<V>(key_len: usize, payload_len: usize, generations: usize) -> u32 {
    // Saturating: a payload's length may come from a side-file reference read from disk.
    let bytes = key_len
        .saturating_add(payload_len)
        .saturating_add(std::mem::size_of::<V>())
        .saturating_add(generations.saturating_mul(std::mem::size_of::<(u64, u64)>()))
        .saturating_add(ENTRY_OVERHEAD);
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The weight of an entry that holds its payload undecoded ([`Value::Raw`]).
pub(crate) fn raw_weight(key_len: usize, payload_len: usize, generations: usize) -> u32 {
    weight::<Box<[u8]>>(key_len, payload_len, generations)
}
