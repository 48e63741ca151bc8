//! The C stack section of CPython 3.14+'s faulthandler, async-signal-safe.
//!
//! The stdlib prints, after the Python threads of a fatal report and in
//! `dump_c_stack()`, the native stack of the current thread: glibc
//! `backtrace()` for the addresses and `dladdr1()` for the names. Neither is
//! async-signal-safe (`dladdr1` takes the loader lock, `backtrace` may load
//! libgcc). lastwords does both halves itself:
//!
//! * [`prepare`] (enable time, GIL held, allocation allowed) walks the loaded
//!   objects with `dl_iterate_phdr` and reads each one's symbol table from its
//!   file (`.symtab` and `.dynsym`, so static functions are named where the
//!   file is not stripped) into a sorted table that is leaked and published
//!   through an atomic pointer.
//! * [`capture`] (in the handler) unwinds the current thread with the DWARF
//!   call-frame information of `.eh_frame`, found through each object's
//!   `.eh_frame_hdr` search table, which is already mapped: no file is read and
//!   nothing is parsed ahead of time. Every read goes through a checked
//!   [`Memory`] (`process_vm_readv`), so a corrupt stack ends the walk instead
//!   of faulting again.
//! * [`write_c_stack`] (in the handler) prints the stdlib's section, naming
//!   each address by binary search in the table.
//!
//! Why DWARF CFI and not frame pointers: neither the Debian `python3.14`
//! binary, nor its `libpython3.14.so`, nor the pyenv 3.9–3.13 builds, nor
//! glibc keep frame pointers (fewer than 5% of their functions set up `%rbp`;
//! Debian's `python3.15` does for about 77%). A frame-pointer walk stops, or
//! worse, wanders, at the first function without one. `.eh_frame` is present
//! in all of them, stripped or not, because C++ exceptions and
//! `pthread_cancel` need it.
//!
//! Objects loaded after the last `prepare()` (an extension module imported
//! after `enable()`) are still found: the handler then walks the dynamic
//! loader's public `link_map` list (reached through `DT_DEBUG` of the main
//! program, without the loader lock, every read checked) and names addresses
//! from the object's in-memory `.dynsym`, exactly as `dladdr` would.
//!
//! # Internal workings
//!
//! The published [`Table`] is never freed: a handler on another thread may be
//! reading it at any moment, and nothing in a signal handler can take part in
//! a reclamation protocol. `prepare()` therefore leaks the table it replaces.
//! It rebuilds only when the loader's load/unload counters (`dlpi_adds`,
//! `dlpi_subs`) changed since the last build, so calling it on every
//! `enable()` costs one `dl_iterate_phdr` and leaks only when libraries were
//! loaded or unloaded in between.

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Mutex;

use crate::memory::{LocalChecked, Memory};
use crate::writer::{Sink, Writer};

/// The stdlib's `BACKTRACE_SIZE`: at most this many frames are printed, and a
/// full buffer is followed by `  <truncated rest of calls>`.
pub const MAX_FRAMES: usize = 32;

/// Whether this build can capture C stacks at all (otherwise the section says
/// `<cannot get C stack on this system>`, as the stdlib does).
pub const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_endian = "little",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

// ---------------------------------------------------------------------------
// The prepared table
// ---------------------------------------------------------------------------

/// A string in [`Table::names`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct StrRef {
    off: u32,
    len: u32,
}

/// One loaded object.
#[derive(Clone, Copy, Debug)]
struct Object {
    /// The name the stdlib prints (`dli_fname`): argv[0] for the main
    /// program, the loader's path for libraries.
    name: StrRef,
    /// Load bias (`l_addr`): what the stdlib prints offsets from when no
    /// symbol contains an address.
    bias: usize,
    /// Address and size of `.eh_frame_hdr` (`PT_GNU_EH_FRAME`), 0 if none.
    eh_frame_hdr: usize,
    eh_frame_hdr_len: usize,
    /// Address of the dynamic section (`l_ld`), 0 if none: the handler reads
    /// `.dynsym` from memory when the file could not be read.
    dynamic: usize,
    /// `[start, end)` in [`Table::symbols`].
    symbols: (u32, u32),
    /// Whether the symbols came from the file (else: `.dynsym` in memory).
    symbols_loaded: bool,
}

/// One `PT_LOAD` segment of an object: `[start, end)`, absolute.
#[derive(Clone, Copy, Debug)]
struct Segment {
    start: usize,
    end: usize,
    object: u32,
}

/// One symbol, absolute address. Sorted by `start` within its object.
#[derive(Clone, Copy, Debug)]
struct Symbol {
    start: usize,
    size: usize,
    name: StrRef,
}

/// Everything the handler needs to name addresses and find unwind tables.
/// Read-only once published.
struct Table {
    objects: Vec<Object>,
    segments: Vec<Segment>,
    symbols: Vec<Symbol>,
    names: Vec<u8>,
    /// The loader's counters when the table was built.
    adds: u64,
    subs: u64,
}

/// The published table; null until the first `prepare()`. Never freed.
static TABLE: AtomicPtr<Table> = AtomicPtr::new(core::ptr::null_mut());

/// Serialises `prepare()` calls (the handler never takes it).
static PREPARE_LOCK: Mutex<()> = Mutex::new(());

/// The published table, if any. Async-signal-safe.
fn published() -> Option<&'static Table> {
    let ptr = TABLE.load(Ordering::Acquire);
    // SAFETY: the pointer is either null or came from Box::leak in
    // prepare(); a published table is never written or freed again.
    unsafe { ptr.as_ref() }
}

impl Table {
    /// The bytes of a string. Async-signal-safe.
    fn str(&self, s: StrRef) -> &[u8] {
        let start = s.off as usize;
        self.names
            .get(start..start.saturating_add(s.len as usize))
            .unwrap_or(&[])
    }

    /// The object whose `PT_LOAD` segment contains `addr`. Async-signal-safe.
    fn object_at(&self, addr: usize) -> Option<&Object> {
        let after = self.segments.partition_point(|s| s.start <= addr);
        let seg = self.segments.get(after.checked_sub(1)?)?;
        if addr < seg.end {
            self.objects.get(seg.object as usize)
        } else {
            None
        }
    }

    /// The symbols of an object. Async-signal-safe.
    fn symbols_of(&self, object: &Object) -> &[Symbol] {
        let (start, end) = object.symbols;
        self.symbols
            .get(start as usize..end as usize)
            .unwrap_or(&[])
    }
}

/// The symbol containing `addr` in a sorted slice: the one with the highest
/// start among those whose `[start, start + size)` holds `addr` (a zero-size
/// symbol holds only its own address), as `dladdr` chooses. Looks back at most
/// a few entries: nested symbols are rare and a miss only loses a name.
/// Async-signal-safe.
fn containing(symbols: &[Symbol], addr: usize) -> Option<&Symbol> {
    let after = symbols.partition_point(|s| s.start <= addr);
    let candidates = symbols.get(..after)?;
    candidates.iter().rev().take(16).find(|s| {
        if s.size == 0 {
            s.start == addr
        } else {
            addr - s.start < s.size
        }
    })
}

// ---------------------------------------------------------------------------
// prepare(): the loaded objects and their symbol tables
// ---------------------------------------------------------------------------

/// What `dl_iterate_phdr` reports for one object, copied out of the callback.
struct Loaded {
    name: Vec<u8>,
    bias: usize,
    /// `(p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz)` per header.
    phdrs: Vec<[u64; 6]>,
}

struct Iteration {
    objects: Vec<Loaded>,
    adds: u64,
    subs: u64,
}

/// `dl_iterate_phdr` callback: copy what is needed, read no file.
unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the &mut Iteration passed by prepare(), alive for the
    // whole dl_iterate_phdr call; `info` is valid for this callback.
    let (out, info) = unsafe { (&mut *data.cast::<Iteration>(), &*info) };
    let name = if info.dlpi_name.is_null() {
        Vec::new()
    } else {
        // SAFETY: dlpi_name is a NUL-terminated string owned by the loader.
        unsafe { std::ffi::CStr::from_ptr(info.dlpi_name) }
            .to_bytes()
            .to_vec()
    };
    let mut phdrs = Vec::new();
    if !info.dlpi_phdr.is_null() {
        // SAFETY: the loader passes dlpi_phnum program headers at dlpi_phdr.
        let headers =
            unsafe { core::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        for p in headers {
            phdrs.push([
                u64::from(p.p_type),
                u64::from(p.p_flags),
                p.p_offset,
                p.p_vaddr,
                p.p_filesz,
                p.p_memsz,
            ]);
        }
    }
    // The counters exist when the structure is large enough to hold them.
    if size >= core::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8 {
        out.adds = info.dlpi_adds;
        out.subs = info.dlpi_subs;
    }
    out.objects.push(Loaded {
        name,
        bias: info.dlpi_addr as usize,
        phdrs,
    });
    0
}

unsafe extern "C" {
    /// glibc's (and musl's) copy of argv[0], the string `dladdr` reports as
    /// the main program's `dli_fname`.
    static program_invocation_name: *const libc::c_char;
}

/// argv[0] as the C library saw it. Allocates.
fn argv0() -> Vec<u8> {
    // SAFETY: a plain read of a C library global, set before main().
    let ptr = unsafe { program_invocation_name };
    if ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: program_invocation_name points at argv[0], NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes().to_vec()
}

/// Load the symbol tables of every loaded object into a new table and publish
/// it. Called at enable time (GIL held, allocation allowed). A second call
/// rebuilds only if libraries were loaded or unloaded since the last one; the
/// table it replaces is leaked (a handler may still be reading it). Objects
/// whose file cannot be read (deleted, replaced, permission) keep their path,
/// range and unwind tables and are named from `.dynsym` in memory.
pub fn prepare() -> std::io::Result<()> {
    if !SUPPORTED {
        return Ok(());
    }
    let _guard = PREPARE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    auxv::cache();
    let mut it = Iteration {
        objects: Vec::new(),
        adds: 0,
        subs: 0,
    };
    // SAFETY: `collect` matches the callback type and only uses `data` as
    // the Iteration passed here, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(collect), (&raw mut it).cast()) };
    if let Some(old) = published()
        && old.adds == it.adds
        && old.subs == it.subs
        && old.adds != 0
    {
        return Ok(());
    }
    let table = build(&it);
    TABLE.store(Box::into_raw(Box::new(table)), Ordering::Release);
    Ok(())
}

/// A symbol as read from a file, before sorting.
struct RawSymbol {
    start: usize,
    size: usize,
    /// Lower is preferred at equal addresses: `.dynsym` first (what `dladdr`
    /// prints), then global, weak and local `.symtab` entries.
    rank: (u8, u32),
    name: StrRef,
}

const PT_LOAD: u64 = 1;
const PT_DYNAMIC: u64 = 2;
const PT_GNU_EH_FRAME: u64 = 0x6474_e550;
const PF_X: u64 = 1;

/// Build the table from the loader's list. Allocates; reads files.
fn build(it: &Iteration) -> Table {
    let mut table = Table {
        objects: Vec::new(),
        segments: Vec::new(),
        symbols: Vec::new(),
        names: Vec::new(),
        adds: it.adds,
        subs: it.subs,
    };
    let vdso = auxv::get(libc::AT_SYSINFO_EHDR);
    for (index, loaded) in it.objects.iter().enumerate() {
        let is_main = index == 0 && loaded.name.is_empty();
        let display = if is_main {
            argv0()
        } else {
            loaded.name.clone()
        };
        let name = push_str(&mut table.names, &display);
        let object_index = table.objects.len() as u32;
        let mut object = Object {
            name,
            bias: loaded.bias,
            eh_frame_hdr: 0,
            eh_frame_hdr_len: 0,
            dynamic: 0,
            symbols: (0, 0),
            symbols_loaded: false,
        };
        let mut loads = Vec::new();
        let mut exec = Vec::new();
        for &[p_type, p_flags, p_offset, p_vaddr, p_filesz, p_memsz] in &loaded.phdrs {
            let start = loaded.bias.wrapping_add(p_vaddr as usize);
            match p_type {
                PT_LOAD => {
                    loads.push([p_offset, p_vaddr, p_filesz, p_memsz]);
                    table.segments.push(Segment {
                        start,
                        end: start.wrapping_add(p_memsz as usize),
                        object: object_index,
                    });
                    if p_flags & PF_X != 0 {
                        exec.push((p_vaddr, p_vaddr.wrapping_add(p_memsz)));
                    }
                }
                PT_GNU_EH_FRAME => {
                    object.eh_frame_hdr = start;
                    object.eh_frame_hdr_len = p_memsz as usize;
                }
                PT_DYNAMIC => object.dynamic = start,
                _ => {}
            }
        }
        let mut raw = Vec::new();
        let first_load = loads.first().map_or(0, |l| l[1] as usize);
        let header_at = loaded.bias.wrapping_add(first_load);
        let result = if is_main {
            std::fs::File::open("/proc/self/exe")
                .and_then(|f| elf::symbols(&f, &loads, &exec, &mut raw, &mut table.names))
        } else if vdso != 0 && header_at == vdso {
            elf::memory_image(vdso)
                .and_then(|img| elf::symbols(&img[..], &loads, &exec, &mut raw, &mut table.names))
        } else if !loaded.name.is_empty() {
            use std::os::unix::ffi::OsStrExt;
            std::fs::File::open(std::ffi::OsStr::from_bytes(&loaded.name))
                .and_then(|f| elf::symbols(&f, &loads, &exec, &mut raw, &mut table.names))
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        };
        object.symbols_loaded = result.is_ok();
        raw.sort_unstable_by_key(|s| (s.start, s.rank));
        let first = table.symbols.len() as u32;
        let mut last_start = None;
        for s in raw {
            if last_start == Some(s.start) {
                // An alias at the same address: keep the preferred name, but
                // take a size if the preferred entry had none.
                if let Some(prev) = table.symbols.last_mut()
                    && prev.size == 0
                {
                    prev.size = s.size;
                }
                continue;
            }
            last_start = Some(s.start);
            table.symbols.push(Symbol {
                start: loaded.bias.wrapping_add(s.start),
                size: s.size,
                name: s.name,
            });
        }
        object.symbols = (first, table.symbols.len() as u32);
        table.objects.push(object);
    }
    table.segments.sort_unstable_by_key(|s| s.start);
    table.names.shrink_to_fit();
    table.symbols.shrink_to_fit();
    table
}

/// Append a string to the name pool (capped at 4 KiB).
fn push_str(names: &mut Vec<u8>, s: &[u8]) -> StrRef {
    let s = s.get(..s.len().min(4096)).unwrap_or(&[]);
    let off = names.len() as u32;
    names.extend_from_slice(s);
    StrRef {
        off,
        len: s.len() as u32,
    }
}

/// Reading ELF files at prepare time (allocation allowed).
mod elf {
    use super::{RawSymbol, push_str};
    use std::io::{Error, ErrorKind, Result};
    use std::os::unix::fs::FileExt;

    /// Positioned reads from a file or an in-memory image.
    pub trait ReadAt {
        fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    }

    impl ReadAt for std::fs::File {
        fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            self.read_exact_at(buf, offset)
        }
    }

    impl ReadAt for [u8] {
        fn read_at_exact(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
            let start = usize::try_from(offset).map_err(|_| bad("offset"))?;
            let src = self
                .get(start..start.saturating_add(buf.len()))
                .ok_or_else(|| bad("short image"))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    fn bad(what: &str) -> Error {
        Error::new(ErrorKind::InvalidData, what.to_string())
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        b.get(at..at + 2)
            .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        b.get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    }

    fn read_vec(src: &(impl ReadAt + ?Sized), offset: u64, len: u64) -> Result<Vec<u8>> {
        // Symbol tables of the largest libraries are tens of MiB; refuse
        // anything absurd rather than allocate it.
        if len > 1 << 30 {
            return Err(bad("section too large"));
        }
        let mut buf = vec![0u8; len as usize];
        src.read_at_exact(offset, &mut buf)?;
        Ok(buf)
    }

    /// Copy the vDSO's ELF image out of memory (it has no file).
    pub fn memory_image(addr: usize) -> Result<Vec<u8>> {
        use crate::memory::{LocalChecked, Memory};
        let mem = LocalChecked::new();
        let mut header = [0u8; 64];
        mem.read_bytes(addr, &mut header)
            .map_err(|_| bad("vdso header"))?;
        let shoff = u64_at(&header, 40);
        let shentsize = u64::from(u16_at(&header, 58));
        let shnum = u64::from(u16_at(&header, 60));
        let len = shoff.saturating_add(shentsize.saturating_mul(shnum));
        if len > 1 << 20 {
            return Err(bad("vdso too large"));
        }
        let mut image = vec![0u8; len as usize];
        mem.read_bytes(addr, &mut image)
            .map_err(|_| bad("vdso image"))?;
        Ok(image)
    }

    /// The headers of an ELF file.
    pub struct ElfFile<'a, R: ReadAt + ?Sized> {
        src: &'a R,
        /// `(offset, vaddr, filesz, memsz)` of each `PT_LOAD`.
        pub loads: Vec<[u64; 4]>,
        /// The section headers, 64 bytes each.
        sections: Vec<u8>,
    }

    impl<'a, R: ReadAt + ?Sized> ElfFile<'a, R> {
        pub fn open(src: &'a R) -> Result<Self> {
            let mut header = [0u8; 64];
            src.read_at_exact(0, &mut header)?;
            if header.get(..4) != Some(b"\x7fELF".as_slice())
                || header.get(4) != Some(&2)
                || header.get(5) != Some(&1)
            {
                return Err(bad("not a little-endian ELF64 file"));
            }
            let phoff = u64_at(&header, 32);
            let shoff = u64_at(&header, 40);
            let phentsize = u64::from(u16_at(&header, 54));
            let phnum = u64::from(u16_at(&header, 56));
            let shentsize = u64::from(u16_at(&header, 58));
            let mut shnum = u64::from(u16_at(&header, 60));
            if phentsize != 56 || shentsize != 64 || shoff == 0 {
                return Err(bad("unexpected header sizes"));
            }
            let phdrs = read_vec(src, phoff, phentsize * phnum)?;
            let loads = phdrs
                .chunks_exact(56)
                .filter(|p| u32_at(p, 0) == 1)
                .map(|p| [u64_at(p, 8), u64_at(p, 16), u64_at(p, 32), u64_at(p, 40)])
                .collect();
            if shnum == 0 {
                // More than 0xff00 sections: the count is in section 0's sh_size.
                let first = read_vec(src, shoff, 64)?;
                shnum = u64_at(&first, 32);
            }
            let sections = read_vec(src, shoff, shentsize.saturating_mul(shnum))?;
            Ok(ElfFile {
                src,
                loads,
                sections,
            })
        }

        fn sections(&self) -> impl Iterator<Item = &[u8]> {
            self.sections.chunks_exact(64)
        }

        /// The GNU build ID (`NT_GNU_BUILD_ID` in an `SHT_NOTE` section).
        pub fn build_id(&self) -> Option<Vec<u8>> {
            for sh in self.sections().filter(|s| u32_at(s, 4) == 7) {
                let size = u64_at(sh, 32).min(1 << 16);
                let Ok(notes) = read_vec(self.src, u64_at(sh, 24), size) else {
                    continue;
                };
                let mut at = 0usize;
                while at + 12 <= notes.len() {
                    let namesz = u32_at(&notes, at) as usize;
                    let descsz = u32_at(&notes, at + 4) as usize;
                    let kind = u32_at(&notes, at + 8);
                    let name_at = at + 12;
                    let desc_at = name_at + namesz.next_multiple_of(4);
                    let next = desc_at + descsz.next_multiple_of(4);
                    if kind == 3
                        && notes.get(name_at..name_at + namesz) == Some(b"GNU\0".as_slice())
                    {
                        return notes.get(desc_at..desc_at + descsz).map(<[u8]>::to_vec);
                    }
                    at = next;
                }
            }
            None
        }

        /// Append the symbols of the first section of `section_type`
        /// (11 `.dynsym`, 2 `.symtab`) to `out`; `dynamic` ranks them first.
        /// Symbols outside `exec` (the executable segments' `[vaddr, end)`)
        /// are left out. Returns whether the section exists.
        pub fn symbols(
            &self,
            section_type: u32,
            exec: &[(u64, u64)],
            out: &mut Vec<RawSymbol>,
            names: &mut Vec<u8>,
        ) -> Result<bool> {
            let Some(sh) = self.sections().find(|s| u32_at(s, 4) == section_type) else {
                return Ok(false);
            };
            let Some(strtab) = self.sections().nth(u32_at(sh, 40) as usize) else {
                return Ok(false);
            };
            let data = read_vec(self.src, u64_at(sh, 24), u64_at(sh, 32))?;
            let strings = read_vec(self.src, u64_at(strtab, 24), u64_at(strtab, 32))?;
            for (index, sym) in data.chunks_exact(24).enumerate() {
                let info = sym.get(4).copied().unwrap_or(0);
                let shndx = u16_at(sym, 6);
                let value = u64_at(sym, 8);
                let size = u64_at(sym, 16);
                let (typ, bind) = (info & 0xf, info >> 4);
                // NOTYPE, FUNC, GNU_IFUNC; defined, not absolute or special.
                if !matches!(typ, 0 | 2 | 10) || shndx == 0 || shndx >= 0xff00 || value == 0 {
                    continue;
                }
                if !exec.iter().any(|&(s, e)| s <= value && value < e) {
                    continue;
                }
                let name_at = u32_at(sym, 0) as usize;
                let Some(tail) = strings.get(name_at..) else {
                    continue;
                };
                let name = tail.split(|&b| b == 0).next().unwrap_or(&[]);
                if name.is_empty() || name.first() == Some(&b'$') {
                    continue;
                }
                let rank = match (section_type, bind) {
                    (11, _) => 0,
                    (_, 1) => 1,
                    (_, 2) => 2,
                    _ => 3,
                };
                out.push(RawSymbol {
                    start: value as usize,
                    size: size as usize,
                    rank: (rank, index as u32),
                    name: push_str(names, name),
                });
            }
            Ok(true)
        }
    }

    /// Where detached debug information lives, by build ID (Debian's
    /// `-dbg`/`-dbgsym` packages, Fedora's `-debuginfo`).
    const DEBUG_ROOT: &str = "/usr/lib/debug/.build-id";

    /// Read `.dynsym` and `.symtab` of the file that was loaded with the
    /// `PT_LOAD` headers `loads` (a file whose own differ is not that file,
    /// and is refused). A stripped file's `.symtab` is looked for in its
    /// detached debug file, matched by build ID.
    pub fn symbols(
        src: &(impl ReadAt + ?Sized),
        loads: &[[u64; 4]],
        exec: &[(u64, u64)],
        out: &mut Vec<RawSymbol>,
        names: &mut Vec<u8>,
    ) -> Result<()> {
        let file = ElfFile::open(src)?;
        if file.loads != loads {
            return Err(bad("file does not match the loaded object"));
        }
        let dynsym = file.symbols(11, exec, out, names)?;
        let mut symtab = file.symbols(2, exec, out, names)?;
        if !symtab && let Some(id) = file.build_id().filter(|id| id.len() >= 2) {
            let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
            let path = format!("{DEBUG_ROOT}/{}/{}.debug", &hex[..2], &hex[2..]);
            if let Ok(debug_file) = std::fs::File::open(path)
                && let Ok(debug) = ElfFile::open(&debug_file)
                && debug.build_id().as_ref() == Some(&id)
            {
                symtab = debug.symbols(2, exec, out, names).unwrap_or(false);
            }
        }
        if dynsym || symtab {
            Ok(())
        } else {
            Err(bad("no symbol table"))
        }
    }
}

/// The auxiliary vector entries the handler needs, cached at prepare time
/// (`getauxval` itself takes no lock, so the handler may also call it).
mod auxv {
    use core::sync::atomic::{AtomicUsize, Ordering};

    static PHDR: AtomicUsize = AtomicUsize::new(0);
    static PHNUM: AtomicUsize = AtomicUsize::new(0);
    static SYSINFO_EHDR: AtomicUsize = AtomicUsize::new(0);

    /// The cache slot of an entry. Async-signal-safe.
    fn slot(kind: libc::c_ulong) -> Option<&'static AtomicUsize> {
        match kind {
            libc::AT_PHDR => Some(&PHDR),
            libc::AT_PHNUM => Some(&PHNUM),
            libc::AT_SYSINFO_EHDR => Some(&SYSINFO_EHDR),
            _ => None,
        }
    }

    /// Fill the cache.
    pub fn cache() {
        for kind in [libc::AT_PHDR, libc::AT_PHNUM, libc::AT_SYSINFO_EHDR] {
            // SAFETY: getauxval has no preconditions.
            let value = unsafe { libc::getauxval(kind) } as usize;
            if let Some(s) = slot(kind) {
                s.store(value, Ordering::Release);
            }
        }
    }

    /// One entry (0 if absent). Async-signal-safe.
    pub fn get(kind: libc::c_ulong) -> usize {
        let cached = slot(kind).map_or(0, |s| s.load(Ordering::Acquire));
        if cached != 0 {
            return cached;
        }
        // SAFETY: getauxval reads the saved auxiliary vector: no lock, no
        // allocation.
        unsafe { libc::getauxval(kind) as usize }
    }
}

// ---------------------------------------------------------------------------
// Checked reads: a small buffered cursor
// ---------------------------------------------------------------------------

/// Sequential reads of `[pos, end)` through a [`Memory`], a small buffer at a
/// time. Every method is async-signal-safe and returns None past `end` or on
/// an unreadable address.
struct Cursor<'m, M: Memory> {
    mem: &'m M,
    pos: usize,
    end: usize,
    buf: [u8; 128],
    buf_at: usize,
    buf_len: usize,
}

impl<'m, M: Memory> Cursor<'m, M> {
    /// Async-signal-safe.
    fn new(mem: &'m M, pos: usize, end: usize) -> Self {
        Cursor {
            mem,
            pos,
            end,
            buf: [0; 128],
            buf_at: 0,
            buf_len: 0,
        }
    }

    /// Async-signal-safe.
    fn fill(&mut self) -> Option<()> {
        let want = self.end.checked_sub(self.pos)?.min(self.buf.len());
        if want == 0 {
            return None;
        }
        let ok = self
            .buf
            .get_mut(..want)
            .is_some_and(|dst| self.mem.read_bytes(self.pos, dst).is_ok());
        self.buf_len = if ok {
            want
        } else {
            // The range may run into an unmapped page: read up to its end.
            let to_page = 4096 - (self.pos & 4095);
            let shorter = want.min(to_page);
            if shorter == want {
                return None;
            }
            let dst = self.buf.get_mut(..shorter)?;
            self.mem.read_bytes(self.pos, dst).ok()?;
            shorter
        };
        self.buf_at = self.pos;
        Some(())
    }

    /// Async-signal-safe.
    fn u8(&mut self) -> Option<u8> {
        if self.pos >= self.end {
            return None;
        }
        let in_buf = self.pos.wrapping_sub(self.buf_at);
        if self.pos < self.buf_at || in_buf >= self.buf_len {
            self.fill()?;
        }
        let b = *self.buf.get(self.pos - self.buf_at)?;
        self.pos += 1;
        Some(b)
    }

    /// Little-endian unsigned of `n` bytes. Async-signal-safe.
    fn uint(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..n {
            v |= u64::from(self.u8()?) << (8 * i);
        }
        Some(v)
    }

    /// Async-signal-safe.
    fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
            if shift > 70 {
                return None;
            }
        }
    }

    /// Async-signal-safe.
    fn sleb(&mut self) -> Option<i64> {
        let mut v = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
            if shift > 70 {
                return None;
            }
        }
    }

    /// Skip `n` bytes. Async-signal-safe.
    fn skip(&mut self, n: u64) -> Option<()> {
        let to = self.pos.checked_add(usize::try_from(n).ok()?)?;
        if to > self.end {
            return None;
        }
        self.pos = to;
        Some(())
    }

    /// A pointer in one of the `DW_EH_PE_*` encodings; `data_base` is the
    /// base of `DW_EH_PE_datarel`. Async-signal-safe.
    fn encoded(&mut self, enc: u8, data_base: usize) -> Option<u64> {
        if enc == 0xff {
            return None;
        }
        let field_at = self.pos as u64;
        let raw = match enc & 0x0f {
            0x00 | 0x04 | 0x0c => self.uint(8)?,
            0x01 => self.uleb()?,
            0x02 => self.uint(2)?,
            0x03 => self.uint(4)?,
            0x09 => self.sleb()? as u64,
            0x0a => self.uint(2)? as u16 as i16 as i64 as u64,
            0x0b => self.uint(4)? as u32 as i32 as i64 as u64,
            _ => return None,
        };
        let value = match enc & 0x70 {
            0x00 => raw,
            0x10 => field_at.wrapping_add(raw),
            0x30 => (data_base as u64).wrapping_add(raw),
            _ => return None,
        };
        if enc & 0x80 != 0 {
            self.mem.read::<u64>(value as usize).ok()
        } else {
            Some(value)
        }
    }
}

// ---------------------------------------------------------------------------
// Finding the object of an address: the table, else the loader's link_map
// ---------------------------------------------------------------------------

/// Where a name's bytes are.
#[derive(Clone, Copy)]
enum Name<'t> {
    /// In the prepared table.
    Local(&'t [u8]),
    /// A NUL-terminated string in (possibly inconsistent) process memory.
    Remote(usize),
}

/// Where an object's symbols are.
#[derive(Clone, Copy)]
enum Symbols<'t> {
    /// Sorted, in the prepared table (with its name pool).
    Table(&'t Table, &'t [Symbol]),
    /// `.dynsym` in memory, through the dynamic section at this address.
    Dynamic(usize),
    None,
}

/// An object found for an address.
#[derive(Clone, Copy)]
struct Found<'t> {
    name: Name<'t>,
    bias: usize,
    eh_frame_hdr: usize,
    eh_frame_hdr_len: usize,
    symbols: Symbols<'t>,
}

/// Finds the object of an address: the prepared table first, then (for
/// objects loaded since) the loader's `link_map` list.
struct Resolver<'t, 'm, M: Memory> {
    mem: &'m M,
    table: Option<&'t Table>,
    link_map: bool,
}

impl<'t, M: Memory> Resolver<'t, '_, M> {
    /// Async-signal-safe.
    fn find(&self, addr: usize) -> Option<Found<'t>> {
        if let Some(table) = self.table
            && let Some(object) = table.object_at(addr)
        {
            let symbols = if object.symbols_loaded {
                Symbols::Table(table, table.symbols_of(object))
            } else if object.dynamic != 0 {
                Symbols::Dynamic(object.dynamic)
            } else {
                Symbols::None
            };
            return Some(Found {
                name: Name::Local(table.str(object.name)),
                bias: object.bias,
                eh_frame_hdr: object.eh_frame_hdr,
                eh_frame_hdr_len: object.eh_frame_hdr_len,
                symbols,
            });
        }
        if self.link_map {
            link_map::find(self.mem, addr)
        } else {
            None
        }
    }
}

/// The dynamic loader's public `struct link_map` list, read without its lock.
mod link_map {
    use super::{Found, Name, Symbols, auxv};
    use crate::memory::Memory;
    use core::sync::atomic::{AtomicUsize, Ordering};

    const DT_NULL: i64 = 0;
    const DT_DEBUG: i64 = 21;
    const PT_PHDR: u32 = 6;
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_GNU_EH_FRAME: u32 = 0x6474_e550;

    /// `&_r_debug`, found once through the main program's `DT_DEBUG`.
    static R_DEBUG: AtomicUsize = AtomicUsize::new(0);

    /// The program headers of interest of one object.
    #[derive(Default)]
    pub struct Headers {
        pub contains: bool,
        pub eh_frame_hdr: usize,
        pub eh_frame_hdr_len: usize,
        pub dynamic: usize,
    }

    /// Scan `phnum` program headers at `phdr` (absolute) of an object with
    /// load bias `bias`. Async-signal-safe.
    pub fn headers(
        mem: &impl Memory,
        phdr: usize,
        phnum: usize,
        bias: usize,
        addr: usize,
    ) -> Headers {
        let mut h = Headers::default();
        let mut chunk = [0u8; 56 * 8];
        let mut done = 0;
        while done < phnum.min(256) {
            let n = (phnum - done).min(8);
            let Some(dst) = chunk.get_mut(..n * 56) else {
                break;
            };
            if mem.read_bytes(phdr.wrapping_add(done * 56), dst).is_err() {
                break;
            }
            for p in dst.chunks_exact(56) {
                let word = |at: usize| {
                    p.get(at..at + 8)
                        .and_then(|s| s.try_into().ok())
                        .map_or(0, u64::from_le_bytes) as usize
                };
                let p_type = word(0) as u32;
                let start = bias.wrapping_add(word(16));
                let memsz = word(40);
                match p_type {
                    PT_LOAD if addr.wrapping_sub(start) < memsz => h.contains = true,
                    PT_GNU_EH_FRAME => {
                        h.eh_frame_hdr = start;
                        h.eh_frame_hdr_len = memsz;
                    }
                    PT_DYNAMIC => h.dynamic = start,
                    _ => {}
                }
            }
            done += n;
        }
        h
    }

    /// The address of `_r_debug`. Async-signal-safe.
    fn r_debug(mem: &impl Memory) -> Option<usize> {
        let cached = R_DEBUG.load(Ordering::Acquire);
        if cached != 0 {
            return Some(cached);
        }
        let phdr = auxv::get(libc::AT_PHDR);
        let phnum = auxv::get(libc::AT_PHNUM);
        if phdr == 0 {
            return None;
        }
        // The main program's bias: where its PT_PHDR landed.
        let mut bias = None;
        let mut dynamic = None;
        for i in 0..phnum.min(256) {
            let at = phdr.wrapping_add(i * 56);
            let p_type = mem.read::<u32>(at).ok()?;
            let vaddr = mem.read::<usize>(at.wrapping_add(16)).ok()?;
            match p_type {
                PT_PHDR => bias = Some(phdr.wrapping_sub(vaddr)),
                PT_DYNAMIC => dynamic = Some(vaddr),
                _ => {}
            }
        }
        let dynamic = dynamic?.wrapping_add(bias.unwrap_or(0));
        for i in 0..512 {
            let tag = mem.read::<i64>(dynamic.wrapping_add(i * 16)).ok()?;
            if tag == DT_NULL {
                break;
            }
            if tag == DT_DEBUG {
                let r_debug = mem.read::<usize>(dynamic.wrapping_add(i * 16 + 8)).ok()?;
                if r_debug == 0 {
                    return None;
                }
                R_DEBUG.store(r_debug, Ordering::Release);
                return Some(r_debug);
            }
        }
        None
    }

    /// The object containing `addr`, by walking `_r_debug.r_map`.
    /// Async-signal-safe: checked reads, bounded; the list may be changing
    /// (a `dlopen` on another thread) and a torn read only loses a name.
    pub fn find<'t>(mem: &impl Memory, addr: usize) -> Option<Found<'t>> {
        let r_debug = r_debug(mem)?;
        let mut l = mem.read::<usize>(r_debug.wrapping_add(8)).ok()?;
        for index in 0..4096 {
            if l == 0 {
                break;
            }
            // struct link_map { l_addr; l_name; l_ld; l_next; l_prev; }
            let bias = mem.read::<usize>(l).ok()?;
            let name = mem.read::<usize>(l.wrapping_add(8)).ok()?;
            let next = mem.read::<usize>(l.wrapping_add(24)).ok()?;
            let first = if name == 0 {
                0
            } else {
                mem.read::<u8>(name).unwrap_or(0)
            };
            let is_main = index == 0 && first == 0;
            let (phdr, phnum) = if is_main {
                (auxv::get(libc::AT_PHDR), auxv::get(libc::AT_PHNUM))
            } else {
                // A shared object's ELF header is its first mapped byte.
                let magic = mem.read::<u32>(bias).unwrap_or(0);
                if magic != u32::from_le_bytes(*b"\x7fELF") {
                    l = next;
                    continue;
                }
                let phoff = mem.read::<u64>(bias.wrapping_add(32)).unwrap_or(0) as usize;
                let phnum = mem.read::<u16>(bias.wrapping_add(56)).unwrap_or(0) as usize;
                (bias.wrapping_add(phoff), phnum)
            };
            let h = headers(mem, phdr, phnum, bias, addr);
            if h.contains {
                let name = if is_main {
                    // SAFETY: a plain read of a C library global.
                    Name::Remote(unsafe { super::program_invocation_name } as usize)
                } else {
                    Name::Remote(name)
                };
                return Some(Found {
                    name,
                    bias,
                    eh_frame_hdr: h.eh_frame_hdr,
                    eh_frame_hdr_len: h.eh_frame_hdr_len,
                    symbols: if h.dynamic != 0 {
                        Symbols::Dynamic(h.dynamic)
                    } else {
                        Symbols::None
                    },
                });
            }
            l = next;
        }
        None
    }
}

/// `dladdr`'s own lookup, on `.dynsym` in memory: the symbol with the highest
/// address among the hashed, defined, non-TLS, non-absolute ones containing
/// `addr` (first in table order on ties). Returns its address and the address
/// of its NUL-terminated name. Async-signal-safe.
fn dynsym_lookup(
    mem: &impl Memory,
    dynamic: usize,
    bias: usize,
    addr: usize,
) -> Option<(usize, usize)> {
    const DT_HASH: i64 = 4;
    const DT_STRTAB: i64 = 5;
    const DT_SYMTAB: i64 = 6;
    const DT_GNU_HASH: i64 = 0x6fff_fef5;
    let (mut symtab, mut strtab, mut hash, mut gnu_hash) = (0usize, 0usize, 0usize, 0usize);
    for i in 0..512 {
        let tag = mem.read::<i64>(dynamic + i * 16).ok()?;
        let value = mem.read::<usize>(dynamic.wrapping_add(i * 16 + 8)).ok()?;
        // The loader relocates these entries in place on x86-64 and aarch64;
        // the vDSO's (and some read-only dynamic sections) stay relative.
        let value = if value < bias {
            value.wrapping_add(bias)
        } else {
            value
        };
        match tag {
            0 => break,
            DT_HASH => hash = value,
            DT_STRTAB => strtab = value,
            DT_SYMTAB => symtab = value,
            DT_GNU_HASH => gnu_hash = value,
            _ => {}
        }
    }
    if symtab == 0 || strtab == 0 {
        return None;
    }
    // Which symbols the hash table covers (only those are dladdr's).
    let (first, count) = if gnu_hash != 0 {
        let nbuckets = mem.read::<u32>(gnu_hash).ok()? as usize;
        let symoffset = mem.read::<u32>(gnu_hash.wrapping_add(4)).ok()? as usize;
        let bloom_size = mem.read::<u32>(gnu_hash.wrapping_add(8)).ok()? as usize;
        let buckets = gnu_hash
            .wrapping_add(16)
            .wrapping_add(bloom_size.wrapping_mul(8));
        let mut max = 0usize;
        let mut words = [0u32; 64];
        let mut done = 0;
        while done < nbuckets.min(1 << 20) {
            let n = (nbuckets - done).min(words.len());
            // SAFETY: viewing the u32 array as bytes; every pattern is valid.
            let bytes =
                unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), n * 4) };
            mem.read_bytes(buckets.wrapping_add(done * 4), bytes).ok()?;
            for &w in words.get(..n)? {
                max = max.max(w as usize);
            }
            done += n;
        }
        if max < symoffset {
            (symoffset, symoffset)
        } else {
            let chains = buckets.wrapping_add(nbuckets * 4);
            // The chain of the last bucket ends the table: walk it to its
            // end marker (chains are a few entries long).
            let mut last = max;
            let mut ended = false;
            for _ in 0..4096 {
                let h = mem
                    .read::<u32>(chains.wrapping_add((last - symoffset) * 4))
                    .ok()?;
                last += 1;
                if h & 1 != 0 {
                    ended = true;
                    break;
                }
            }
            if !ended {
                return None;
            }
            (symoffset, last)
        }
    } else if hash != 0 {
        (0, mem.read::<u32>(hash.wrapping_add(4)).ok()? as usize)
    } else {
        return None;
    };
    let mut best: Option<(usize, usize)> = None;
    let mut chunk = [0u8; 24 * 64];
    let mut index = first;
    while index < count.min(1 << 22) {
        let n = (count - index).min(64);
        let dst = chunk.get_mut(..n * 24)?;
        mem.read_bytes(symtab.wrapping_add(index * 24), dst).ok()?;
        for sym in dst.chunks_exact(24) {
            let field = |at: usize, len: usize| {
                let mut v = 0u64;
                for (i, b) in sym.iter().skip(at).take(len).enumerate() {
                    v |= u64::from(*b) << (8 * i);
                }
                v
            };
            let name = field(0, 4) as usize;
            let info = field(4, 1) as u8;
            let shndx = field(6, 2) as u16;
            let value = field(8, 8) as usize;
            let size = field(16, 8) as usize;
            let start = bias.wrapping_add(value);
            let defined = shndx != 0 || value != 0;
            let usable = defined && shndx != 0xfff1 && info & 0xf != 6;
            let inside = addr >= start
                && if shndx == 0 || size == 0 {
                    addr == start
                } else {
                    addr - start < size
                };
            if usable && inside && best.is_none_or(|(b, _)| b < start) {
                best = Some((start, strtab.wrapping_add(name)));
            }
        }
        index += n;
    }
    best
}

// ---------------------------------------------------------------------------
// DWARF call-frame information
// ---------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
mod arch {
    /// DWARF registers tracked: rax..r15 (0-15) and the return address (16).
    pub const NREGS: usize = 17;
    pub const SP: u16 = 7;
    pub const FP: u16 = 6;
    /// The stack pointer of a caller is at least one word above its callee's.
    pub const STRICT_SP: bool = true;
}

#[cfg(target_arch = "aarch64")]
mod arch {
    /// DWARF registers tracked: x0..x30 (0-30), sp (31), pc (32).
    pub const NREGS: usize = 33;
    pub const SP: u16 = 31;
    pub const FP: u16 = 29;
    pub const LR: u16 = 30;
    /// A leaf function may leave sp where its caller had it.
    pub const STRICT_SP: bool = false;
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod arch {
    pub const NREGS: usize = 1;
    pub const SP: u16 = 0;
    pub const FP: u16 = 0;
    pub const STRICT_SP: bool = true;
}

use arch::NREGS;

/// Register values of one frame.
#[derive(Clone, Copy)]
struct Regs {
    val: [u64; NREGS],
    /// Bit i: `val[i]` is known.
    known: u64,
    pc: u64,
}

impl Regs {
    /// Async-signal-safe.
    fn empty() -> Self {
        Regs {
            val: [0; NREGS],
            known: 0,
            pc: 0,
        }
    }

    /// Async-signal-safe.
    fn get(&self, r: u16) -> Option<u64> {
        if (r as usize) < NREGS && self.known & (1 << r) != 0 {
            self.val.get(r as usize).copied()
        } else {
            None
        }
    }

    /// Async-signal-safe.
    fn set(&mut self, r: u16, v: u64) {
        if let Some(slot) = self.val.get_mut(r as usize) {
            *slot = v;
            self.known |= 1 << r;
        }
    }
}

/// How to recover one register of the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Rule {
    Same,
    Undefined,
    /// Saved at CFA + n.
    Offset(i64),
    /// Is CFA + n.
    ValOffset(i64),
    /// Is in another register.
    Register(u16),
    /// Saved at the address a DWARF expression computes (block address, length).
    Expr(usize, usize),
    /// Is the value a DWARF expression computes.
    ValExpr(usize, usize),
}

/// How to compute the canonical frame address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum CfaRule {
    Unset,
    RegOffset(u16, i64),
    Expr(usize, usize),
}

/// One row of the CFI table.
#[derive(Clone, Copy)]
struct Row {
    cfa: CfaRule,
    regs: [Rule; NREGS],
    /// aarch64: the return address is signed (pointer authentication).
    ra_signed: bool,
}

impl Row {
    /// Async-signal-safe.
    fn new() -> Self {
        Row {
            cfa: CfaRule::Unset,
            regs: [Rule::Same; NREGS],
            ra_signed: false,
        }
    }

    /// Async-signal-safe.
    fn set(&mut self, r: u64, rule: Rule) {
        if let Some(slot) = self.regs.get_mut(r as usize) {
            *slot = rule;
        }
    }
}

/// A parsed CIE.
#[derive(Clone, Copy)]
struct Cie {
    code_align: u64,
    data_align: i64,
    ra: u16,
    fde_enc: u8,
    has_z: bool,
    signal: bool,
    instr: usize,
    end: usize,
}

/// A parsed FDE.
#[derive(Clone, Copy)]
struct Fde {
    cie: Cie,
    pc_begin: u64,
    pc_end: u64,
    instr: usize,
    end: usize,
}

/// Read a CIE/FDE length; returns (body start, body end). Async-signal-safe.
fn entry_bounds(mem: &impl Memory, at: usize) -> Option<(usize, usize, bool)> {
    let len32 = mem.read::<u32>(at).ok()?;
    let (body, len, is64) = if len32 == 0xffff_ffff {
        (
            at.wrapping_add(12),
            mem.read::<u64>(at.wrapping_add(4)).ok()?,
            true,
        )
    } else {
        (at.wrapping_add(4), u64::from(len32), false)
    };
    if len == 0 || len > 1 << 24 {
        return None;
    }
    Some((body, body.checked_add(len as usize)?, is64))
}

/// Async-signal-safe.
fn parse_cie(mem: &impl Memory, at: usize) -> Option<Cie> {
    let (body, end, is64) = entry_bounds(mem, at)?;
    let mut c = Cursor::new(mem, body, end);
    let id = c.uint(if is64 { 8 } else { 4 })?;
    if id != 0 {
        return None;
    }
    let version = c.u8()?;
    if !matches!(version, 1 | 3 | 4) {
        return None;
    }
    let mut aug = [0u8; 8];
    let mut aug_len = 0;
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        *aug.get_mut(aug_len)? = b;
        aug_len += 1;
    }
    let aug = aug.get(..aug_len)?;
    if version == 4 {
        c.skip(2)?; // address_size, segment_selector_size
    }
    let code_align = c.uleb()?;
    let data_align = c.sleb()?;
    let ra = if version == 1 {
        u64::from(c.u8()?)
    } else {
        c.uleb()?
    };
    let mut cie = Cie {
        code_align,
        data_align,
        ra: u16::try_from(ra).ok()?,
        fde_enc: 0,
        has_z: aug.first() == Some(&b'z'),
        signal: false,
        instr: 0,
        end,
    };
    if cie.has_z {
        let len = c.uleb()?;
        let data_end = c.pos.checked_add(usize::try_from(len).ok()?)?;
        for &letter in aug.iter().skip(1) {
            match letter {
                b'R' => cie.fde_enc = c.u8()?,
                b'L' => {
                    c.u8()?;
                }
                b'P' => {
                    let enc = c.u8()?;
                    c.encoded(enc & 0x7f, 0)?;
                }
                b'S' => cie.signal = true,
                _ => {}
            }
        }
        if data_end > end {
            return None;
        }
        c.pos = data_end;
    } else if aug.iter().any(|&b| b != b'S') {
        // "eh" and other pre-'z' augmentations: unknown layout.
        return None;
    } else {
        cie.signal = !aug.is_empty();
    }
    cie.instr = c.pos;
    Some(cie)
}

/// Async-signal-safe.
fn parse_fde(mem: &impl Memory, at: usize) -> Option<Fde> {
    let (body, end, is64) = entry_bounds(mem, at)?;
    let mut c = Cursor::new(mem, body, end);
    let cie_ptr = c.uint(if is64 { 8 } else { 4 })?;
    if cie_ptr == 0 {
        return None;
    }
    let cie = parse_cie(mem, body.checked_sub(cie_ptr as usize)?)?;
    let pc_begin = c.encoded(cie.fde_enc, 0)?;
    let pc_range = c.encoded(cie.fde_enc & 0x0f, 0)?;
    if cie.has_z {
        let len = c.uleb()?;
        c.skip(len)?;
    }
    Some(Fde {
        cie,
        pc_begin,
        pc_end: pc_begin.wrapping_add(pc_range),
        instr: c.pos,
        end,
    })
}

/// The FDE covering `pc`, by binary search in `.eh_frame_hdr`.
/// Async-signal-safe.
fn find_fde(mem: &impl Memory, hdr: usize, hdr_len: usize, pc: u64) -> Option<Fde> {
    let mut c = Cursor::new(mem, hdr, hdr.checked_add(hdr_len)?);
    let version = c.u8()?;
    let ptr_enc = c.u8()?;
    let count_enc = c.u8()?;
    let table_enc = c.u8()?;
    if version != 1 || table_enc != 0x3b {
        // Only the datarel|sdata4 table every linker writes is searched.
        return None;
    }
    c.encoded(ptr_enc, hdr)?;
    let count = c.encoded(count_enc, hdr)? as usize;
    let table = c.pos;
    if count == 0 || table.checked_add(count.checked_mul(8)?)? > hdr.wrapping_add(hdr_len) {
        return None;
    }
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let loc = (hdr as u64)
            .wrapping_add(mem.read::<i32>(table.wrapping_add(mid * 8)).ok()? as i64 as u64);
        if loc <= pc {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let entry = table.wrapping_add(lo.checked_sub(1)? * 8);
    let fde = (hdr as u64).wrapping_add(mem.read::<i32>(entry.wrapping_add(4)).ok()? as i64 as u64);
    let fde = parse_fde(mem, fde as usize)?;
    (fde.pc_begin <= pc && pc < fde.pc_end).then_some(fde)
}

/// Depth of `DW_CFA_remember_state`.
const STATE_STACK: usize = 8;

/// Run CFA instructions `[from, to)` starting at code address `loc`, up to
/// (and including) the row for `target`. `initial` is the CIE's row, for
/// `DW_CFA_restore`. Async-signal-safe.
fn execute(
    mem: &impl Memory,
    cie: &Cie,
    (from, to): (usize, usize),
    mut loc: u64,
    target: u64,
    row: &mut Row,
    initial: Option<&Row>,
) -> Option<()> {
    let mut c = Cursor::new(mem, from, to);
    let mut stack = [Row::new(); STATE_STACK];
    let mut depth = 0usize;
    let restore = |r: u64| {
        initial
            .and_then(|i| i.regs.get(r as usize).copied())
            .unwrap_or(Rule::Same)
    };
    let align = cie.data_align;
    while c.pos < to {
        let op = c.u8()?;
        let advance = match op >> 6 {
            1 => Some(u64::from(op & 0x3f)),
            2 => {
                let off = c.uleb()? as i64;
                row.set(u64::from(op & 0x3f), Rule::Offset(off.wrapping_mul(align)));
                None
            }
            3 => {
                let r = u64::from(op & 0x3f);
                row.set(r, restore(r));
                None
            }
            _ => match op {
                0x00 => None,
                0x01 => {
                    loc = c.encoded(cie.fde_enc, 0)?;
                    if loc > target {
                        return Some(());
                    }
                    None
                }
                0x02 => Some(c.uint(1)?),
                0x03 => Some(c.uint(2)?),
                0x04 => Some(c.uint(4)?),
                0x05 => {
                    let r = c.uleb()?;
                    let off = c.uleb()? as i64;
                    row.set(r, Rule::Offset(off.wrapping_mul(align)));
                    None
                }
                0x06 => {
                    let r = c.uleb()?;
                    row.set(r, restore(r));
                    None
                }
                0x07 => {
                    row.set(c.uleb()?, Rule::Undefined);
                    None
                }
                0x08 => {
                    row.set(c.uleb()?, Rule::Same);
                    None
                }
                0x09 => {
                    let r = c.uleb()?;
                    let from = u16::try_from(c.uleb()?).ok()?;
                    row.set(r, Rule::Register(from));
                    None
                }
                0x0a => {
                    *stack.get_mut(depth)? = *row;
                    depth += 1;
                    None
                }
                0x0b => {
                    depth = depth.checked_sub(1)?;
                    // The whole row, the CFA and (aarch64) the return
                    // address signing state included, as libgcc does.
                    *row = *stack.get(depth)?;
                    None
                }
                0x0c => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    row.cfa = CfaRule::RegOffset(r, c.uleb()? as i64);
                    None
                }
                0x0d => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    let off = match row.cfa {
                        CfaRule::RegOffset(_, off) => off,
                        _ => 0,
                    };
                    row.cfa = CfaRule::RegOffset(r, off);
                    None
                }
                0x0e => {
                    let off = c.uleb()? as i64;
                    if let CfaRule::RegOffset(r, _) = row.cfa {
                        row.cfa = CfaRule::RegOffset(r, off);
                    }
                    None
                }
                0x0f => {
                    let len = c.uleb()? as usize;
                    row.cfa = CfaRule::Expr(c.pos, len);
                    c.skip(len as u64)?;
                    None
                }
                0x10 | 0x16 => {
                    let r = c.uleb()?;
                    let len = c.uleb()? as usize;
                    let rule = if op == 0x10 {
                        Rule::Expr(c.pos, len)
                    } else {
                        Rule::ValExpr(c.pos, len)
                    };
                    row.set(r, rule);
                    c.skip(len as u64)?;
                    None
                }
                0x11 => {
                    let r = c.uleb()?;
                    let off = c.sleb()?;
                    row.set(r, Rule::Offset(off.wrapping_mul(align)));
                    None
                }
                0x12 => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    row.cfa = CfaRule::RegOffset(r, c.sleb()?.wrapping_mul(align));
                    None
                }
                0x13 => {
                    let off = c.sleb()?.wrapping_mul(align);
                    if let CfaRule::RegOffset(r, _) = row.cfa {
                        row.cfa = CfaRule::RegOffset(r, off);
                    }
                    None
                }
                0x14 => {
                    let r = c.uleb()?;
                    let off = c.uleb()? as i64;
                    row.set(r, Rule::ValOffset(off.wrapping_mul(align)));
                    None
                }
                0x15 => {
                    let r = c.uleb()?;
                    let off = c.sleb()?;
                    row.set(r, Rule::ValOffset(off.wrapping_mul(align)));
                    None
                }
                // DW_CFA_AARCH64_negate_ra_state (DW_CFA_GNU_window_save).
                0x2d => {
                    row.ra_signed = !row.ra_signed;
                    None
                }
                // DW_CFA_GNU_args_size.
                0x2e => {
                    c.uleb()?;
                    None
                }
                // DW_CFA_GNU_negative_offset_extended.
                0x2f => {
                    let r = c.uleb()?;
                    let off = c.uleb()? as i64;
                    row.set(r, Rule::Offset(off.wrapping_neg().wrapping_mul(align)));
                    None
                }
                _ => return None,
            },
        };
        if let Some(delta) = advance {
            loc = loc.wrapping_add(delta.wrapping_mul(cie.code_align));
            if loc > target {
                return Some(());
            }
        }
    }
    Some(())
}

/// Evaluate a DWARF expression (the subset compilers and glibc emit in CFI).
/// `cfa` is pushed first for register rules. Async-signal-safe.
fn evaluate(
    mem: &impl Memory,
    (at, len): (usize, usize),
    regs: &Regs,
    cfa: Option<u64>,
) -> Option<u64> {
    let end = at.checked_add(len)?;
    let mut c = Cursor::new(mem, at, end);
    let mut stack = [0u64; 16];
    let mut sp = 0usize;
    macro_rules! push {
        ($v:expr) => {{
            let v = $v;
            *stack.get_mut(sp)? = v;
            sp += 1;
        }};
    }
    macro_rules! pop {
        () => {{
            sp = sp.checked_sub(1)?;
            *stack.get(sp)?
        }};
    }
    if let Some(cfa) = cfa {
        push!(cfa);
    }
    for _ in 0..256 {
        if c.pos >= end {
            return if sp > 0 { Some(pop!()) } else { None };
        }
        let op = c.u8()?;
        match op {
            0x03 => push!(c.uint(8)?),
            0x06 => {
                let a = pop!();
                push!(mem.read::<u64>(a as usize).ok()?)
            }
            0x08 => push!(c.uint(1)?),
            0x09 => push!(c.uint(1)? as u8 as i8 as i64 as u64),
            0x0a => push!(c.uint(2)?),
            0x0b => push!(c.uint(2)? as u16 as i16 as i64 as u64),
            0x0c => push!(c.uint(4)?),
            0x0d => push!(c.uint(4)? as u32 as i32 as i64 as u64),
            0x0e | 0x0f => push!(c.uint(8)?),
            0x10 => push!(c.uleb()?),
            0x11 => push!(c.sleb()? as u64),
            0x12 => {
                let a = pop!();
                push!(a);
                push!(a)
            }
            0x13 => {
                let _ = pop!();
            }
            0x14 => {
                let b = pop!();
                let a = pop!();
                push!(a);
                push!(b);
                push!(a)
            }
            0x16 => {
                let b = pop!();
                let a = pop!();
                push!(b);
                push!(a)
            }
            0x1a..=0x1f | 0x21 | 0x22 | 0x24..=0x27 | 0x29..=0x2e => {
                if op == 0x1f {
                    let a = pop!();
                    push!(a.wrapping_neg());
                    continue;
                }
                let b = pop!();
                let a = pop!();
                let (sa, sb) = (a as i64, b as i64);
                push!(match op {
                    0x1a => a & b,
                    0x1b => {
                        if sb == 0 {
                            return None;
                        }
                        sa.wrapping_div(sb) as u64
                    }
                    0x1c => a.wrapping_sub(b),
                    0x1d => a.checked_rem(b)?,
                    0x1e => a.wrapping_mul(b),
                    0x21 => a | b,
                    0x22 => a.wrapping_add(b),
                    0x24 => a.checked_shl(b as u32).unwrap_or(0),
                    0x25 => a.checked_shr(b as u32).unwrap_or(0),
                    0x26 => sa
                        .checked_shr(b as u32)
                        .unwrap_or(if sa < 0 { -1 } else { 0 }) as u64,
                    0x27 => a ^ b,
                    0x29 => u64::from(sa == sb),
                    0x2a => u64::from(sa >= sb),
                    0x2b => u64::from(sa > sb),
                    0x2c => u64::from(sa <= sb),
                    0x2d => u64::from(sa < sb),
                    _ => u64::from(sa != sb),
                })
            }
            0x20 => {
                let a = pop!();
                push!(!a)
            }
            0x23 => {
                let a = pop!();
                push!(a.wrapping_add(c.uleb()?))
            }
            0x28 | 0x2f => {
                let off = c.uint(2)? as u16 as i16 as isize;
                let taken = if op == 0x2f { true } else { pop!() != 0 };
                if taken {
                    let to = c.pos.checked_add_signed(off)?;
                    if to < at || to > end {
                        return None;
                    }
                    c.pos = to;
                }
            }
            0x30..=0x4f => push!(u64::from(op - 0x30)),
            0x70..=0x8f => {
                let off = c.sleb()?;
                push!(regs.get(u16::from(op - 0x70))?.wrapping_add(off as u64))
            }
            0x92 => {
                let r = u16::try_from(c.uleb()?).ok()?;
                let off = c.sleb()?;
                push!(regs.get(r)?.wrapping_add(off as u64))
            }
            0x94 => {
                let size = c.u8()?;
                let a = pop!() as usize;
                let v = match size {
                    1 => u64::from(mem.read::<u8>(a).ok()?),
                    2 => u64::from(mem.read::<u16>(a).ok()?),
                    4 => u64::from(mem.read::<u32>(a).ok()?),
                    8 => mem.read::<u64>(a).ok()?,
                    _ => return None,
                };
                push!(v)
            }
            0x96 => {}
            _ => return None,
        }
    }
    None
}

/// The caller's registers from a CFI row. Returns None at the outermost frame
/// (return address undefined) or when the return address cannot be read.
/// Async-signal-safe.
fn apply(mem: &impl Memory, row: &Row, ra: u16, regs: &Regs) -> Option<Regs> {
    let cfa = match row.cfa {
        CfaRule::RegOffset(r, off) => regs.get(r)?.wrapping_add(off as u64),
        CfaRule::Expr(at, len) => evaluate(mem, (at, len), regs, None)?,
        CfaRule::Unset => return None,
    };
    let mut next = Regs::empty();
    for (r, rule) in row.regs.iter().enumerate() {
        let r = r as u16;
        let value = match *rule {
            Rule::Same => regs.get(r),
            Rule::Undefined => None,
            Rule::Offset(off) => mem.read::<u64>(cfa.wrapping_add(off as u64) as usize).ok(),
            Rule::ValOffset(off) => Some(cfa.wrapping_add(off as u64)),
            Rule::Register(from) => regs.get(from),
            Rule::Expr(at, len) => evaluate(mem, (at, len), regs, Some(cfa))
                .and_then(|a| mem.read::<u64>(a as usize).ok()),
            Rule::ValExpr(at, len) => evaluate(mem, (at, len), regs, Some(cfa)),
        };
        if let Some(v) = value {
            next.set(r, v);
        }
    }
    // The caller's stack pointer is the CFA unless a rule says otherwise.
    if row.regs.get(arch::SP as usize) == Some(&Rule::Same) {
        next.set(arch::SP, cfa);
    }
    let mut pc = next.get(ra)?;
    if row.ra_signed {
        // aarch64 pointer authentication: drop the signature bits.
        pc &= (1u64 << 48) - 1;
    }
    next.pc = pc;
    Some(next)
}

/// One unwinding step with CFI: the caller's registers and whether this frame
/// is a signal trampoline (its caller's pc is then exact, not a return
/// address). Async-signal-safe.
fn step_cfi<M: Memory>(
    mem: &M,
    found: &Found<'_>,
    regs: &Regs,
    lookup: u64,
) -> Option<(Regs, bool)> {
    if found.eh_frame_hdr == 0 {
        return None;
    }
    let fde = find_fde(mem, found.eh_frame_hdr, found.eh_frame_hdr_len, lookup)?;
    let mut row = Row::new();
    execute(
        mem,
        &fde.cie,
        (fde.cie.instr, fde.cie.end),
        fde.pc_begin,
        u64::MAX,
        &mut row,
        None,
    )?;
    let initial = row;
    execute(
        mem,
        &fde.cie,
        (fde.instr, fde.end),
        fde.pc_begin,
        lookup,
        &mut row,
        Some(&initial),
    )?;
    let next = apply(mem, &row, fde.cie.ra, regs)?;
    Some((next, fde.cie.signal))
}

/// A step without CFI (JIT code, a call through a bad pointer, hand-written
/// assembly): a frame-pointer step, or for the interrupted frame, a return
/// address on top of the stack. Accepted only if the return address lies in
/// a known object. Async-signal-safe.
fn step_heuristic<M: Memory>(
    mem: &M,
    resolver: &Resolver<'_, '_, M>,
    regs: &Regs,
    first: bool,
    in_object: bool,
) -> Option<Regs> {
    let sp = regs.get(arch::SP)?;
    let code = |a: u64| a != 0 && resolver.find((a as usize).wrapping_sub(1)).is_some();
    #[cfg(target_arch = "x86_64")]
    if first && !in_object {
        // Jumped to a bad address: the call's return address is on top.
        if let Ok(ra) = mem.read::<u64>(sp as usize)
            && code(ra)
        {
            let mut next = *regs;
            next.known &= (1 << arch::SP) | (1 << arch::FP);
            next.set(arch::SP, sp.wrapping_add(8));
            next.pc = ra;
            return Some(next);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if first && !in_object {
        // Jumped to a bad address: the return address is still in lr.
        if let Some(lr) = regs.get(arch::LR)
            && code(lr)
        {
            let mut next = *regs;
            next.known &= (1 << arch::SP) | (1 << arch::FP);
            next.pc = lr;
            return Some(next);
        }
    }
    let _ = (first, in_object);
    let fp = regs.get(arch::FP)?;
    if fp < sp || fp % 8 != 0 || fp - sp > 1 << 26 {
        return None;
    }
    let saved_fp = mem.read::<u64>(fp as usize).ok()?;
    let ra = mem.read::<u64>((fp as usize).wrapping_add(8)).ok()?;
    if !code(ra) {
        return None;
    }
    let mut next = Regs::empty();
    next.set(arch::SP, fp.wrapping_add(16));
    next.set(arch::FP, saved_fp);
    next.pc = ra;
    Some(next)
}

/// Walk from `regs`, storing pcs in `frames` after skipping `skip` frames.
/// Async-signal-safe.
fn unwind<M: Memory>(
    resolver: &Resolver<'_, '_, M>,
    mut regs: Regs,
    frames: &mut [usize],
    mut skip: usize,
) -> usize {
    let mem = resolver.mem;
    let mut n = 0;
    // The first pc is exact (the interrupted instruction, or the capture
    // point); later ones are return addresses, looked up one byte back.
    let mut exact = true;
    let mut first = true;
    for _ in 0..(frames.len() + skip + 1).min(4096) {
        // A null return address ends the stack; a null first pc is a call
        // through a null pointer, printed and stepped over.
        if regs.pc == 0 && !first {
            break;
        }
        if skip > 0 {
            skip -= 1;
        } else {
            let Some(slot) = frames.get_mut(n) else {
                break;
            };
            *slot = regs.pc as usize;
            n += 1;
            if n == frames.len() {
                break;
            }
        }
        let Some(sp) = regs.get(arch::SP) else {
            break;
        };
        let lookup = if exact {
            regs.pc
        } else {
            regs.pc.wrapping_sub(1)
        };
        let found = resolver.find(lookup as usize);
        let stepped = match found.as_ref().and_then(|f| step_cfi(mem, f, &regs, lookup)) {
            Some(step) => Some(step),
            None => {
                step_heuristic(mem, resolver, &regs, first, found.is_some()).map(|r| (r, false))
            }
        };
        let Some((next, signal)) = stepped else {
            break;
        };
        let Some(next_sp) = next.get(arch::SP) else {
            break;
        };
        // Stacks grow down: a caller's frame is above its callee's, except
        // across a signal frame (the handler may run on another stack).
        if !signal {
            let ok = if arch::STRICT_SP {
                next_sp > sp
            } else {
                next_sp > sp || (next_sp == sp && next.pc != regs.pc)
            };
            if !ok {
                break;
            }
        }
        exact = signal;
        first = false;
        regs = next;
    }
    n
}

/// The registers of an interrupted context. Async-signal-safe.
#[cfg(target_arch = "x86_64")]
fn context_regs(context: *mut libc::c_void) -> Option<Regs> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers,
    // and the caller passes only that pointer.
    let g = unsafe { &(*uc).uc_mcontext.gregs };
    let mut regs = Regs::empty();
    // DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15.
    let order = [
        libc::REG_RAX,
        libc::REG_RDX,
        libc::REG_RCX,
        libc::REG_RBX,
        libc::REG_RSI,
        libc::REG_RDI,
        libc::REG_RBP,
        libc::REG_RSP,
        libc::REG_R8,
        libc::REG_R9,
        libc::REG_R10,
        libc::REG_R11,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
    ];
    for (dwarf, &greg) in order.iter().enumerate() {
        regs.set(dwarf as u16, *g.get(greg as usize)? as u64);
    }
    regs.pc = *g.get(libc::REG_RIP as usize)? as u64;
    Some(regs)
}

/// The registers of an interrupted context. Async-signal-safe.
#[cfg(target_arch = "aarch64")]
fn context_regs(context: *mut libc::c_void) -> Option<Regs> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers,
    // and the caller passes only that pointer.
    let m = unsafe { &(*uc).uc_mcontext };
    let mut regs = Regs::empty();
    for (i, &v) in m.regs.iter().enumerate() {
        regs.set(i as u16, v);
    }
    regs.set(arch::SP, m.sp);
    regs.pc = m.pc;
    Some(regs)
}

/// No registers on other architectures. Async-signal-safe.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn context_regs(_context: *mut libc::c_void) -> Option<Regs> {
    None
}

/// Capture this function's own registers and unwind from here, skipping
/// `skip` frames (this one and its callers inside this module).
/// Async-signal-safe.
#[inline(never)]
fn capture_here<M: Memory>(
    resolver: &Resolver<'_, '_, M>,
    frames: &mut [usize],
    skip: usize,
) -> usize {
    let mut saved = [0u64; 8];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: stores seven registers and the current pc into `saved`
        // (eight u64 slots); no stack use, flags untouched.
        unsafe {
            core::arch::asm!(
                "mov [{p}], rbx",
                "mov [{p} + 8], rbp",
                "mov [{p} + 16], rsp",
                "mov [{p} + 24], r12",
                "mov [{p} + 32], r13",
                "mov [{p} + 40], r14",
                "mov [{p} + 48], r15",
                "lea {t}, [rip]",
                "mov [{p} + 56], {t}",
                p = in(reg) saved.as_mut_ptr(),
                t = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        let mut regs = Regs::empty();
        for (dwarf, &v) in [3u16, 6, 7, 12, 13, 14, 15].iter().zip(saved.iter()) {
            regs.set(*dwarf, v);
        }
        regs.pc = saved[7];
        unwind(resolver, regs, frames, skip)
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: stores fp, lr, sp and the current pc into `saved` (eight
        // u64 slots); no stack use, flags untouched.
        unsafe {
            core::arch::asm!(
                "str x29, [{p}]",
                "str x30, [{p}, #8]",
                "mov {t}, sp",
                "str {t}, [{p}, #16]",
                "adr {t}, .",
                "str {t}, [{p}, #24]",
                p = in(reg) saved.as_mut_ptr(),
                t = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        let mut regs = Regs::empty();
        regs.set(arch::FP, saved[0]);
        regs.set(arch::LR, saved[1]);
        regs.set(arch::SP, saved[2]);
        regs.pc = saved[3];
        unwind(resolver, regs, frames, skip)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (resolver, frames, saved, skip);
        0
    }
}

/// Capture the current thread's C stack into `frames` (most recent first) and
/// return how many were stored. With a signal handler's `ucontext` the walk
/// starts at the interrupted instruction; with a null context, in the
/// function that called `capture` (as the stdlib's first frame is
/// `_Py_DumpStack`, the caller of `backtrace()`). Reads go through
/// `process_vm_readv`; see [`capture_with`] to choose the reader.
///
/// Async-signal-safe.
#[inline(always)]
pub fn capture(context: *mut libc::c_void, frames: &mut [usize]) -> usize {
    capture_with(&LocalChecked::new(), context, frames)
}

/// [`capture`] with a chosen reader (the fatal handler's reader, which
/// falls back to plain loads where seccomp refuses `process_vm_readv`). With
/// a null context the first frame is the caller of `capture_with`.
///
/// Async-signal-safe.
#[inline(never)]
pub fn capture_with<M: Memory>(mem: &M, context: *mut libc::c_void, frames: &mut [usize]) -> usize {
    if !SUPPORTED || frames.is_empty() {
        return 0;
    }
    let resolver = Resolver {
        mem,
        table: published(),
        link_map: true,
    };
    if context.is_null() {
        // Skip capture_here and this function. The result goes through
        // black_box so that the call is not a tail call: this frame must be
        // on the stack for the count to be right.
        core::hint::black_box(capture_here(&resolver, frames, 2))
    } else {
        match context_regs(context) {
            Some(regs) => unwind(&resolver, regs, frames, 0),
            None => 0,
        }
    }
}

// ---------------------------------------------------------------------------
// Writing the section
// ---------------------------------------------------------------------------

/// Write the stdlib's C stack section for `frames` (from [`capture`]):
///
/// ```text
/// Current thread's C stack trace (most recent call first):
///   Binary file "python3.14", at _PyEval_EvalFrameDefault+0x4a [0x49b2f9]
///   Binary file "/usr/lib/x86_64-linux-gnu/libc.so.6", at +0x406b0 [0x7f...]
///   Binary file '<unknown>' [0x7f...]
///   <truncated rest of calls>
/// ```
///
/// preceded by a blank line when `leading_blank_line` (the fatal report).
/// Names come from the prepared table, else from the loader's list and the
/// object's `.dynsym` in memory.
///
/// Async-signal-safe.
pub fn write_c_stack<S: Sink>(out: &mut Writer<S>, frames: &[usize], leading_blank_line: bool) {
    write_c_stack_with(&LocalChecked::new(), out, frames, leading_blank_line);
}

/// [`write_c_stack`] with a chosen reader.
///
/// Async-signal-safe.
pub fn write_c_stack_with<M: Memory, S: Sink>(
    mem: &M,
    out: &mut Writer<S>,
    frames: &[usize],
    leading_blank_line: bool,
) {
    let resolver = Resolver {
        mem,
        table: published(),
        link_map: true,
    };
    write_section(&resolver, out, frames, leading_blank_line);
}

/// Async-signal-safe.
fn write_section<M: Memory, S: Sink>(
    resolver: &Resolver<'_, '_, M>,
    out: &mut Writer<S>,
    frames: &[usize],
    leading_blank_line: bool,
) {
    if leading_blank_line {
        out.end_line();
    }
    out.str("Current thread's C stack trace (most recent call first):");
    out.end_line();
    if !SUPPORTED {
        out.str("  <cannot get C stack on this system>");
        out.end_line();
        return;
    }
    if frames.is_empty() {
        out.str("  <system returned no stack trace>");
        out.end_line();
        return;
    }
    for (i, &addr) in frames.iter().take(MAX_FRAMES).enumerate() {
        // Return addresses (all but the first pc) are looked up one byte
        // back, so that a call ending its function is named after it.
        let lookup = if i == 0 { addr } else { addr.wrapping_sub(1) };
        write_frame(resolver, out, addr, lookup);
    }
    if frames.len() >= MAX_FRAMES {
        out.str("  <truncated rest of calls>");
        out.end_line();
    }
}

/// Whether a name is empty. Async-signal-safe.
fn name_is_empty(mem: &impl Memory, name: Name<'_>) -> bool {
    match name {
        Name::Local(bytes) => bytes.is_empty(),
        Name::Remote(0) => true,
        Name::Remote(at) => mem.read::<u8>(at).map_or(true, |b| b == 0),
    }
}

/// Write a name (a remote one up to its NUL, at most 4 KiB).
/// Async-signal-safe.
fn write_name<M: Memory, S: Sink>(mem: &M, out: &mut Writer<S>, name: Name<'_>) {
    match name {
        Name::Local(bytes) => out.bytes(bytes),
        Name::Remote(mut at) => {
            let mut chunk = [0u8; 64];
            let mut total = 0;
            while total < 4096 && at != 0 {
                // Never cross a page: the next one may be unmapped.
                let n = chunk.len().min(4096 - (at & 4095));
                let Some(dst) = chunk.get_mut(..n) else {
                    return;
                };
                if mem.read_bytes(at, dst).is_err() {
                    return;
                }
                match dst.iter().position(|&b| b == 0) {
                    Some(end) => {
                        out.bytes(dst.get(..end).unwrap_or(&[]));
                        return;
                    }
                    None => out.bytes(dst),
                }
                at += n;
                total += n;
            }
        }
    }
}

/// The symbol containing `lookup` in an object: its address and name.
/// Async-signal-safe.
fn symbol_of<'t, M: Memory>(
    mem: &M,
    found: &Found<'t>,
    lookup: usize,
) -> Option<(usize, Name<'t>)> {
    match found.symbols {
        Symbols::Table(table, symbols) => {
            containing(symbols, lookup).map(|s| (s.start, Name::Local(table.str(s.name))))
        }
        Symbols::Dynamic(dynamic) => dynsym_lookup(mem, dynamic, found.bias, lookup)
            .map(|(start, name)| (start, Name::Remote(name))),
        Symbols::None => None,
    }
}

/// One line, in the stdlib's `_Py_backtrace_symbols_fd` format.
/// Async-signal-safe.
fn write_frame<M: Memory, S: Sink>(
    resolver: &Resolver<'_, '_, M>,
    out: &mut Writer<S>,
    addr: usize,
    lookup: usize,
) {
    let mem = resolver.mem;
    let found = resolver
        .find(lookup)
        .filter(|f| !name_is_empty(mem, f.name));
    let Some(found) = found else {
        out.str("  Binary file '<unknown>' [0x");
        out.hex(addr as u64, 1);
        out.str("]");
        out.end_line();
        return;
    };
    out.str("  Binary file \"");
    write_name(mem, out, found.name);
    let (base, symbol) = match symbol_of(mem, &found, lookup) {
        Some((start, name)) => (start, Some(name)),
        // No symbol: relative to the load bias, or bare when there is none
        // (a non-PIE executable).
        None if found.bias == 0 => {
            out.str("\" [0x");
            out.hex(addr as u64, 1);
            out.str("]");
            out.end_line();
            return;
        }
        None => (found.bias, None),
    };
    out.str("\", at ");
    if let Some(name) = symbol {
        write_name(mem, out, name);
    }
    if addr >= base {
        out.str("+0x");
        out.hex((addr - base) as u64, 1);
    } else {
        out.str("-0x");
        out.hex((base - addr) as u64, 1);
    }
    out.str(" [0x");
    out.hex(addr as u64, 1);
    out.str("]");
    out.end_line();
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{FlushPolicy, VecSink};
    use core::sync::atomic::AtomicUsize;

    /// The name of the symbol containing `addr` in the published table.
    fn name_at(addr: usize) -> Option<String> {
        let table = published()?;
        let object = table.object_at(addr)?;
        let s = containing(table.symbols_of(object), addr)?;
        Some(String::from_utf8_lossy(table.str(s.name)).into_owned())
    }

    fn names_of(frames: &[usize]) -> Vec<String> {
        frames
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                name_at(if i == 0 { a } else { a - 1 }).unwrap_or_else(|| format!("?{a:#x}"))
            })
            .collect()
    }

    #[inline(never)]
    fn lastwords_known_function_outer(frames: &mut [usize]) -> usize {
        let n = lastwords_known_function_inner(frames);
        core::hint::black_box(n)
    }

    #[inline(never)]
    fn lastwords_known_function_inner(frames: &mut [usize]) -> usize {
        let n = capture(core::ptr::null_mut(), core::hint::black_box(frames));
        core::hint::black_box(n)
    }

    /// The caller of the known functions: test functions themselves may be
    /// inlined into the harness, so the walk is checked up to this one.
    #[inline(never)]
    fn lastwords_known_caller(frames: &mut [usize]) -> usize {
        let n = lastwords_known_function_outer(frames);
        core::hint::black_box(n)
    }

    #[test]
    fn captures_its_own_stack_and_names_it() {
        prepare().unwrap();
        let mut frames = [0usize; MAX_FRAMES];
        let n = lastwords_known_caller(&mut frames);
        let names = names_of(&frames[..n]);
        // The first frame is the function that called capture().
        assert!(
            names[0].contains("lastwords_known_function_inner"),
            "{names:#?}"
        );
        let inner = names
            .iter()
            .position(|s| s.contains("lastwords_known_function_inner"));
        let outer = names
            .iter()
            .position(|s| s.contains("lastwords_known_function_outer"));
        assert!(inner.is_some() && outer.is_some(), "{names:#?}");
        assert!(inner < outer, "{names:#?}");
        assert!(
            names.iter().any(|s| s.contains("lastwords_known_caller")),
            "{names:#?}"
        );
        // The walk goes on through the test harness and std into libc.
        assert!(n > 6, "{names:#?}");
    }

    static SIGNAL_FRAMES: [AtomicUsize; MAX_FRAMES] = [const { AtomicUsize::new(0) }; MAX_FRAMES];
    static SIGNAL_COUNT: AtomicUsize = AtomicUsize::new(usize::MAX);

    extern "C" fn on_signal(_: libc::c_int, _: *mut libc::siginfo_t, context: *mut libc::c_void) {
        let mut frames = [0usize; MAX_FRAMES];
        let n = capture(context, &mut frames);
        for (slot, &f) in SIGNAL_FRAMES.iter().zip(frames.iter()) {
            slot.store(f, Ordering::Relaxed);
        }
        SIGNAL_COUNT.store(n, Ordering::Release);
    }

    #[inline(never)]
    fn lastwords_raises_a_signal() {
        // SAFETY: raise is always safe to call; the handler is installed.
        unsafe { libc::raise(libc::SIGUSR2) };
        core::hint::black_box(());
    }

    #[inline(never)]
    fn lastwords_calls_the_raiser() {
        lastwords_raises_a_signal();
        core::hint::black_box(());
    }

    #[test]
    fn unwinds_from_a_signal_context_through_libc() {
        prepare().unwrap();
        // SAFETY: a zeroed sigaction with a valid handler and SA_SIGINFO.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR2, &action, core::ptr::null_mut()),
                0
            );
        }
        lastwords_calls_the_raiser();
        let n = SIGNAL_COUNT.load(Ordering::Acquire);
        assert!(n != usize::MAX && n > 0);
        let frames: Vec<usize> = SIGNAL_FRAMES
            .iter()
            .take(n)
            .map(|f| f.load(Ordering::Relaxed))
            .collect();
        let names = names_of(&frames);
        // The interrupted pc is in libc (raise / pthread_kill); the walk
        // climbs through libc back into the function that raised.
        let first = published().and_then(|t| t.object_at(frames[0])).map(t_name);
        assert!(
            first.as_ref().is_some_and(|n| n.contains("libc")),
            "{first:?} {names:#?}"
        );
        assert!(
            names
                .iter()
                .any(|s| s.contains("lastwords_raises_a_signal")),
            "{names:#?}"
        );
        assert!(
            names
                .iter()
                .any(|s| s.contains("lastwords_calls_the_raiser")),
            "{names:#?}"
        );
    }

    fn t_name(o: &Object) -> String {
        String::from_utf8_lossy(published().unwrap().str(o.name)).into_owned()
    }

    #[test]
    fn prepared_table_names_the_main_program_by_argv0_and_finds_libc() {
        prepare().unwrap();
        let table = published().unwrap();
        let main = table.objects.first().unwrap();
        let argv0 = std::env::args_os().next().unwrap();
        assert_eq!(table.str(main.name), argv0.as_encoded_bytes());
        // Sorted, non-overlapping segments.
        assert!(table.segments.windows(2).all(|w| w[0].end <= w[1].start));
        let strlen = libc::strlen as *const () as usize;
        let object = table.object_at(strlen).unwrap();
        assert!(t_name(object).contains("libc.so"), "{}", t_name(object));
        assert!(object.eh_frame_hdr != 0);
        assert!(object.bias != 0);
        // The vDSO has no file: its symbols are read from memory.
        // SAFETY: getauxval has no preconditions.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
        if vdso != 0 {
            let object = table.object_at(vdso).unwrap();
            assert_eq!(t_name(object), "linux-vdso.so.1");
            assert!(object.symbols_loaded);
            assert!(!table.symbols_of(object).is_empty());
        }
        // A re-prepare with nothing loaded in between keeps the same table.
        prepare().unwrap();
        assert!(core::ptr::eq(published().unwrap(), table));
    }

    #[test]
    fn link_map_fallback_agrees_with_the_table() {
        prepare().unwrap();
        let mem = LocalChecked::new();
        let addr = libc::strlen as *const () as usize;
        let found = link_map::find(&mem, addr).expect("libc in the link map");
        let Name::Remote(name) = found.name else {
            panic!()
        };
        let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        write_name(&mem, &mut out, Name::Remote(name));
        let name = String::from_utf8(out.into_sink().bytes).unwrap();
        let table = published().unwrap();
        let object = table.object_at(addr).unwrap();
        assert_eq!(name.as_bytes(), table.str(object.name));
        assert_eq!(found.bias, object.bias);
        assert_eq!(found.eh_frame_hdr, object.eh_frame_hdr);
        // dladdr's own answer, from .dynsym in memory: a plain export, and
        // strlen's IFUNC-selected implementation (no dynamic symbol).
        let Symbols::Dynamic(dynamic) = found.symbols else {
            panic!()
        };
        for f in [libc::qsort as *const () as usize, addr] {
            let ours = dynsym_lookup(&mem, dynamic, found.bias, f + 1).map(|(start, sym)| {
                let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
                write_name(&mem, &mut out, Name::Remote(sym));
                (start, String::from_utf8(out.into_sink().bytes).unwrap())
            });
            // SAFETY: an all-zero Dl_info is a valid out-parameter.
            let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
            // SAFETY: dladdr with an address and a valid out-pointer.
            let status = unsafe { libc::dladdr((f + 1) as *const _, &mut info) };
            assert_ne!(status, 0);
            let theirs = (!info.dli_sname.is_null()).then(|| {
                // SAFETY: dladdr set a NUL-terminated name.
                let name = unsafe { std::ffi::CStr::from_ptr(info.dli_sname) };
                (info.dli_saddr as usize, name.to_string_lossy().into_owned())
            });
            assert_eq!(ours, theirs);
        }
        assert!(
            dynsym_lookup(&mem, dynamic, found.bias, libc::qsort as *const () as usize).is_some()
        );
    }

    #[inline(never)]
    fn lastwords_captures_without_a_table(frames: &mut [usize]) -> usize {
        // The link-map fallback alone (an object loaded after prepare()).
        let mem = LocalChecked::new();
        let resolver = Resolver {
            mem: &mem,
            table: None,
            link_map: true,
        };
        let n = capture_here(&resolver, frames, 1);
        core::hint::black_box(n)
    }

    #[inline(never)]
    fn lastwords_table_less_caller(frames: &mut [usize]) -> usize {
        let n = lastwords_captures_without_a_table(frames);
        core::hint::black_box(n)
    }

    #[test]
    fn unwinding_works_without_a_table() {
        let mut frames = [0usize; MAX_FRAMES];
        let n = lastwords_table_less_caller(&mut frames);
        prepare().unwrap();
        let names = names_of(&frames[..n]);
        assert!(
            names
                .iter()
                .any(|s| s.contains("lastwords_table_less_caller")),
            "{names:#?}"
        );
    }

    #[test]
    fn garbage_stacks_end_the_walk_without_faulting() {
        prepare().unwrap();
        let mem = LocalChecked::new();
        let resolver = Resolver {
            mem: &mem,
            table: published(),
            link_map: true,
        };
        let text = libc::qsort as *const () as u64;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // A fake stack: random words, some of them plausible return
        // addresses, some pointing back into the fake stack.
        let mut stack = vec![0u64; 4096];
        for _ in 0..200 {
            let base = stack.as_ptr() as u64;
            for word in stack.iter_mut() {
                *word = match next() % 4 {
                    0 => text.wrapping_add(next() % 0x10_0000),
                    1 => base + (next() % 4096) * 8,
                    2 => next(),
                    _ => 0,
                };
            }
            let mut regs = Regs::empty();
            for r in 0..NREGS as u16 {
                regs.set(r, next());
            }
            regs.set(arch::SP, base + (next() % 2048) * 8);
            regs.set(arch::FP, base + (next() % 4096) * 8);
            regs.pc = match next() % 3 {
                0 => text.wrapping_add(next() % 0x10_0000),
                1 => next(),
                _ => 0,
            };
            let mut frames = [0usize; MAX_FRAMES];
            let n = unwind(&resolver, regs, &mut frames, 0);
            assert!(n <= MAX_FRAMES);
            // Whatever came out can be printed.
            let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
            write_section(&resolver, &mut out, &frames[..n], true);
        }
    }

    /// A fake table: a non-PIE program at bias 0 and a library at a bias.
    fn fake_table() -> Table {
        let mut names = Vec::new();
        let prog = push_str(&mut names, b"python3.14");
        let lib = push_str(&mut names, b"/usr/lib/x86_64-linux-gnu/libc.so.6");
        let eval = push_str(&mut names, b"_PyEval_EvalFrameDefault");
        let call = push_str(&mut names, b"PyObject_Call");
        let abort = push_str(&mut names, b"abort");
        let empty = push_str(&mut names, b"");
        let base = 0x7f00_0000_0000usize;
        Table {
            objects: vec![
                Object {
                    name: prog,
                    bias: 0,
                    eh_frame_hdr: 0,
                    eh_frame_hdr_len: 0,
                    dynamic: 0,
                    symbols: (0, 2),
                    symbols_loaded: true,
                },
                Object {
                    name: lib,
                    bias: base,
                    eh_frame_hdr: 0,
                    eh_frame_hdr_len: 0,
                    dynamic: 0,
                    symbols: (2, 3),
                    symbols_loaded: true,
                },
                Object {
                    name: empty,
                    bias: 0x5000_0000,
                    eh_frame_hdr: 0,
                    eh_frame_hdr_len: 0,
                    dynamic: 0,
                    symbols: (3, 3),
                    symbols_loaded: true,
                },
            ],
            segments: vec![
                Segment {
                    start: 0x40_0000,
                    end: 0x90_0000,
                    object: 0,
                },
                Segment {
                    start: 0x5000_0000,
                    end: 0x5000_1000,
                    object: 2,
                },
                Segment {
                    start: base,
                    end: base + 0x20_0000,
                    object: 1,
                },
            ],
            symbols: vec![
                Symbol {
                    start: 0x49_0000,
                    size: 0x1000,
                    name: eval,
                },
                Symbol {
                    start: 0x52_0000,
                    size: 0x100,
                    name: call,
                },
                Symbol {
                    start: base + 0x2_0000,
                    size: 0x40,
                    name: abort,
                },
            ],
            names,
            adds: 0,
            subs: 0,
        }
    }

    fn render(table: &Table, frames: &[usize], blank: bool) -> String {
        let mem = LocalChecked::new();
        let resolver = Resolver {
            mem: &mem,
            table: Some(table),
            link_map: false,
        };
        let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        write_section(&resolver, &mut out, frames, blank);
        String::from_utf8(out.into_sink().bytes).unwrap()
    }

    #[test]
    fn formats_like_the_stdlib() {
        let table = fake_table();
        let base = 0x7f00_0000_0000usize;
        let frames = [
            0x49_004a,         // in a symbol, exact pc
            0x53_d28e,         // no symbol, bias 0: bare
            base + 0x4_06b0,   // no symbol, bias: relative to it
            base + 0x2_0040,   // return address just past abort's end
            0x1234_5678,       // no object
            0x5000_0010,       // an object with an empty name
            0x49_0000 + 0x800, // in a symbol again
        ];
        let expected = "\nCurrent thread's C stack trace (most recent call first):\n\
            \x20 Binary file \"python3.14\", at _PyEval_EvalFrameDefault+0x4a [0x49004a]\n\
            \x20 Binary file \"python3.14\" [0x53d28e]\n\
            \x20 Binary file \"/usr/lib/x86_64-linux-gnu/libc.so.6\", at +0x406b0 [0x7f00000406b0]\n\
            \x20 Binary file \"/usr/lib/x86_64-linux-gnu/libc.so.6\", at abort+0x40 [0x7f0000020040]\n\
            \x20 Binary file '<unknown>' [0x12345678]\n\
            \x20 Binary file '<unknown>' [0x50000010]\n\
            \x20 Binary file \"python3.14\", at _PyEval_EvalFrameDefault+0x800 [0x490800]\n";
        assert_eq!(render(&table, &frames, true), expected);
    }

    #[test]
    fn negative_offsets_truncation_and_empty_stacks() {
        let mut table = fake_table();
        // A library whose bias lies above an address it contains (a segment
        // below its first one): the stdlib prints a negative offset.
        table.objects[1].bias = 0x7f00_0000_0000 + 0x10_0000;
        table.objects[1].symbols = (3, 3);
        let got = render(&table, &[0x7f00_0000_0010], false);
        assert_eq!(
            got,
            "Current thread's C stack trace (most recent call first):\n\
             \x20 Binary file \"/usr/lib/x86_64-linux-gnu/libc.so.6\", at -0xffff0 [0x7f0000000010]\n"
        );
        let frames = [0x49_0001usize; 40];
        let got = render(&table, &frames, false);
        assert_eq!(got.lines().count(), 1 + MAX_FRAMES + 1);
        assert!(got.ends_with("  <truncated rest of calls>\n"));
        let got = render(&table, &frames[..MAX_FRAMES - 1], false);
        assert!(!got.contains("truncated"));
        assert_eq!(
            render(&table, &[], false),
            "Current thread's C stack trace (most recent call first):\n  <system returned no stack trace>\n"
        );
    }

    #[test]
    fn evaluates_the_plt_cfa_expression() {
        // DW_OP_breg7 (rsp): 8; DW_OP_breg16 (rip): 0; DW_OP_lit15; DW_OP_and;
        // DW_OP_lit11; DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus
        let expr = [0x77u8, 8, 0x80, 0, 0x3f, 0x1a, 0x3b, 0x2a, 0x33, 0x24, 0x22];
        let mut regs = Regs::empty();
        regs.set(7, 0x1000);
        regs.set(16, 0x2000 + 12);
        let mem = LocalChecked::new();
        let at = (expr.as_ptr() as usize, expr.len());
        assert_eq!(evaluate(&mem, at, &regs, None), Some(0x1000 + 8 + 8));
        regs.set(16, 0x2000 + 4);
        assert_eq!(evaluate(&mem, at, &regs, None), Some(0x1000 + 8));
    }

    /// Not a check: prints what a captured stack looks like (run with
    /// `--nocapture` to see it).
    #[test]
    fn demo_prints_a_captured_stack() {
        prepare().unwrap();
        let mut frames = [0usize; MAX_FRAMES];
        let n = lastwords_known_function_outer(&mut frames);
        let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        write_c_stack(&mut out, &frames[..n], false);
        let text = String::from_utf8(out.into_sink().bytes).unwrap();
        eprintln!("{n} frames:\n{text}");
        assert!(text.contains("lastwords_known_function_inner"));
    }
}
