//! A page cache in front of a checked reader: a dump reads the same few
//! pages over and over (a frame's fields, a code object's, a string's header
//! and data); the checked reader costs a system call per read, the cache one
//! per page, and a batching reader one for many pages (prefetch, refresh).

#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{BadAddress, Memory, plausible};

/// Bytes per cached block: a page (blocks are aligned, so a block is mapped
/// whole or not at all).
const BLOCK: usize = 4096;
/// Blocks per cache: 256 KiB (untouched pages cost nothing), enough for the
/// frames, code objects, strings and module objects of a deep dump.
const BLOCKS: usize = 64;

/// Storage for a [`Cached`] reader: blocks of memory copied by one system
/// call each.
///
/// // # Internal workings
///
/// The storage is a static of the code path that uses it (the fatal handler,
/// the user-signal handler) or owned by one thread (the watchdog, a dump of
/// another process); each path already lets only one dump run at a time (its
/// re-entrancy flag), which is what makes the unsynchronised block copies
/// sound. Tags are atomics only to make the type `Sync`; Relaxed ordering
/// suffices under that exclusion.
pub struct BlockCache {
    blocks: UnsafeCell<[[u8; BLOCK]; BLOCKS]>,
    tags: [AtomicUsize; BLOCKS],
    next: AtomicUsize,
    /// The slot of the last hit: most reads follow one in the same block
    /// (a frame's fields, then its code object's), and checking it first
    /// spares the scan of every tag.
    last: AtomicUsize,
}

// SAFETY: only one dump at a time uses a given BlockCache (see above).
unsafe impl Sync for BlockCache {}

impl BlockCache {
    pub const fn new() -> Self {
        BlockCache {
            blocks: UnsafeCell::new([[0; BLOCK]; BLOCKS]),
            tags: [const { AtomicUsize::new(0) }; BLOCKS],
            next: AtomicUsize::new(0),
            last: AtomicUsize::new(0),
        }
    }

    /// Forget every block: memory may have changed since the last dump.
    /// Async-signal-safe.
    pub fn clear(&self) {
        for tag in &self.tags {
            tag.store(0, Ordering::Relaxed);
        }
    }

    /// The tag of slot `i` (the address of the block it holds, 0: empty).
    fn tag(&self, i: usize) -> Option<&AtomicUsize> {
        self.tags.get(i)
    }

    /// A slot to fill next, round robin. Async-signal-safe.
    fn victim(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % BLOCKS
    }

    /// The storage of slot `i`.
    ///
    /// # Safety
    /// The caller has exclusive use of the cache (see the type's docs), and
    /// no other reference to slot `i` is alive.
    #[allow(clippy::mut_from_ref)]
    unsafe fn block_mut(&self, i: usize) -> Option<&mut [u8; BLOCK]> {
        // SAFETY: exclusive use of the cache and of slot `i` (the caller's
        // contract); `get_mut` keeps the index in bounds.
        unsafe { (*self.blocks.get()).get_mut(i) }
    }
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader that serves reads from whole blocks read through `inner`.
pub struct Cached<'c, M: Memory> {
    pub inner: M,
    pub cache: &'c BlockCache,
    /// Where blocks of immutable objects go ([`Memory::read_immutable`]),
    /// when they may outlive one walk: see [`Cached::with_stable`].
    pub stable: Option<&'c BlockCache>,
}

/// Blocks a single prefetch brings in at most: half the cache, so that two
/// in a row (objects, then what they point to) fit in it together.
const PREFETCH_MAX: usize = BLOCKS / 2;

const NO_IOVEC: libc::iovec = libc::iovec {
    iov_base: core::ptr::null_mut(),
    iov_len: 0,
};

/// Up to `N` block reads gathered for one vectored system call.
struct Batch<const N: usize> {
    local: [libc::iovec; N],
    remote: [libc::iovec; N],
    slots: [usize; N],
    bases: [usize; N],
    len: usize,
}

impl<const N: usize> Batch<N> {
    fn new() -> Self {
        Batch {
            local: [NO_IOVEC; N],
            remote: [NO_IOVEC; N],
            slots: [0; N],
            bases: [0; N],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len >= N
    }

    fn holds(&self, base: usize) -> bool {
        self.bases
            .get(..self.len)
            .is_some_and(|b| b.contains(&base))
    }

    /// Plan to read the block at `base` into slot `slot` of `cache`.
    /// Async-signal-safe.
    fn push(&mut self, cache: &BlockCache, slot: usize, base: usize) {
        // SAFETY: exclusive use of the cache during one dump; the pointer is
        // only handed to the kernel, and the slot's tag is 0 until the read
        // succeeded, so nothing else refers to its bytes.
        let Some(block) = (unsafe { cache.block_mut(slot) }) else {
            return;
        };
        let i = self.len;
        if let (Some(l), Some(r), Some(s), Some(b)) = (
            self.local.get_mut(i),
            self.remote.get_mut(i),
            self.slots.get_mut(i),
            self.bases.get_mut(i),
        ) {
            *l = libc::iovec {
                iov_base: block.as_mut_ptr().cast(),
                iov_len: BLOCK,
            };
            *r = libc::iovec {
                iov_base: base as *mut libc::c_void,
                iov_len: BLOCK,
            };
            *s = slot;
            *b = base;
            self.len = i.saturating_add(1);
        }
    }

    /// Read the planned blocks in one call and tag those that arrived (a
    /// reader stops at the first block it cannot read). Async-signal-safe.
    fn run<M: Memory>(&self, inner: &M, cache: &BlockCache) {
        let local = self.local.get(..self.len).unwrap_or(&[]);
        let remote = self.remote.get(..self.len).unwrap_or(&[]);
        let fresh = inner.read_vectored(local, remote) / BLOCK;
        let planned = self.slots.iter().zip(&self.bases).take(self.len);
        for (k, (&slot, &base)) in planned.enumerate() {
            if let Some(tag) = cache.tag(slot) {
                tag.store(if k < fresh { base } else { 0 }, Ordering::Relaxed);
            }
        }
    }
}

impl<'c, M: Memory> Cached<'c, M> {
    /// A reader whose blocks live in `cache` (cleared by its owner between
    /// walks: the target changes). Async-signal-safe.
    pub fn new(inner: M, cache: &'c BlockCache) -> Self {
        Cached {
            inner,
            cache,
            stable: None,
        }
    }

    /// Keep the blocks of immutable objects (code objects, strings, line
    /// tables: [`Memory::read_immutable`]) in `stable`, which the owner does
    /// not clear between walks of the same process: a repeated dump then
    /// reads only what changes (thread states, frames). For the dump of
    /// another process (one command, a few walks): an object freed and its
    /// memory reused for another within that time would be read stale, so
    /// the signal paths, which may run for hours, do not use it.
    pub fn with_stable(mut self, stable: &'c BlockCache) -> Self {
        self.stable = Some(stable);
        self
    }

    /// Read again every block the cache holds from its last use, in one
    /// system call where the reader can batch, and forget the blocks that
    /// could not be read (all of them with a reader that cannot batch). For
    /// a dump that follows a rehearsal of itself (the watchdog's): it starts
    /// with the blocks it is about to need. Async-signal-safe.
    pub fn refresh(&self) {
        let mut batch = Batch::<BLOCKS>::new();
        for (slot, tag) in self.cache.tags.iter().enumerate() {
            let base = tag.swap(0, Ordering::Relaxed);
            if base != 0 {
                batch.push(self.cache, slot, base);
            }
        }
        batch.run(&self.inner, self.cache);
    }

    /// The slot holding the block at `base`, if cached. Async-signal-safe.
    fn slot_of(&self, base: usize) -> Option<usize> {
        slot_in(self.cache, base)
    }

    /// Read `dst` at `addr` through the blocks of `cache`. Async-signal-safe.
    fn read_through(
        &self,
        cache: &BlockCache,
        addr: usize,
        dst: &mut [u8],
    ) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        let mut done = 0;
        while let Some(out) = dst.get_mut(done..).filter(|rest| !rest.is_empty()) {
            // addr + dst.len() does not overflow (`plausible`).
            let at = addr.wrapping_add(done);
            let base = at & !(BLOCK - 1);
            let offset = at.wrapping_sub(base);
            let take = BLOCK.wrapping_sub(offset).min(out.len());
            let Ok(i) = block_in(cache, &self.inner, base) else {
                // A block that cannot be read whole (never for an aligned
                // page, but cheap to handle): read the range itself.
                return self.inner.read_bytes(addr, dst);
            };
            // SAFETY: as in `block_in`: the cache is ours for this dump, and
            // this view ends before the next block is read.
            let block = unsafe { cache.block_mut(i) }.ok_or(BadAddress(at))?;
            let src = block
                .get(offset..offset.saturating_add(take))
                .ok_or(BadAddress(at))?;
            out.get_mut(..take)
                .ok_or(BadAddress(at))?
                .copy_from_slice(src);
            done = done.saturating_add(take);
        }
        Ok(())
    }
}

/// The slot of `cache` holding the block at `base`, if cached.
/// Async-signal-safe.
fn slot_in(cache: &BlockCache, base: usize) -> Option<usize> {
    let last = cache.last.load(Ordering::Relaxed);
    if cache
        .tag(last)
        .is_some_and(|t| t.load(Ordering::Relaxed) == base)
    {
        return Some(last);
    }
    let found = cache
        .tags
        .iter()
        .position(|t| t.load(Ordering::Relaxed) == base)?;
    cache.last.store(found, Ordering::Relaxed);
    Some(found)
}

/// The slot of `cache` holding a copy of the block at `base`, read through
/// `inner` if needed. Async-signal-safe.
fn block_in<M: Memory>(cache: &BlockCache, inner: &M, base: usize) -> Result<usize, BadAddress> {
    if let Some(i) = slot_in(cache, base) {
        return Ok(i);
    }
    let i = cache.victim();
    let tag = cache.tag(i).ok_or(BadAddress(base))?;
    tag.store(0, Ordering::Relaxed);
    // SAFETY: exclusive use of the cache during one dump (see BlockCache); no
    // reference to slot `i` is alive (its tag was cleared, and copies out of
    // a block end before the next read).
    let block = unsafe { cache.block_mut(i) }.ok_or(BadAddress(base))?;
    inner.read_bytes(base, block)?;
    tag.store(base, Ordering::Relaxed);
    cache.last.store(i, Ordering::Relaxed);
    Ok(i)
}

impl<M: Memory> Memory for Cached<'_, M> {
    /// The blocks of up to [`PREFETCH_MAX`] of `addrs` not cached yet, in
    /// one system call. Blocks past one that cannot be read are left out
    /// (read on demand, or found unreadable, later). Async-signal-safe.
    fn prefetch(&self, addrs: &[usize]) {
        if !self.inner.batches() {
            return;
        }
        let mut batch = Batch::<PREFETCH_MAX>::new();
        for &addr in addrs {
            if batch.is_full() {
                break;
            }
            let base = addr & !(BLOCK - 1);
            if plausible(base, BLOCK).is_err() || self.slot_of(base).is_some() || batch.holds(base)
            {
                continue;
            }
            // At most half the cache per call: distinct slots.
            let slot = self.cache.victim();
            if let Some(tag) = self.cache.tag(slot) {
                tag.store(0, Ordering::Relaxed);
                batch.push(self.cache, slot, base);
            }
        }
        batch.run(&self.inner, self.cache);
    }

    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        self.read_through(self.cache, addr, dst)
    }

    /// Through the stable blocks, where there are. Async-signal-safe.
    fn read_immutable(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        self.read_through(self.stable.unwrap_or(self.cache), addr, dst)
    }
}
