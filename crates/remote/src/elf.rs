//! The ELF file behind a mapping: symbols, sections, load segments, build-id.
//!
//! The file is opened through `/proc/PID/root/<path>`, so that a target in
//! another mount namespace (a container, a chroot) is read from its own
//! files, and checked against the device and inode the kernel printed in the
//! maps; when the file was deleted or replaced since it was mapped,
//! `/proc/PID/map_files/<start>-<end>` gives the mapped file itself.
//!
//! The file is mmapped and parsed lazily with the `object` crate: a symbol
//! lookup reads the GNU hash table and a few symbols, not the whole table
//! (`.symtab`, which has no hash, is scanned only when asked). File contents
//! are hostile input: everything goes through `object`'s bounds-checked
//! reads, and the arithmetic here is checked.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(unsafe_code)]

use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{
    FileHeader, GnuHashTable, ProgramHeader, SectionHeader, SectionTable, Sym, SymbolTable,
    VersionTable,
};

use crate::maps::Mapping;

type Header = elf::FileHeader64<LE>;
type Elf64 = Header;

/// Files larger than this are not mapped (libpython is 15-30 MiB, a static
/// python with full symbols 45 MiB).
const MAX_FILE: u64 = 1 << 32;

/// A read-only private mapping of a whole file, unmapped on drop.
pub struct MappedFile {
    ptr: *mut libc::c_void,
    len: usize,
    /// Where it was opened from (for messages).
    pub opened_from: PathBuf,
    /// Device and inode of the opened file (`st_dev`, `st_ino`).
    pub dev: u64,
    pub inode: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl MappedFile {
    /// Map the file at `path`. An empty file is refused (nothing to parse),
    /// and so is anything but a regular file: a path from a hostile core
    /// may name a FIFO (opened without blocking, then refused) or a device.
    pub fn open(path: &Path) -> std::io::Result<MappedFile> {
        MappedFile::open_at_most(path, MAX_FILE)
    }

    /// [`MappedFile::open`] for files of up to `max` bytes (a core file
    /// may be far larger than any ELF file; mapping it costs nothing until
    /// it is read).
    pub fn open_at_most(path: &Path, max: u64) -> std::io::Result<MappedFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not a regular file", path.display()),
            ));
        }
        let size = meta.len();
        if size == 0 || size > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: size {size} is not a plausible ELF file",
                    path.display()
                ),
            ));
        }
        let len = usize::try_from(size).map_err(|_| std::io::ErrorKind::InvalidData)?;
        // SAFETY: a fresh read-only private mapping of an open file; the
        // kernel picks the address. Nothing else aliases it.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(MappedFile {
            ptr,
            len,
            opened_from: path.to_path_buf(),
            dev: meta.dev(),
            inode: meta.ino(),
            mtime_ns: i128::from(meta.mtime())
                .saturating_mul(1_000_000_000)
                .saturating_add(i128::from(meta.mtime_nsec())),
        })
    }

    /// The file's bytes.
    ///
    /// A file truncated in place while mapped would raise SIGBUS on access;
    /// package managers replace files by renaming, which keeps this mapping
    /// (and the target's) intact.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live PROT_READ mapping of `len` bytes owned by
        // self (unmapped only in Drop), never written through.
        unsafe { core::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }

    /// Whether this is the file the kernel says is mapped (same device and
    /// inode as printed in the maps).
    pub fn is_file_of(&self, m: &Mapping) -> bool {
        // st_dev encodes (major, minor) as glibc's makedev does.
        let major = libc::major(self.dev);
        let minor = libc::minor(self.dev);
        self.inode == m.inode && (major, minor) == m.dev
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `open` with this length and is not
        // referenced past self's lifetime (`bytes` borrows self).
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

/// Which path a mapped file was opened through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenedThrough {
    /// `/proc/PID/root/<path>`, checked to be the mapped inode: a target in
    /// another mount namespace (a container) prints paths of its own.
    Root,
    /// `<path>` in our own mount namespace, checked to be the mapped inode:
    /// the kernel prints maps paths relative to the reader's root when it
    /// can reach them, so a chrooted target shows our paths.
    Own,
    /// `/proc/PID/map_files/<range>`: the file was deleted or replaced, or
    /// neither path leads to it.
    MapFiles,
    /// A path whose inode differs from the mapped one, because map_files
    /// could not be opened: may be another build of the file.
    Unverified,
    /// A file named by a core, whose build-id is the one the core recorded.
    BuildId,
    /// A file named by a core that recorded no build-id for it (its first
    /// page was not dumped): not checked.
    Unchecked,
}

/// Open the file behind `m`, a mapping of process `pid`: the first of
/// `/proc/PID/root/<path>`, `<path>` and `/proc/PID/map_files/<range>` that
/// is the mapped inode.
pub fn open_mapped(pid: i32, m: &Mapping) -> std::io::Result<(MappedFile, OpenedThrough)> {
    let path = m
        .path()
        .ok_or_else(|| std::io::Error::other("mapping has no file"))?;
    let rooted = PathBuf::from(format!("/proc/{pid}/root")).join(
        path.strip_prefix("/")
            .map_err(|_| std::io::Error::other("relative path in maps"))?,
    );
    let mut fallback = None;
    if !m.deleted {
        for (candidate, how) in [
            (rooted.as_path(), OpenedThrough::Root),
            (path, OpenedThrough::Own),
        ] {
            if let Ok(f) = MappedFile::open(candidate) {
                if f.is_file_of(m) {
                    return Ok((f, how));
                }
                fallback.get_or_insert(f);
            }
        }
    }
    let map_files = PathBuf::from(format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end));
    match MappedFile::open(&map_files) {
        Ok(f) => Ok((f, OpenedThrough::MapFiles)),
        Err(e) => match fallback {
            Some(f) => Ok((f, OpenedThrough::Unverified)),
            None => Err(e),
        },
    }
}

/// A symbol's value and size as the file states them (before load bias).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub value: u64,
    pub size: u64,
    /// From `.dynsym` (exported) rather than `.symtab`.
    pub dynamic: bool,
}

/// A section's address, size and file offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Section {
    pub addr: u64,
    pub size: u64,
    pub offset: u64,
    /// `SHT_NOBITS` (.bss-like: no bytes in the file).
    pub nobits: bool,
}

/// A `PT_LOAD` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    pub align: u64,
    pub flags: u32,
}

/// Why a file is not an ELF file lastwords can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<E: core::fmt::Display>(what: &str) -> impl FnOnce(E) -> ElfError + '_ {
    move |e| ElfError(format!("{what}: {e}"))
}

/// A parsed 64-bit little-endian ELF file (x86-64, aarch64).
pub struct Elf<'data> {
    data: &'data [u8],
    header: &'data Elf64,
    segments: &'data [elf::ProgramHeader64<LE>],
    sections: SectionTable<'data, Elf64, &'data [u8]>,
    dynsym: SymbolTable<'data, Elf64, &'data [u8]>,
    gnu_hash: Option<GnuHashTable<'data, Elf64>>,
}

impl<'data> Elf<'data> {
    /// Parse the headers (not the symbols). Never panics on malformed input.
    pub fn parse(data: &'data [u8]) -> Result<Elf<'data>, ElfError> {
        let header = Elf64::parse(data).map_err(err("ELF header"))?;
        let endian = header.endian().map_err(err("ELF header"))?;
        let segments = header
            .program_headers(endian, data)
            .map_err(err("program headers"))?;
        let sections = header
            .sections(endian, data)
            .map_err(err("section headers"))?;
        let dynsym = sections
            .symbols(endian, data, elf::SHT_DYNSYM)
            .map_err(err(".dynsym"))?;
        // The GNU hash table is used only if it indexes this .dynsym.
        let gnu_hash = match sections.gnu_hash(endian, data) {
            Ok(Some((table, link))) if link == dynsym.section() => Some(table),
            _ => None,
        };
        Ok(Elf {
            data,
            header,
            segments,
            sections,
            dynsym,
            gnu_hash,
        })
    }

    /// `e_machine` (`EM_X86_64`, `EM_AARCH64`, ...).
    pub fn machine(&self) -> u16 {
        self.header.e_machine.get(LE).0
    }

    /// `e_type`: `ET_EXEC` (non-PIE executable), `ET_DYN` (PIE or library).
    pub fn file_type(&self) -> u16 {
        self.header.e_type.get(LE).0
    }

    /// The `PT_LOAD` segments, in file order.
    pub fn loads(&self) -> impl Iterator<Item = Load> + '_ {
        self.segments
            .iter()
            .filter(|p| p.p_type(LE) == elf::PT_LOAD)
            .map(|p| Load {
                vaddr: p.p_vaddr(LE),
                memsz: p.p_memsz(LE),
                offset: p.p_offset(LE),
                filesz: p.p_filesz(LE),
                align: p.p_align(LE),
                flags: p.p_flags(LE).0,
            })
    }

    /// The section called `name`.
    pub fn section(&self, name: &str) -> Option<Section> {
        let (_, s) = self.sections.section_by_name(LE, name.as_bytes())?;
        Some(Section {
            addr: s.sh_addr(LE),
            size: s.sh_size(LE),
            offset: s.sh_offset(LE),
            nobits: s.sh_type(LE) == elf::SHT_NOBITS,
        })
    }

    /// The GNU build-id, if the file has one.
    pub fn build_id(&self) -> Option<&'data [u8]> {
        for s in self.sections.iter() {
            if s.sh_type(LE) != elf::SHT_NOTE {
                continue;
            }
            let Ok(Some(mut notes)) = s.notes(LE, self.data) else {
                continue;
            };
            // Bounded: a note section of a real file has a handful of notes.
            for _ in 0..64 {
                match notes.next() {
                    Ok(Some(note)) => {
                        if note.name() == elf::ELF_NOTE_GNU
                            && note.n_type(LE) == elf::NT_GNU_BUILD_ID
                        {
                            return Some(note.desc());
                        }
                    }
                    _ => break,
                }
            }
        }
        None
    }

    /// Whether the file has a `.symtab` (not stripped).
    pub fn has_symtab(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.sh_type(LE) == elf::SHT_SYMTAB)
    }

    /// A defined symbol exported in `.dynsym`, found through the GNU hash
    /// table when there is one, else by a scan.
    pub fn dynamic_symbol(&self, name: &str) -> Option<Symbol> {
        let name = name.as_bytes();
        let found = match &self.gnu_hash {
            Some(table) => table
                .find(
                    LE,
                    name,
                    elf::gnu_hash(name),
                    None,
                    &self.dynsym,
                    &VersionTable::default(),
                )
                .map(|(_, s)| s)
                .filter(|s| defined(s)),
            None => scan(&self.dynsym, name),
        };
        found.map(|s| Symbol {
            value: s.st_value(LE),
            size: s.st_size(LE),
            dynamic: true,
        })
    }

    /// A defined symbol of `.symtab` (local ones included), by a scan; None
    /// for a stripped file.
    pub fn static_symbol(&self, name: &str) -> Option<Symbol> {
        let symtab = self.sections.symbols(LE, self.data, elf::SHT_SYMTAB).ok()?;
        scan(&symtab, name.as_bytes()).map(|s| Symbol {
            value: s.st_value(LE),
            size: s.st_size(LE),
            dynamic: false,
        })
    }

    /// `.dynsym`, then `.symtab`.
    pub fn symbol(&self, name: &str) -> Option<Symbol> {
        self.dynamic_symbol(name)
            .or_else(|| self.static_symbol(name))
    }

    /// The file's bytes at virtual address `vaddr` (as linked), if a
    /// `PT_LOAD` segment holds all `len` of them in the file.
    pub fn bytes_at(&self, vaddr: u64, len: usize) -> Option<&'data [u8]> {
        let len64 = u64::try_from(len).ok()?;
        let end = vaddr.checked_add(len64)?;
        for load in self.loads() {
            let seg_end = load.vaddr.checked_add(load.filesz)?;
            if vaddr >= load.vaddr && end <= seg_end {
                let start = load.offset.checked_add(vaddr.checked_sub(load.vaddr)?)?;
                let start = usize::try_from(start).ok()?;
                return self.data.get(start..start.checked_add(len)?);
            }
        }
        None
    }

    /// A NUL-terminated string of at most `max` bytes at `vaddr` in the file.
    pub fn c_string_at(&self, vaddr: u64, max: usize) -> Option<&'data [u8]> {
        // Read what the segment has, up to `max` bytes.
        let mut len = max;
        let bytes = loop {
            if let Some(b) = self.bytes_at(vaddr, len) {
                break b;
            }
            len = len.checked_div(2)?;
            if len == 0 {
                return None;
            }
        };
        let nul = bytes.iter().position(|&b| b == 0)?;
        bytes.get(..nul)
    }

    /// The segment holding `vaddr`, if any.
    pub fn load_of(&self, vaddr: u64) -> Option<Load> {
        self.loads().find(|l| {
            vaddr >= l.vaddr && l.vaddr.checked_add(l.memsz).is_some_and(|end| vaddr < end)
        })
    }
}

fn defined(s: &elf::Sym64<LE>) -> bool {
    s.st_shndx(LE) != elf::SHN_UNDEF && s.st_value(LE) != 0
}

/// The first defined symbol called `name` in `table`.
fn scan<'data>(
    table: &SymbolTable<'data, Elf64, &'data [u8]>,
    name: &[u8],
) -> Option<&'data elf::Sym64<LE>> {
    let strings = table.strings();
    table
        .iter()
        .find(|s| defined(s) && s.name(LE, strings) == Ok(name))
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;

    fn own_exe() -> MappedFile {
        MappedFile::open(Path::new("/proc/self/exe")).unwrap()
    }

    fn libc_path() -> PathBuf {
        crate::maps::own_libc().path().unwrap().to_path_buf()
    }

    #[test]
    fn finds_symbols_sections_and_build_id_of_libc() {
        let f = MappedFile::open(&libc_path()).unwrap();
        let e = Elf::parse(f.bytes()).unwrap();
        assert_eq!(e.machine(), elf::EM_X86_64.0);
        assert_eq!(e.file_type(), elf::ET_DYN.0);
        let getpid = e.dynamic_symbol("getpid").unwrap();
        assert!(getpid.value != 0 && getpid.dynamic);
        // The same symbol through a scan of .dynsym (no hash).
        let scanned = scan(&e.dynsym, b"getpid").unwrap();
        assert_eq!(scanned.st_value(LE), getpid.value);
        assert!(e.dynamic_symbol("no_such_symbol_anywhere").is_none());
        assert!(e.section(".text").is_some());
        assert!(e.section(".no-such").is_none());
        assert!(e.build_id().is_some_and(|b| b.len() == 20));
        assert!(e.loads().count() >= 2);
        // glibc's description of struct pthread's tid field.
        let tid = e.dynamic_symbol("_thread_db_pthread_tid").unwrap();
        let desc = e.bytes_at(tid.value, 12).unwrap();
        assert_eq!(&desc[..8], &[32, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn opened_file_matches_its_mapping() {
        let m = crate::maps::own_libc();
        let (f, how) = open_mapped(std::process::id() as i32, &m).unwrap();
        assert_eq!(how, OpenedThrough::Root);
        assert!(f.is_file_of(&m));
    }

    #[test]
    fn hostile_files_never_panic() {
        let real = own_exe();
        let bytes = real.bytes();
        // Truncations of a real file at many lengths.
        let mut n = 0usize;
        while n < bytes.len().min(1 << 20) {
            if let Ok(e) = Elf::parse(&bytes[..n]) {
                let _ = e.dynamic_symbol("main");
                let _ = e.static_symbol("main");
                let _ = e.section(".text");
                let _ = e.build_id();
                let _ = e.bytes_at(0x1000, 64);
                let _ = e.c_string_at(0x1000, 64);
            }
            n = n * 2 + 1;
        }
        // Garbage with a valid ELF identification, and headers corrupted at
        // random places.
        let mut x: u64 = 0x2545f4914f6cdd1d;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let head = bytes[..bytes.len().min(1 << 16)].to_vec();
        for _ in 0..2000 {
            let mut copy = head.clone();
            for _ in 0..8 {
                let i = (rnd() as usize) % 128;
                copy[i] = rnd() as u8;
            }
            let i = (rnd() as usize) % copy.len();
            copy[i] = rnd() as u8;
            if let Ok(e) = Elf::parse(&copy) {
                let _ = e.dynamic_symbol("main");
                let _ = e.static_symbol("x");
                let _ = e.build_id();
                let _ = e.section(".PyRuntime");
                let _ = e.c_string_at(rnd(), 32);
            }
        }
        assert!(Elf::parse(b"").is_err());
        assert!(Elf::parse(b"\x7fELF").is_err());
        assert!(Elf::parse(&[0u8; 4096]).is_err());
    }

    #[test]
    fn empty_and_missing_files_are_errors() {
        assert!(MappedFile::open(Path::new("/dev/null")).is_err());
        assert!(MappedFile::open(Path::new("/no/such/file")).is_err());
    }
}
