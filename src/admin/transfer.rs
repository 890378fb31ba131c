//! The export stream of [`Cache::export`](crate::Cache::export) and
//! [`Cache::import`](crate::Cache::import); its layout is in `docs/format.md` ("Export
//! streams").
//!
//! ```text
//! "tiered-export 1\n"                          header: magic and stream version
//! then per entry:  len u64 LE (> 0) | postcard(Exported) (len bytes) | xxh3-64 of them u64 LE
//! then the end:    0u64 LE | number of entries u64 LE
//! ```
//! The end frame tells a complete stream from one cut at a frame boundary; the per-frame
//! checksum tells a damaged frame from a good one. A reader never trusts a length to
//! allocate: it reads what the stream holds.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

/// The first bytes of every export stream.
pub(crate) const MAGIC: &[u8] = b"tiered-export ";
/// The stream version this build writes and reads.
pub(crate) const VERSION: u32 = 1;

/// One live entry as an export carries it: everything needed to store it again in another
/// cache, and nothing tied to the cache it came from (no generations, no side-file ids).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Exported {
    /// The full key: scope prefix and key (`docs/format.md`, "Keys").
    pub key: Vec<u8>,
    /// The namespace, as the key's scope says it (`None`: the root); checked against it on
    /// import.
    pub namespace: Option<String>,
    /// Its tags.
    pub tags: Vec<ExportedTag>,
    /// The value type's shape fingerprint and name id (`docs/format.md`, "Records").
    pub fingerprint: u64,
    pub type_name_id: u64,
    /// Whether the payload is MessagePack (else postcard).
    pub self_describing: bool,
    pub created_ms: u64,
    /// Unix ms; 0 for none.
    pub deadline_ms: u64,
    /// Idle limit in ms; 0 for none.
    pub idle_ms: u64,
    /// The encoded value (a side file's bytes inlined).
    pub payload: Vec<u8>,
}

/// A tag: its name when the exporting cache knew it, and always its id, `xxh3-64("tag:" +
/// name)`, which is what records and `invalidate_tag` use: an entry whose tag name was unknown
/// still answers to `invalidate_tag(name)` after an import.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExportedTag {
    pub name: Option<String>,
    pub id: u64,
}

pub(crate) fn write_header(out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(MAGIC)?;
    writeln!(out, "{VERSION}")
}

pub(crate) fn write_entry(out: &mut impl Write, entry: &Exported) -> std::io::Result<()> {
    let bytes = postcard::to_stdvec(entry).map_err(std::io::Error::other)?;
    out.write_all(&(bytes.len() as u64).to_le_bytes())?;
    out.write_all(&bytes)?;
    out.write_all(&xxh3_64(&bytes).to_le_bytes())
}

pub(crate) fn write_end(out: &mut impl Write, count: u64) -> std::io::Result<()> {
    out.write_all(&0u64.to_le_bytes())?;
    out.write_all(&count.to_le_bytes())
}

/// Reads an export stream frame by frame; each error says what is wrong with the stream.
pub(crate) struct StreamReader<R> {
    input: R,
    read: u64,
    done: bool,
}

impl<R: Read> StreamReader<R> {
    /// Checks the header.
    pub fn new(mut input: R) -> Result<Self, String> {
        let mut magic = Vec::with_capacity(MAGIC.len());
        (&mut input)
            .take(MAGIC.len() as u64)
            .read_to_end(&mut magic)
            .map_err(|e| format!("reading the header failed: {e}"))?;
        if !MAGIC.starts_with(&magic) || magic.is_empty() {
            return Err("this is not a tiered export (it does not begin with \
                        \"tiered-export \")"
                .into());
        }
        if magic.len() < MAGIC.len() {
            return Err("the stream ends in the middle of the header: it is truncated".into());
        }
        let mut version = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            read_exact(&mut input, &mut byte, "the header")?;
            if byte[0] == b'\n' {
                break;
            }
            if version.len() >= 10 {
                return Err("the header's version is not a number".into());
            }
            version.push(byte[0]);
        }
        let version: u32 = std::str::from_utf8(&version)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or("the header's version is not a number")?;
        if version != VERSION {
            return Err(format!(
                "the export is of stream version {version}, this tiered reads version {VERSION}"
            ));
        }
        Ok(StreamReader {
            input,
            read: 0,
            done: false,
        })
    }

    /// The next entry, or `None` at the end frame.
    pub fn next_entry(&mut self) -> Result<Option<Exported>, String> {
        if self.done {
            return Ok(None);
        }
        let at = self.read + 1;
        let mut len = [0u8; 8];
        read_exact(
            &mut self.input,
            &mut len,
            "an entry's length (no end frame)",
        )?;
        let len = u64::from_le_bytes(len);
        if len == 0 {
            let mut count = [0u8; 8];
            read_exact(&mut self.input, &mut count, "the end frame")?;
            let count = u64::from_le_bytes(count);
            if count != self.read {
                return Err(format!(
                    "the end frame counts {count} entries, the stream held {}",
                    self.read
                ));
            }
            self.done = true;
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let got = (&mut self.input)
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("entry {at} could not be read: {e}"))?;
        if got as u64 != len {
            return Err(format!(
                "entry {at} is cut short ({got} of {len} bytes): the stream is truncated"
            ));
        }
        let mut sum = [0u8; 8];
        read_exact(&mut self.input, &mut sum, "an entry's checksum")?;
        if xxh3_64(&bytes) != u64::from_le_bytes(sum) {
            return Err(format!("entry {at} is damaged (its checksum fails)"));
        }
        let entry: Exported = postcard::from_bytes(&bytes)
            .map_err(|e| format!("entry {at} does not decode ({e})"))?;
        self.read += 1;
        Ok(Some(entry))
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), String> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("the stream ends in the middle of {what}: it is truncated")
        }
        _ => format!("reading {what} failed: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> Exported {
        Exported {
            key: vec![0, 0x08, n],
            namespace: None,
            tags: vec![ExportedTag {
                name: Some("t".into()),
                id: 7,
            }],
            fingerprint: 1,
            type_name_id: 2,
            self_describing: false,
            created_ms: 3,
            deadline_ms: 0,
            idle_ms: 0,
            payload: vec![n; 10],
        }
    }

    fn stream(n: u8) -> Vec<u8> {
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        for i in 0..n {
            write_entry(&mut out, &entry(i)).unwrap();
        }
        write_end(&mut out, n.into()).unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> (Vec<Exported>, Option<String>) {
        let mut got = Vec::new();
        let mut r = match StreamReader::new(bytes) {
            Ok(r) => r,
            Err(e) => return (got, Some(e)),
        };
        loop {
            match r.next_entry() {
                Ok(Some(e)) => got.push(e),
                Ok(None) => return (got, None),
                Err(e) => return (got, Some(e)),
            }
        }
    }

    #[test]
    fn round_trips() {
        let (got, err) = read_all(&stream(3));
        assert_eq!(err, None);
        assert_eq!(got, vec![entry(0), entry(1), entry(2)]);
        assert!(stream(0).starts_with(b"tiered-export 1\n"));
    }

    /// Every cut of a stream is an error after the entries before it, never a panic and
    /// never a silent success.
    #[test]
    fn every_truncation_is_an_error_keeping_what_came_before() {
        let full = stream(3);
        for cut in 0..full.len() {
            let (got, err) = read_all(&full[..cut]);
            assert!(err.is_some(), "cut at {cut} read as complete");
            assert!(got.len() <= 3);
            assert_eq!(got, (0..got.len() as u8).map(entry).collect::<Vec<_>>());
        }
    }

    #[test]
    fn damage_and_foreign_streams_are_named() {
        let mut bad = stream(2);
        let last = bad.len() - 20;
        bad[last] ^= 0xff;
        let (got, err) = read_all(&bad);
        assert_eq!(got.len(), 1);
        assert!(err.unwrap().contains("damaged"));

        let (_, err) = read_all(b"PK\x03\x04 zip file");
        assert!(err.unwrap().contains("not a tiered export"));
        let (_, err) = read_all(b"tiered-export 9\n");
        assert!(err.unwrap().contains("version 9"));
        // A huge length announces more than the stream has: no allocation of it.
        let mut huge = stream(0);
        huge.truncate(huge.len() - 16);
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(b"abc");
        let (_, err) = read_all(&huge);
        assert!(err.unwrap().contains("truncated"));
    }
}
