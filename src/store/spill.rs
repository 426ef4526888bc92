//! The bytes of a fill that goes on without the disk (issue 15: "disk full is an outage").
//!
//! When a fill cannot be stored (refused up front by the bounds, or a write, sync or rename
//! fails midway), the fill task switches to a [`Spill`]: bytes already written stay readable
//! through the temp file's open handle (its name is removed at once; the space comes back when
//! the last reader lets go), and every later byte goes to a window of chunks in memory that the
//! readers take from. The window is bounded ([`WINDOW`]): chunks every reader has passed are
//! dropped, and the fill task waits for the slowest reader before it reads more from the
//! upstream. Memory per unstored fill stays at a few chunks whatever the blob's size.
//!
//! A reader that joins after the window moved past its position gets an error (never other
//! bytes); its client retries, which starts a fill of its own.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::fs::CHUNK;

/// Bytes held in memory per unstored fill before the fill waits for its slowest reader.
pub(crate) const WINDOW: usize = 8 * CHUNK;

#[derive(Default)]
pub(crate) struct Spill {
    state: Mutex<State>,
    /// A reader moved on or left: the fill task may trim the window and read on.
    advanced: Notify,
}

#[derive(Default)]
struct State {
    /// Where the fill stopped writing to disk: bytes before it are in `prefix`.
    from: u64,
    /// The temp file (already unlinked) holding bytes `0..from`.
    prefix: Option<Arc<File>>,
    /// Offset of the first byte of `chunks`.
    base: u64,
    chunks: VecDeque<Bytes>,
    held: usize,
    /// Position of each live reader of the fill, by reader id.
    readers: HashMap<u64, u64>,
    next_id: u64,
}

impl Spill {
    /// A reader starting at `pos`; its id for [`Spill::advance`] and [`Spill::leave`].
    pub(crate) fn join(&self, pos: u64) -> u64 {
        let mut st = self.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.readers.insert(id, pos);
        drop(st);
        self.advanced.notify_one();
        id
    }

    pub(crate) fn advance(&self, id: u64, pos: u64) {
        self.state.lock().readers.insert(id, pos);
        self.advanced.notify_one();
    }

    pub(crate) fn leave(&self, id: u64) {
        self.state.lock().readers.remove(&id);
        self.advanced.notify_one();
    }

    /// The switch: bytes `0..from` are in `prefix`, later ones come through [`Spill::push`].
    pub(crate) fn start(&self, from: u64, prefix: Option<Arc<File>>) {
        let mut st = self.state.lock();
        st.from = from;
        st.base = from;
        st.prefix = prefix;
    }

    /// Where the memory window starts, and the handle for the bytes before it.
    pub(crate) fn prefix(&self) -> (u64, Option<Arc<File>>) {
        let st = self.state.lock();
        (st.from, st.prefix.clone())
    }

    pub(crate) fn push(&self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        let mut st = self.state.lock();
        st.held += chunk.len();
        st.chunks.push_back(chunk);
    }

    /// Drops the chunks every reader has passed; true when the slowest reader (or, with no
    /// reader yet, the window's start) is more than [`WINDOW`] bytes behind the newest byte: the
    /// fill should wait. Measured from the reader, not the window, so a reader held back just
    /// before the last byte (until the verdict) never makes the fill wait for it.
    pub(crate) fn trim(&self) -> bool {
        let mut st = self.state.lock();
        let slowest = st.readers.values().min().copied();
        if let Some(min) = slowest {
            while let Some(len) = st.chunks.front().map(Bytes::len) {
                let end = st.base + len as u64;
                if end > min {
                    break;
                }
                st.base = end;
                st.held -= len;
                st.chunks.pop_front();
            }
        }
        let newest = st.base + st.held as u64;
        newest.saturating_sub(slowest.unwrap_or(st.base)) > WINDOW as u64
    }

    /// Waits until a reader moves on or leaves.
    pub(crate) async fn advanced(&self) {
        self.advanced.notified().await;
    }

    /// Bytes from `pos` (at least the window's start) up to `cap` (exclusive), from one chunk.
    pub(crate) fn read(&self, pos: u64, cap: u64) -> io::Result<Bytes> {
        let st = self.state.lock();
        if pos < st.base {
            return Err(io::Error::other(
                "content served without being stored: this reader fell behind the other \
                 readers of the same pull; retry",
            ));
        }
        let mut at = st.base;
        for c in &st.chunks {
            let end = at + c.len() as u64;
            if pos < end {
                let from = (pos - at) as usize;
                let to = (cap.min(end) - at) as usize;
                return Ok(c.slice(from..to));
            }
            at = end;
        }
        Err(io::Error::other(
            "store reader: unstored bytes announced but not held",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_drops_what_every_reader_passed() {
        let s = Spill::default();
        let a = s.join(0);
        let b = s.join(0);
        s.start(0, None);
        s.push(Bytes::from_static(b"abcd"));
        s.push(Bytes::from_static(b"efgh"));
        assert_eq!(&s.read(2, 8).unwrap()[..], b"cd");
        assert_eq!(&s.read(4, 6).unwrap()[..], b"ef");
        s.advance(a, 8);
        assert!(!s.trim());
        // b is still at 0: nothing dropped.
        assert_eq!(&s.read(0, 8).unwrap()[..], b"abcd");
        s.advance(b, 5);
        s.trim();
        assert!(s.read(0, 8).is_err(), "dropped: never other bytes");
        assert_eq!(&s.read(5, 8).unwrap()[..], b"fgh");
        s.leave(b);
        s.leave(a);
    }

    #[test]
    fn a_full_window_asks_the_fill_to_wait() {
        let s = Spill::default();
        let r = s.join(0);
        s.start(0, None);
        for _ in 0..=WINDOW / CHUNK {
            s.push(Bytes::from(vec![0u8; CHUNK]));
        }
        assert!(s.trim());
        s.advance(r, (2 * CHUNK) as u64);
        assert!(!s.trim());
    }
}
