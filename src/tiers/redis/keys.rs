//! Where each thing lives in Redis: one key per record, per generation and per lease, each
//! under the cache's prefix. Every command touches one key, so the layout is Cluster-safe (no
//! command spans two hash slots).

/// The key names of one cache.
pub(super) struct Keys {
    prefix: String,
}

/// A key another client changed, as the listener hears of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Changed {
    Record(u128),
    Generation(u64),
    /// A liveness probe's key: the listener still hears the server.
    Probe(u64),
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// `PREFIXr:<digest>`: the record of a key.
    pub fn record(&self, digest: u128) -> String {
        format!("{}r:{digest:032x}", self.prefix)
    }

    /// `PREFIXg:<id>`: the current token of a generation label (tag, namespace, all).
    pub fn generation(&self, id: u64) -> String {
        format!("{}g:{id:016x}", self.prefix)
    }

    /// `PREFIXn:<id>`: a label's name (`tag:prices`, `ns:user`), for listings of other
    /// processes; written once, at the label's first use.
    pub fn name(&self, id: u64) -> String {
        format!("{}n:{id:016x}", self.prefix)
    }

    /// `PREFIXl:<digest>`: who computes a missing key now.
    pub fn lease(&self, digest: u128) -> String {
        format!("{}l:{digest:032x}", self.prefix)
    }

    /// `PREFIXh:<token>`: a probe a process writes to hear it back through its listener.
    pub fn probe(&self, token: u64) -> String {
        format!("{}h:{token:016x}", self.prefix)
    }

    /// The pub/sub channel that writers publish their changed keys to, where the server
    /// refuses `CLIENT TRACKING`.
    pub fn channel(&self) -> String {
        format!("{}changes", self.prefix)
    }

    /// The prefixes the listener is told about (leases are not).
    pub fn tracked(&self) -> [String; 3] {
        [
            format!("{}r:", self.prefix),
            format!("{}g:", self.prefix),
            format!("{}h:", self.prefix),
        ]
    }

    /// The pattern of every record key, for `SCAN`.
    pub fn records_pattern(&self) -> String {
        format!("{}r:*", glob_escape(&self.prefix))
    }

    /// What a changed key is, if it is one of this cache's.
    pub fn parse(&self, key: &[u8]) -> Option<Changed> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        let text = std::str::from_utf8(rest).ok()?;
        if let Some(hex) = text.strip_prefix("r:") {
            return (hex.len() == 32)
                .then(|| u128::from_str_radix(hex, 16).ok())
                .flatten()
                .map(Changed::Record);
        }
        if let Some(hex) = text.strip_prefix("g:") {
            return (hex.len() == 16)
                .then(|| u64::from_str_radix(hex, 16).ok())
                .flatten()
                .map(Changed::Generation);
        }
        if let Some(hex) = text.strip_prefix("h:") {
            return (hex.len() == 16)
                .then(|| u64::from_str_radix(hex, 16).ok())
                .flatten()
                .map(Changed::Probe);
        }
        None
    }
}

/// The message that tells other processes (through the channel) what `sender` changed:
/// `<sender> r<digest> g<label id> ...`, in hex, so that no prefix can break it up.
pub(super) fn notice(sender: u64, changed: &[Changed]) -> String {
    let mut out = format!("{sender:016x}");
    for c in changed {
        match c {
            Changed::Record(d) => out.push_str(&format!(" r{d:032x}")),
            Changed::Generation(id) => out.push_str(&format!(" g{id:016x}")),
            Changed::Probe(token) => out.push_str(&format!(" p{token:016x}")),
        }
    }
    out
}

/// A notice read back: its sender and what changed (unknown words are skipped).
pub(super) fn read_notice(text: &str) -> Option<(u64, Vec<Changed>)> {
    let mut words = text.split(' ');
    let sender = u64::from_str_radix(words.next()?, 16).ok()?;
    let changed = words
        .filter_map(|w| {
            let (kind, hex) = w.split_at_checked(1)?;
            match kind {
                "r" => u128::from_str_radix(hex, 16).ok().map(Changed::Record),
                "g" => u64::from_str_radix(hex, 16).ok().map(Changed::Generation),
                "p" => u64::from_str_radix(hex, 16).ok().map(Changed::Probe),
                _ => None,
            }
        })
        .collect();
    Some((sender, changed))
}

/// `text` with the characters `SCAN MATCH` gives a meaning escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_are_read_back_and_others_ignored() {
        let keys = Keys::new("app:");
        let d = 0x0123_4567_89ab_cdef_0011_2233_4455_6677_u128;
        assert_eq!(
            keys.parse(keys.record(d).as_bytes()),
            Some(Changed::Record(d))
        );
        assert_eq!(
            keys.parse(keys.generation(42).as_bytes()),
            Some(Changed::Generation(42))
        );
        assert_eq!(
            keys.parse(keys.probe(7).as_bytes()),
            Some(Changed::Probe(7))
        );
        assert_eq!(keys.parse(keys.lease(d).as_bytes()), None);
        assert_eq!(keys.parse(b"other:r:00"), None);
        assert_eq!(keys.parse(b"app:r:xyz"), None);
    }

    #[test]
    fn a_notice_reads_back_whatever_the_prefix() {
        let changed = [
            Changed::Record(u128::MAX),
            Changed::Generation(7),
            Changed::Probe(9),
        ];
        assert_eq!(
            read_notice(&notice(42, &changed)),
            Some((42, changed.to_vec()))
        );
    }

    #[test]
    fn a_prefix_with_glob_characters_matches_only_itself() {
        assert_eq!(Keys::new("a*[b]:").records_pattern(), "a\\*\\[b\\]:r:*");
    }
}
