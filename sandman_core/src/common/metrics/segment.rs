//! The shared memory segment: a `memfd` mapped by every process of a group. The
//! supervisor creates it and hands its descriptor to each worker it spawns (inherited, as
//! the listening sockets are); a single server creates its own.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::common::metrics::layout::{Header, Slot, MAGIC};

/// A mapped metrics segment: a header and `slots` slots.
pub struct Segment {
    base: *mut u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the mapping holds only atomics, read and written through shared references.
unsafe impl Send for Segment {}
// SAFETY: as above.
unsafe impl Sync for Segment {}

fn size_for(slots: usize) -> usize {
    std::mem::size_of::<Header>() + slots * std::mem::size_of::<Slot>()
}

fn map(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a shared read-write mapping of a descriptor we own, of its length.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// A file with no name, only a descriptor: a `memfd` on Linux.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn anonymous_file() -> io::Result<OwnedFd> {
    // SAFETY: a constant C string; the descriptor returned is owned below.
    let raw = unsafe { libc::memfd_create(c"sandman-metrics".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Elsewhere (and in the `portable` build): a temporary file, unlinked at once.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
fn anonymous_file() -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let template = std::env::temp_dir().join("sandman-metrics-XXXXXX");
    let mut path = std::ffi::CString::new(template.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?
        .into_bytes_with_nul();
    // SAFETY: a NUL-terminated template mkstemp may rewrite in place.
    let raw = unsafe { libc::mkstemp(path.as_mut_ptr().cast()) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the path mkstemp filled in; the open descriptor keeps the file alive.
    unsafe {
        libc::unlink(path.as_ptr().cast());
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
    }
    Ok(fd)
}

impl Segment {
    /// A new segment with room for `slots` slots (slot 0 keeps what exited workers
    /// counted; server processes claim the others).
    pub fn create(slots: usize) -> io::Result<Segment> {
        let slots = slots.max(2);
        let fd = anonymous_file()?;
        let len = size_for(slots);
        // SAFETY: a descriptor we own; the file is zero-filled up to `len`.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let segment = Segment {
            base: map(&fd, len)?,
            len,
            fd,
        };
        segment
            .header()
            .slots
            .store(slots as u64, Ordering::Relaxed);
        segment.header().magic.store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Map a segment another process created, from its descriptor (taken over).
    pub fn attach(fd: OwnedFd) -> io::Result<Segment> {
        // SAFETY: `stat` is plain data; fstat fills it for a descriptor we own.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let len = stat.st_size as usize;
        if len < size_for(2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a metrics segment",
            ));
        }
        let segment = Segment {
            base: map(&fd, len)?,
            len,
            fd,
        };
        let header = segment.header();
        if header.magic.load(Ordering::Acquire) != MAGIC
            || size_for(header.slots.load(Ordering::Relaxed) as usize) > len
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a metrics segment",
            ));
        }
        Ok(segment)
    }

    /// The descriptor, for a child process to inherit.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The header.
    pub fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a header, suitably aligned (page-aligned base).
        unsafe { &*(self.base as *const Header) }
    }

    /// How many slots there are.
    pub fn slots(&self) -> usize {
        self.header().slots.load(Ordering::Relaxed) as usize
    }

    /// Slot `index` (`index < slots()`).
    pub fn slot(&self, index: usize) -> &Slot {
        assert!(index < self.slots(), "slot {index} out of range");
        let offset = std::mem::size_of::<Header>() + index * std::mem::size_of::<Slot>();
        debug_assert!(offset + std::mem::size_of::<Slot>() <= self.len);
        // SAFETY: in bounds (checked above), aligned (header and slots are multiples of
        // 128 bytes from a page-aligned base), all-zero bytes are a valid `Slot`.
        unsafe { &*(self.base.add(offset) as *const Slot) }
    }

    /// Every slot, slot 0 first.
    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        (0..self.slots()).map(|i| self.slot(i))
    }

    /// Claim a free slot for process `pid`; `None` when every slot is taken.
    pub fn claim(&self, pid: u64) -> Option<usize> {
        (1..self.slots()).find(|&i| {
            self.slot(i)
                .owner
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })
    }

    /// Process `pid` has exited: fold what its slot counted into slot 0, so the group's
    /// totals never go backwards, and free the slot. Its gauges (open connections, requests
    /// in flight, cache size) end with it.
    pub fn release(&self, pid: u64) {
        let Some(index) =
            (1..self.slots()).find(|&i| self.slot(i).owner.load(Ordering::Acquire) == pid)
        else {
            return;
        };
        let (from, into) = (self.slot(index), self.slot(0));
        let add = |a: &AtomicU64, b: &AtomicU64| {
            b.fetch_add(a.swap(0, Ordering::AcqRel), Ordering::Relaxed);
        };
        let mut finished = 0;
        for (row_from, row_into) in from.requests.iter().zip(&into.requests) {
            for (a, b) in row_from.iter().zip(row_into) {
                finished += a.load(Ordering::Relaxed);
                add(a, b);
            }
        }
        // What it had in flight ends with it: only the finished ones stay begun.
        from.started.store(0, Ordering::Relaxed);
        into.started.fetch_add(finished, Ordering::Relaxed);
        for (a, b) in from.duration_buckets.iter().zip(&into.duration_buckets) {
            add(a, b);
        }
        add(&from.duration_sum_us, &into.duration_sum_us);
        for i in 0..from.opened.len() {
            // Its open connections closed with it.
            let opened = from.opened[i].swap(0, Ordering::AcqRel);
            from.closed[i].store(0, Ordering::Relaxed);
            into.opened[i].fetch_add(opened, Ordering::Relaxed);
            into.closed[i].fetch_add(opened, Ordering::Relaxed);
        }
        for (a, b) in [
            (&from.bytes_in, &into.bytes_in),
            (&from.bytes_out, &into.bytes_out),
            (&from.ws_messages_in, &into.ws_messages_in),
            (&from.ws_messages_out, &into.ws_messages_out),
            (&from.static_responses, &into.static_responses),
            (&from.cache_hits, &into.cache_hits),
            (&from.cache_misses, &into.cache_misses),
            (&from.cache_stores, &into.cache_stores),
            (&from.cache_evictions, &into.cache_evictions),
            (&from.lag_sum_us, &into.lag_sum_us),
        ] {
            add(a, b);
        }
        for (a, b) in from.lag_buckets.iter().zip(&into.lag_buckets) {
            add(a, b);
        }
        from.cache_bytes.store(0, Ordering::Relaxed);
        from.state.store(0, Ordering::Relaxed);
        from.heartbeat_ms.store(0, Ordering::Relaxed);
        from.owner.store(0, Ordering::Release);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`/`attach`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_mapping_sees_the_first_ones_counts() {
        let segment = Segment::create(4).unwrap();
        // SAFETY: dup of a descriptor we own.
        let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(segment.fd())) };
        let other = Segment::attach(dup).unwrap();
        let index = segment.claim(42).unwrap();
        assert_eq!(index, 1);
        segment.slot(index).bytes_in.fetch_add(7, Ordering::Relaxed);
        assert_eq!(other.slot(index).bytes_in.load(Ordering::Relaxed), 7);
        assert_eq!(other.slot(index).owner.load(Ordering::Relaxed), 42);
        assert_eq!(other.claim(43), Some(2));
    }

    #[test]
    fn release_folds_counters_and_drops_gauges() {
        let segment = Segment::create(3).unwrap();
        let i = segment.claim(7).unwrap();
        let slot = segment.slot(i);
        slot.requests[0][2].fetch_add(5, Ordering::Relaxed);
        slot.started.fetch_add(6, Ordering::Relaxed); // one in flight
        slot.opened[0].fetch_add(3, Ordering::Relaxed);
        slot.closed[0].fetch_add(1, Ordering::Relaxed); // two open
        slot.bytes_out.fetch_add(100, Ordering::Relaxed);
        segment.release(7);
        let zero = segment.slot(0);
        assert_eq!(zero.requests[0][2].load(Ordering::Relaxed), 5);
        assert_eq!(
            zero.started.load(Ordering::Relaxed),
            5,
            "nothing left in flight"
        );
        assert_eq!(
            zero.opened[0].load(Ordering::Relaxed),
            zero.closed[0].load(Ordering::Relaxed),
            "nothing left open"
        );
        assert_eq!(zero.bytes_out.load(Ordering::Relaxed), 100);
        assert_eq!(slot.owner.load(Ordering::Relaxed), 0);
        assert_eq!(slot.bytes_out.load(Ordering::Relaxed), 0);
        assert_eq!(segment.claim(8), Some(1), "the slot is free again");
    }

    #[test]
    fn attach_refuses_other_files() {
        // SAFETY: a constant C string; the descriptor is owned below.
        let raw = unsafe { libc::memfd_create(c"other".as_ptr(), libc::MFD_CLOEXEC) };
        // SAFETY: a fresh descriptor.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: a descriptor we own.
        unsafe { libc::ftruncate(fd.as_raw_fd(), 1 << 16) };
        assert!(Segment::attach(fd).is_err());
    }
}
