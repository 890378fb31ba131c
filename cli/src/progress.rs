//! Progress on long work (export, import, clear), drawn on stderr only when it is a terminal:
//! indicatif hides its bars otherwise, so scripts and pipes see nothing of them.

use std::io::{Read, Write};

use indicatif::{ProgressBar, ProgressStyle};

pub(crate) struct Progress(ProgressBar);

impl Progress {
    /// A spinner for work whose size is unknown.
    pub fn spinner(what: &'static str) -> Self {
        let bar = ProgressBar::new_spinner().with_message(what);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress(bar)
    }

    /// Bytes moved, out of `total` when known.
    pub fn bytes(what: &'static str, total: Option<u64>) -> Self {
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::new(total),
                "{msg} {wide_bar} {bytes}/{total_bytes} ({eta})",
            ),
            None => (ProgressBar::new_spinner(), "{spinner} {msg} {bytes}"),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_message(what);
        Progress(bar)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A reader or writer that advances a progress bar by the bytes it moves.
pub(crate) struct Counting<'a, T> {
    inner: T,
    bar: &'a Progress,
}

impl<'a, T> Counting<'a, T> {
    pub fn new(inner: T, bar: &'a Progress) -> Self {
        Counting { inner, bar }
    }
}

impl<T: Write> Write for Counting<'_, T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.0.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Read> Read for Counting<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.0.inc(n as u64);
        Ok(n)
    }
}
