//! Room on the disk: the store's two bounds (`storage.max_size` on what it holds,
//! `storage.min_free` on what it leaves free), the reservation a fill takes when it starts, and
//! why a pull goes on unstored.
//!
//! The decision itself ([`shortfall`]) is pure; the store feeds it its counters and one
//! `statvfs` of its filesystem.

use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::config::MinFree;

use super::Inner;

/// The configured bounds of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `storage.max_size`: bytes of committed objects plus reservations of running fills.
    pub max_size: Option<u64>,
    /// `storage.min_free`: free space to leave on the filesystem.
    pub min_free: MinFree,
}

impl Limits {
    /// Only `max_size`, no floor (tools that open a store without serving from it, tests).
    pub fn max_size_only(max_size: Option<u64>) -> Self {
        Self {
            max_size,
            min_free: MinFree::Bytes(0),
        }
    }

    /// True when neither bound is set: no evictor is needed.
    pub(crate) fn unbounded(&self) -> bool {
        self.max_size.is_none() && self.min_free == MinFree::Bytes(0)
    }
}

/// Why content was served without being stored. The label of
/// `trustgate_store_unstored_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unstored {
    /// Larger than `max_size` itself: it could never be kept.
    TooLarge,
    /// `max_size` is taken by objects in use and fills in progress.
    MaxSize,
    /// Storing it would take free space under `storage.min_free`, and eviction cannot help.
    MinFree,
    /// The filesystem said ENOSPC or EDQUOT.
    NoSpace,
    /// The filesystem is read-only (EROFS).
    ReadOnly,
    /// Any other error writing, syncing or renaming (EIO, a removed directory, ...).
    WriteError,
}

impl Unstored {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::MaxSize => "max_size",
            Self::MinFree => "min_free",
            Self::NoSpace => "no_space",
            Self::ReadOnly => "read_only",
            Self::WriteError => "write_error",
        }
    }

    /// Words for the log and `/readyz`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::TooLarge => "larger than storage.max_size",
            Self::MaxSize => "storage.max_size taken by content in use",
            Self::MinFree => "free space below storage.min_free",
            Self::NoSpace => "disk full",
            Self::ReadOnly => "read-only",
            Self::WriteError => "write errors",
        }
    }

    /// The disk faults a gateway serves through (ENOSPC, EDQUOT, EROFS, EIO), `None` for
    /// other errors (a path that is not a directory, a permission): `/readyz` tells them apart.
    pub fn from_io_error(e: &io::Error) -> Option<Self> {
        let eio = rustix::io::Errno::IO.raw_os_error();
        match Self::from_io(e) {
            Self::WriteError if e.raw_os_error() != Some(eio) => None,
            r => Some(r),
        }
    }

    /// What a failed write says about the disk.
    pub(crate) fn from_io(e: &io::Error) -> Self {
        match e.raw_os_error() {
            Some(c) if c == rustix::io::Errno::NOSPC.raw_os_error() => Self::NoSpace,
            Some(c) if c == rustix::io::Errno::DQUOT.raw_os_error() => Self::NoSpace,
            Some(c) if c == rustix::io::Errno::ROFS.raw_os_error() => Self::ReadOnly,
            _ => Self::WriteError,
        }
    }

    /// Conditions of the disk itself (reported by `/readyz` until a write succeeds again),
    /// as opposed to `max_size`, which the configuration sets and eviction keeps: a disk too
    /// full for a pull above `min_free` is one.
    pub(crate) fn is_disk_fault(self) -> bool {
        matches!(
            self,
            Self::NoSpace | Self::ReadOnly | Self::WriteError | Self::MinFree
        )
    }
}

/// One look at the filesystem under the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsSpace {
    /// Bytes an unprivileged writer may still use (`f_bavail`).
    pub(crate) avail: u64,
    /// The filesystem's size (`f_blocks`).
    pub(crate) size: u64,
}

pub(crate) fn statvfs(path: &Path) -> io::Result<FsSpace> {
    let s = rustix::fs::statvfs(path)?;
    Ok(FsSpace {
        avail: s.f_bavail.saturating_mul(s.f_frsize),
        size: s.f_blocks.saturating_mul(s.f_frsize),
    })
}

/// The store's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Committed objects.
    pub(crate) total: u64,
    /// Reservations of fills in progress.
    pub(crate) reserved: u64,
}

/// How many bytes must be evicted before `len` more may be stored, and which bound asks for
/// them: `(for max_size, for min_free)`. `Err` when no eviction can help (`len` alone is over
/// `max_size`). `space` is `None` when the filesystem could not be asked (the floor is then
/// not applied rather than guessed).
pub(crate) fn shortfall(
    limits: &Limits,
    usage: Usage,
    space: Option<FsSpace>,
    len: u64,
) -> Result<(u64, u64), Unstored> {
    let for_max = match limits.max_size {
        Some(max) if len > max => return Err(Unstored::TooLarge),
        Some(max) => (usage.total + usage.reserved + len).saturating_sub(max),
        None => 0,
    };
    let for_floor = match space {
        Some(s) => {
            // Reservations are counted whole although part of them may already be written:
            // under a burst of fills the floor errs on the side of free space.
            let floor = limits.min_free.bytes(s.size);
            (floor + usage.reserved + len).saturating_sub(s.avail)
        }
        None => 0,
    };
    Ok((for_max, for_floor))
}

/// Bytes counted against the bounds for one fill from its start until it commits or fails
/// (issue 15: a burst of cold pulls used to overshoot `max_size`). Released on drop.
pub(crate) struct Reservation {
    inner: Arc<Inner>,
    len: u64,
}

impl Reservation {
    /// Counts `len` bytes; the caller holds the lock and has checked the bounds.
    pub(crate) fn new_locked(inner: &Arc<Inner>, st: &mut super::State, len: u64) -> Self {
        st.reserved += len;
        Self {
            inner: inner.clone(),
            len,
        }
    }
}

impl Reservation {
    /// The bytes are now counted as committed: the reservation ends without a second lock.
    pub(crate) fn settle_locked(mut self, st: &mut super::State) {
        st.reserved = st.reserved.saturating_sub(self.len);
        self.len = 0;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.len > 0 {
            let mut st = self.inner.lock();
            st.reserved = st.reserved.saturating_sub(self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn limits(max: Option<u64>, floor: u64) -> Limits {
        Limits {
            max_size: max,
            min_free: MinFree::Bytes(floor),
        }
    }

    #[test]
    fn reservations_count_against_max_size() {
        let l = limits(Some(100 * MIB), 0);
        let u = |total, reserved| Usage { total, reserved };
        assert_eq!(shortfall(&l, u(0, 0), None, 40 * MIB), Ok((0, 0)));
        // Two fills of 40 MiB running: a third needs 20 MiB evicted, not none.
        assert_eq!(
            shortfall(&l, u(0, 80 * MIB), None, 40 * MIB),
            Ok((20 * MIB, 0))
        );
        assert_eq!(
            shortfall(&l, u(0, 0), None, 101 * MIB),
            Err(Unstored::TooLarge)
        );
    }

    #[test]
    fn the_floor_keeps_free_space_after_reservations() {
        let l = limits(None, 10 * MIB);
        let space = Some(FsSpace {
            avail: 50 * MIB,
            size: 100 * MIB,
        });
        let u = |reserved| Usage { total: 0, reserved };
        assert_eq!(shortfall(&l, u(0), space, 40 * MIB), Ok((0, 0)));
        assert_eq!(shortfall(&l, u(0), space, 45 * MIB), Ok((0, 5 * MIB)));
        assert_eq!(
            shortfall(&l, u(30 * MIB), space, 20 * MIB),
            Ok((0, 10 * MIB))
        );
        // Without a look at the filesystem the floor is not applied.
        assert_eq!(shortfall(&l, u(0), None, 500 * MIB), Ok((0, 0)));
    }

    #[test]
    fn write_errors_name_the_disk_condition() {
        let e = |c: rustix::io::Errno| io::Error::from_raw_os_error(c.raw_os_error());
        assert_eq!(
            Unstored::from_io(&e(rustix::io::Errno::NOSPC)),
            Unstored::NoSpace
        );
        assert_eq!(
            Unstored::from_io(&e(rustix::io::Errno::DQUOT)),
            Unstored::NoSpace
        );
        assert_eq!(
            Unstored::from_io(&e(rustix::io::Errno::ROFS)),
            Unstored::ReadOnly
        );
        assert_eq!(
            Unstored::from_io(&e(rustix::io::Errno::IO)),
            Unstored::WriteError
        );
        assert!(Unstored::NoSpace.is_disk_fault() && !Unstored::MaxSize.is_disk_fault());
    }
}
