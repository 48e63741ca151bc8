//! The loaded objects of a process, from the dynamic loader's public
//! `struct link_map` list (`_r_debug.r_map`), read without the loader's lock
//! through checked reads: the list may be changing (a `dlopen` on another
//! thread), and a torn read only loses a name or ends the list early.
//!
//! A [`Objects`] snapshot is taken once per stack (a few reads per object),
//! then answers "which object contains this address" from memory of the
//! program headers, as `dladdr` does.

use super::step::{CodeMap, UnwindInfo};
use crate::memory::Memory;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_NOTE: u32 = 4;
const PT_PHDR: u32 = 6;
const PT_GNU_EH_FRAME: u32 = 0x6474_e550;
const PF_X: u32 = 1;
const DT_NULL: i64 = 0;
const DT_DEBUG: i64 = 21;
/// Size of an ELF64 program header.
const PHDR_SIZE: usize = 56;
/// Program headers looked at per object.
const MAX_PHDRS: usize = 256;
/// `link_map` entries followed.
const MAX_LIST: usize = 4096;
/// Dynamic section entries looked at.
const MAX_DYNAMIC: usize = 512;

/// Where the object list of a process is, and how its main program is named.
#[derive(Clone, Copy, Debug, Default)]
pub struct Process {
    /// `&_r_debug`, or 0 to find it through the main program's `DT_DEBUG`.
    pub r_debug: usize,
    /// The main program's program headers (`AT_PHDR`, `AT_PHNUM`).
    pub main_phdr: usize,
    pub main_phnum: usize,
    /// The name printed for the main program (in-process: argv[0], as
    /// `dladdr` reports it): the address of a NUL-terminated string.
    pub main_name: usize,
}

/// One program header, the fields used here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

impl Phdr {
    /// Decode a little-endian ELF64 program header. Async-signal-safe.
    pub fn decode(p: &[u8]) -> Phdr {
        let word = |at: usize| {
            p.get(at..at.saturating_add(8))
                .and_then(|s| s.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        };
        let half = |at: usize| {
            p.get(at..at.saturating_add(4))
                .and_then(|s| s.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        Phdr {
            p_type: half(0),
            flags: half(4),
            offset: word(8),
            vaddr: word(16),
            filesz: word(32),
            memsz: word(40),
        }
    }

    /// Whether this is a `PT_LOAD`. Async-signal-safe.
    pub fn is_load(&self) -> bool {
        self.p_type == PT_LOAD
    }

    /// Whether this is an executable `PT_LOAD`. Async-signal-safe.
    pub fn is_exec(&self) -> bool {
        self.is_load() && self.flags & PF_X != 0
    }
}

/// Call `f` with each program header of an object (absolute address `phdr`,
/// `phnum` entries), eight per read, until it returns false.
/// Async-signal-safe.
pub fn for_each_phdr(
    mem: &impl Memory,
    phdr: usize,
    phnum: usize,
    mut f: impl FnMut(&Phdr) -> bool,
) {
    let mut chunk = [0u8; PHDR_SIZE * 8];
    let mut done = 0usize;
    let phnum = phnum.min(MAX_PHDRS);
    while done < phnum {
        let n = phnum.saturating_sub(done).min(8);
        let Some(dst) = chunk.get_mut(..n.saturating_mul(PHDR_SIZE)) else {
            return;
        };
        let Some(at) = done
            .checked_mul(PHDR_SIZE)
            .and_then(|off| phdr.checked_add(off))
        else {
            return;
        };
        if mem.read_bytes(at, dst).is_err() {
            return;
        }
        for p in dst.chunks_exact(PHDR_SIZE) {
            if !f(&Phdr::decode(p)) {
                return;
            }
        }
        done = done.saturating_add(n);
    }
}

/// An object found for an address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// The address of its NUL-terminated name (the loader's `l_name`, or
    /// [`Process::main_name`]); 0 if none.
    pub name: usize,
    /// Load bias (`l_addr`).
    pub bias: usize,
    /// Its program headers, in memory.
    pub phdr: usize,
    pub phnum: usize,
    pub eh_frame_hdr: usize,
    pub eh_frame_hdr_len: usize,
    /// The end of the `PT_LOAD` segment holding `.eh_frame_hdr`.
    pub eh_frame_end: usize,
    /// The dynamic section (`.dynsym` is found through it), 0 if none.
    pub dynamic: usize,
    pub is_main: bool,
}

/// One entry of a snapshot.
#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    name: usize,
    bias: usize,
    /// The span of its `PT_LOAD` segments: `[lo, hi)`.
    lo: usize,
    hi: usize,
    phdr: usize,
    phnum: usize,
    is_main: bool,
}

/// Objects kept in a snapshot; a list longer than this is searched to its
/// end for addresses the snapshot does not hold.
pub const MAX_OBJECTS: usize = 256;

/// The objects of a process, as its `link_map` list had them.
pub struct Objects<'m, M: Memory> {
    mem: &'m M,
    process: Process,
    r_debug: usize,
    entries: [Entry; MAX_OBJECTS],
    len: usize,
    /// Whether the whole list fitted.
    complete: bool,
}

/// The address of `_r_debug`, found through the main program's `DT_DEBUG`.
/// Async-signal-safe.
pub fn r_debug_from_dynamic(mem: &impl Memory, process: &Process) -> Option<usize> {
    if process.main_phdr == 0 {
        return None;
    }
    // The main program's bias: where its PT_PHDR landed.
    let mut bias = None;
    let mut dynamic = None;
    for_each_phdr(mem, process.main_phdr, process.main_phnum, |p| {
        match p.p_type {
            PT_PHDR => bias = Some((process.main_phdr as u64).wrapping_sub(p.vaddr)),
            PT_DYNAMIC => dynamic = Some(p.vaddr),
            _ => {}
        }
        true
    });
    let dynamic = usize::try_from(dynamic?.wrapping_add(bias.unwrap_or(0))).ok()?;
    for i in 0..MAX_DYNAMIC {
        let at = dynamic.checked_add(i.checked_mul(16)?)?;
        let tag = mem.read::<i64>(at).ok()?;
        if tag == DT_NULL {
            break;
        }
        if tag == DT_DEBUG {
            let r_debug = mem.read::<usize>(at.checked_add(8)?).ok()?;
            return (r_debug != 0).then_some(r_debug);
        }
    }
    None
}

impl<'m, M: Memory> Objects<'m, M> {
    /// Read the object list. Async-signal-safe.
    pub fn snapshot(mem: &'m M, process: Process) -> Self {
        let mut objects = Self::unsnapshotted(mem, process);
        let mut entries = [Entry::default(); MAX_OBJECTS];
        let mut len = 0usize;
        let mut overflow = false;
        objects.walk(|entry| {
            let Some(slot) = entries.get_mut(len) else {
                overflow = true;
                return false;
            };
            *slot = entry;
            len = len.saturating_add(1);
            true
        });
        objects.entries = entries;
        objects.len = len;
        objects.complete = !overflow;
        objects
    }

    /// No snapshot: each lookup follows the list. Async-signal-safe.
    pub fn unsnapshotted(mem: &'m M, process: Process) -> Self {
        let r_debug = if process.r_debug != 0 {
            process.r_debug
        } else {
            r_debug_from_dynamic(mem, &process).unwrap_or(0)
        };
        Objects {
            mem,
            process,
            r_debug,
            entries: [Entry::default(); MAX_OBJECTS],
            len: 0,
            complete: false,
        }
    }

    /// The reader. Async-signal-safe.
    pub fn mem(&self) -> &'m M {
        self.mem
    }

    /// How many objects the snapshot holds. Async-signal-safe.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the snapshot holds none. Async-signal-safe.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Follow the list, calling `f` with each object until it returns
    /// false. Async-signal-safe (bounded: [`MAX_LIST`] entries).
    fn walk(&self, mut f: impl FnMut(Entry) -> bool) {
        let mem = self.mem;
        if self.r_debug == 0 {
            return;
        }
        let Some(mut l) = self
            .r_debug
            .checked_add(8)
            .and_then(|a| mem.read::<usize>(a).ok())
        else {
            return;
        };
        for index in 0..MAX_LIST {
            if l == 0 {
                return;
            }
            // struct link_map { l_addr; l_name; l_ld; l_next; l_prev; }
            let Ok(node) = mem.read::<[usize; 4]>(l) else {
                return;
            };
            let [bias, name, _ld, next] = node;
            let first = if name == 0 {
                0
            } else {
                mem.read::<u8>(name).unwrap_or(0)
            };
            let is_main = index == 0 && first == 0;
            let headers = if is_main {
                Some((self.process.main_phdr, self.process.main_phnum))
            } else {
                // A shared object's ELF header is its first mapped byte.
                mem.read::<[u8; 64]>(bias).ok().and_then(|h| {
                    if h.get(..4) != Some(b"\x7fELF".as_slice()) {
                        return None;
                    }
                    let phoff = h.get(32..40)?.try_into().ok().map(u64::from_le_bytes)?;
                    let phnum = h.get(56..58)?.try_into().ok().map(u16::from_le_bytes)?;
                    Some((
                        bias.checked_add(usize::try_from(phoff).ok()?)?,
                        usize::from(phnum),
                    ))
                })
            };
            if let Some((phdr, phnum)) = headers {
                let (mut lo, mut hi) = (usize::MAX, 0usize);
                for_each_phdr(mem, phdr, phnum, |p| {
                    if p.is_load() {
                        let start = (bias as u64).wrapping_add(p.vaddr);
                        let end = start.wrapping_add(p.memsz);
                        if let (Ok(start), Ok(end)) = (usize::try_from(start), usize::try_from(end))
                        {
                            lo = lo.min(start);
                            hi = hi.max(end);
                        }
                    }
                    true
                });
                let entry = Entry {
                    name: if is_main {
                        self.process.main_name
                    } else {
                        name
                    },
                    bias,
                    lo,
                    hi,
                    phdr,
                    phnum,
                    is_main,
                };
                if lo < hi && !f(entry) {
                    return;
                }
            }
            l = next;
        }
    }

    /// The object containing `addr`. Async-signal-safe.
    pub fn find(&self, addr: usize) -> Option<Found> {
        for entry in self.entries.get(..self.len)? {
            if entry.lo <= addr
                && addr < entry.hi
                && let Some(found) = self.check(entry, addr)
            {
                return Some(found);
            }
        }
        if self.complete {
            return None;
        }
        let mut found = None;
        self.walk(|entry| {
            if entry.lo <= addr && addr < entry.hi {
                found = self.check(&entry, addr);
            }
            found.is_none()
        });
        found
    }

    /// The object of `entry`, if one of its `PT_LOAD` segments contains
    /// `addr` (not only the span of all of them). Async-signal-safe.
    fn check(&self, entry: &Entry, addr: usize) -> Option<Found> {
        let mut found = Found {
            name: entry.name,
            bias: entry.bias,
            phdr: entry.phdr,
            phnum: entry.phnum,
            is_main: entry.is_main,
            ..Found::default()
        };
        let mut contains = false;
        let bias = entry.bias as u64;
        let mut loads = [(0u64, 0u64); 16];
        let mut nloads = 0usize;
        for_each_phdr(self.mem, entry.phdr, entry.phnum, |p| {
            let start = bias.wrapping_add(p.vaddr);
            let at = usize::try_from(start).unwrap_or(0);
            if p.is_load()
                && let Some(slot) = loads.get_mut(nloads)
            {
                *slot = (start, start.wrapping_add(p.memsz));
                nloads = nloads.saturating_add(1);
            }
            match p.p_type {
                PT_LOAD if (addr as u64).wrapping_sub(start) < p.memsz => contains = true,
                PT_GNU_EH_FRAME => {
                    found.eh_frame_hdr = at;
                    found.eh_frame_hdr_len = usize::try_from(p.memsz).unwrap_or(0);
                }
                PT_DYNAMIC => found.dynamic = at,
                _ => {}
            }
            true
        });
        let hdr = found.eh_frame_hdr as u64;
        found.eh_frame_end = loads
            .iter()
            .take(nloads)
            .find(|&&(start, end)| start <= hdr && hdr < end)
            .and_then(|&(_, end)| usize::try_from(end).ok())
            .unwrap_or(0);
        contains.then_some(found)
    }
}

impl<M: Memory> CodeMap for Objects<'_, M> {
    fn unwind_info(&self, addr: usize) -> Option<UnwindInfo> {
        self.find(addr).map(|f| UnwindInfo {
            eh_frame_hdr: f.eh_frame_hdr,
            eh_frame_hdr_len: f.eh_frame_hdr_len,
            eh_frame_end: f.eh_frame_end,
        })
    }
}

/// The GNU build ID of a loaded object, from its `PT_NOTE` segments in
/// memory, copied into `out`; returns its length. Async-signal-safe.
pub fn build_id(mem: &impl Memory, found: &Found, out: &mut [u8; 64]) -> Option<usize> {
    let mut result = None;
    let bias = found.bias as u64;
    for_each_phdr(mem, found.phdr, found.phnum, |p| {
        if p.p_type != PT_NOTE {
            return true;
        }
        let mut notes = [0u8; 1024];
        let len = usize::try_from(p.memsz).unwrap_or(0).min(notes.len());
        let Some(dst) = notes.get_mut(..len) else {
            return true;
        };
        let Ok(at) = usize::try_from(bias.wrapping_add(p.vaddr)) else {
            return true;
        };
        if mem.read_bytes(at, dst).is_err() {
            return true;
        }
        if let Some(id) = gnu_build_id(dst) {
            if let Some(slot) = out.get_mut(..id.len()) {
                slot.copy_from_slice(id);
                result = Some(id.len());
            }
            return false;
        }
        true
    });
    result
}

/// The `NT_GNU_BUILD_ID` descriptor in a block of ELF notes.
/// Async-signal-safe.
pub fn gnu_build_id(notes: &[u8]) -> Option<&[u8]> {
    let word = |at: usize| -> Option<usize> {
        let b = notes.get(at..at.checked_add(4)?)?;
        usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
    };
    let mut at = 0usize;
    for _ in 0..64 {
        let namesz = word(at)?;
        let descsz = word(at.checked_add(4)?)?;
        let kind = word(at.checked_add(8)?)?;
        let name_at = at.checked_add(12)?;
        let desc_at = name_at.checked_add(namesz.checked_next_multiple_of(4)?)?;
        let next = desc_at.checked_add(descsz.checked_next_multiple_of(4)?)?;
        if kind == 3
            && notes.get(name_at..name_at.checked_add(namesz)?) == Some(b"GNU\0".as_slice())
        {
            return notes.get(desc_at..desc_at.checked_add(descsz)?);
        }
        at = next;
    }
    None
}
