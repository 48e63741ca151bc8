//! A core file as a [`Source`] for discovery and as a [`Memory`] for the
//! walker: the same three things a live process gives — its mappings, its
//! memory, its files — read from the core and the files it names.
//!
//! * Mappings: the `NT_FILE` note (start, end, offset, path); permissions,
//!   which the note lacks, from the `PT_LOAD` at the same address where
//!   there is one.
//! * Memory: the core's own bytes where a segment holds them; elsewhere in a
//!   range `NT_FILE` names (read-only file-backed memory, which neither the
//!   kernel nor gcore dump by default), the file at the right offset. A
//!   writable segment cut by a truncated core is never read from its file
//!   (the file has the bytes it was loaded with, not the ones the process
//!   wrote): it is unreadable, like memory the core does not have at all.
//! * Files: the paths `NT_FILE` gives, looked up as they are, or under
//!   `--root`, or `--executable` for the main program; each opened on first
//!   use and checked against the build-id the core recorded (the first page
//!   of every ELF mapping, which the kernel and gcore keep). A file that is
//!   missing or another build is never read from; the one that holds the
//!   interpreter then makes discovery fail with a clear error, and others
//!   are listed by [`CoreSource::unavailable_files`] when a read needed them.
//!
//! Everything from the core and the files is hostile input: checked
//! arithmetic, bounded loops, no panics.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::cell::{Cell, OnceCell};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use lastwords_core::memory::{BadAddress, Memory, plausible};

use crate::core_file::{CoreFile, PF_W, u16_at, u32_at, u64_at};
use crate::elf::{MappedFile, OpenedThrough};
use crate::maps::Mapping;
use crate::source::Source;

/// `AT_PHDR`: where the main program's program headers are mapped.
const AT_PHDR: u64 = 3;
/// `AT_ENTRY`: the main program's entry point.
const AT_ENTRY: u64 = 9;
/// `AT_EXECFN`: the path given to execve, a string on the main stack.
const AT_EXECFN: u64 = 31;

/// Pieces one read may be made of (segments, files) before it gives up.
const MAX_PIECES: usize = 4096;
/// Note segments of an ELF file read for its build-id.
const MAX_NOTE_BYTES: usize = 1 << 16;
/// Arguments recovered from the main stack, and their total size.
const MAX_ARGS: usize = 4096;
const MAX_ARGS_BYTES: usize = 1 << 20;

/// Where to find the files a core names.
#[derive(Clone, Debug, Default)]
pub struct CoreOptions {
    /// The main program, wherever it is now (`--executable`).
    pub executable: Option<PathBuf>,
    /// A directory that stands for `/` (`--root`): the files of a core from
    /// a container, a chroot or another machine.
    pub root: Option<PathBuf>,
}

/// Why a file named by the core is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileProblem {
    /// Nothing could be opened where it was looked for.
    Missing { looked_at: PathBuf, error: String },
    /// A file is there, but not the one the process had mapped.
    Mismatch {
        looked_at: PathBuf,
        in_core: Vec<u8>,
        on_disk: Option<Vec<u8>>,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::Missing { looked_at, error } => {
                write!(f, "is not here ({}: {error})", looked_at.display())
            }
            FileProblem::Mismatch {
                looked_at,
                in_core,
                on_disk,
            } => {
                write!(f, "is not the file the process had: ")?;
                match on_disk {
                    Some(id) => write!(
                        f,
                        "{} has build-id {}, the core recorded {}",
                        looked_at.display(),
                        hex(id),
                        hex(in_core)
                    ),
                    None => write!(
                        f,
                        "{} has no build-id, the core recorded {}",
                        looked_at.display(),
                        hex(in_core)
                    ),
                }
            }
        }
    }
}

/// One distinct file of the core.
struct FileSlot {
    /// As the process saw it.
    path: Vec<u8>,
    /// Where it is mapped from offset 0 (its ELF header, if it is one).
    header_at: Option<u64>,
    opened: OnceCell<Result<(Rc<MappedFile>, OpenedThrough), FileProblem>>,
    /// A read needed this file and could not have it.
    needed: Cell<bool>,
}

/// A core, with the files it names: a [`Source`] and a [`Memory`].
pub struct CoreSource {
    pub core: CoreFile,
    options: CoreOptions,
    mappings: Vec<Mapping>,
    slots: Vec<FileSlot>,
    /// For each of `core.files` (sorted by address), its slot.
    slot_of: Vec<usize>,
    /// The slot of the main program.
    exe_slot: Option<usize>,
}

impl CoreSource {
    /// A parsed core, ready to be read. Fails only when the core names no
    /// process at all.
    pub fn new(core: CoreFile, options: CoreOptions) -> Result<CoreSource, String> {
        if core.pid().is_none() {
            return Err(
                "the core names no process (no NT_PRSTATUS or NT_PRPSINFO note: truncated?)".into(),
            );
        }
        if core.files.is_empty() {
            return Err(
                "the core has no NT_FILE note, so which files were mapped is unknown (truncated, or a core from a kernel older than 3.7?)"
                    .into(),
            );
        }
        let mut slots: Vec<FileSlot> = Vec::new();
        let mut slot_of = Vec::with_capacity(core.files.len());
        let mut index: std::collections::HashMap<&[u8], usize> = Default::default();
        for f in &core.files {
            let slot = match index.get(f.path.as_slice()) {
                Some(&s) => s,
                None => {
                    slots.push(FileSlot {
                        path: f.path.clone(),
                        header_at: None,
                        opened: OnceCell::new(),
                        needed: Cell::new(false),
                    });
                    let s = slots.len().saturating_sub(1);
                    index.insert(&f.path, s);
                    s
                }
            };
            if f.offset == 0
                && let Some(slot) = slots.get_mut(slot)
                && slot.header_at.is_none()
            {
                slot.header_at = Some(f.start);
            }
            slot_of.push(slot);
        }
        drop(index);
        // Mappings as discovery knows them from /proc/PID/maps; the inode is
        // the slot's number (plus one: 0 means anonymous), so that the
        // mappings of one file group together.
        let mappings = core
            .files
            .iter()
            .zip(&slot_of)
            .filter_map(|(f, &slot)| {
                let start = usize::try_from(f.start).ok()?;
                let end = usize::try_from(f.end).ok()?;
                let flags = core
                    .segment_of(f.start)
                    .filter(|s| s.vaddr == f.start)
                    .map(|s| s.flags);
                Some(Mapping {
                    start,
                    end,
                    read: true,
                    write: flags.is_some_and(|fl| fl & PF_W != 0),
                    exec: flags.is_some_and(|fl| fl & 1 != 0),
                    private: true,
                    offset: f.offset,
                    dev: (0, 0),
                    inode: u64::try_from(slot).ok()?.checked_add(1)?,
                    name: f.path.clone(),
                    deleted: f.deleted,
                })
            })
            .collect();
        // The main program: the file whose mapping holds its program headers
        // (or entry point) as the auxiliary vector says.
        let exe_slot = [AT_PHDR, AT_ENTRY]
            .iter()
            .filter_map(|&k| core.aux(k))
            .find_map(|addr| {
                let i = core.files.partition_point(|f| f.start <= addr);
                let i = i.checked_sub(1)?;
                let f = core.files.get(i)?;
                (addr < f.end).then(|| slot_of.get(i).copied()).flatten()
            });
        Ok(CoreSource {
            core,
            options,
            mappings,
            slots,
            slot_of,
            exe_slot,
        })
    }

    /// The main program's path, as the process saw it.
    pub fn executable_path(&self) -> Option<&[u8]> {
        Some(self.slots.get(self.exe_slot?)?.path.as_slice())
    }

    /// Where the file of `slot` is looked for.
    fn location(&self, slot: usize, path: &[u8]) -> PathBuf {
        if Some(slot) == self.exe_slot
            && let Some(exe) = &self.options.executable
        {
            return exe.clone();
        }
        let path = Path::new(OsStr::from_bytes(path));
        match &self.options.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    /// The file of `slot`, opened and checked on first use.
    fn file(&self, slot: usize) -> Result<&(Rc<MappedFile>, OpenedThrough), &FileProblem> {
        let Some(s) = self.slots.get(slot) else {
            return Err(&NO_SLOT);
        };
        s.opened.get_or_init(|| self.open_slot(slot, s)).as_ref()
    }

    fn open_slot(
        &self,
        slot: usize,
        s: &FileSlot,
    ) -> Result<(Rc<MappedFile>, OpenedThrough), FileProblem> {
        let looked_at = self.location(slot, &s.path);
        let file = MappedFile::open(&looked_at).map_err(|e| FileProblem::Missing {
            looked_at: looked_at.clone(),
            error: e.to_string(),
        })?;
        // Only whole reads: a cut note is no build-id.
        let in_core = s.header_at.and_then(|at| {
            build_id(|offset, len| {
                self.core
                    .dumped(at.checked_add(offset)?, len)
                    .filter(|b| b.len() == len)
            })
        });
        let on_disk = build_id(|offset, len| {
            let start = usize::try_from(offset).ok()?;
            file.bytes().get(start..start.checked_add(len)?)
        });
        match in_core {
            None => Ok((Rc::new(file), OpenedThrough::Unchecked)),
            Some(id) if on_disk == Some(id) => Ok((Rc::new(file), OpenedThrough::BuildId)),
            Some(id) => Err(FileProblem::Mismatch {
                looked_at,
                in_core: id.to_vec(),
                on_disk: on_disk.map(<[u8]>::to_vec),
            }),
        }
    }

    /// The slot of a mapping discovery holds (by its synthetic inode).
    fn slot_of_mapping(&self, m: &Mapping) -> Option<usize> {
        usize::try_from(m.inode.checked_sub(1)?).ok()
    }

    /// Why the file of `m` cannot be used, if it cannot.
    pub fn problem(&self, m: &Mapping) -> Option<FileProblem> {
        self.file(self.slot_of_mapping(m)?).err().cloned()
    }

    /// Files that reads needed and could not have (missing, or another
    /// build), with why: for a note after the report.
    pub fn unavailable_files(&self) -> Vec<(String, FileProblem)> {
        self.slots
            .iter()
            .filter(|s| s.needed.get())
            .filter_map(|s| {
                let problem = s.opened.get()?.as_ref().err()?.clone();
                Some((String::from_utf8_lossy(&s.path).into_owned(), problem))
            })
            .collect()
    }

    /// Bytes of the file mapped at `addr`, up to `max`.
    fn file_bytes(&self, addr: u64, max: usize) -> Option<&[u8]> {
        let i = self.core.files.partition_point(|f| f.start <= addr);
        let i = i.checked_sub(1)?;
        let f = self.core.files.get(i)?;
        if addr >= f.end {
            return None;
        }
        let slot = *self.slot_of.get(i)?;
        let (file, _) = match self.file(slot) {
            Ok(f) => f,
            Err(_) => {
                if let Some(s) = self.slots.get(slot) {
                    s.needed.set(true);
                }
                return None;
            }
        };
        let into = addr.checked_sub(f.start)?;
        let at = usize::try_from(f.offset.checked_add(into)?).ok()?;
        let len = usize::try_from(f.end.checked_sub(addr)?)
            .unwrap_or(usize::MAX)
            .min(max);
        let bytes = file.bytes();
        // Past the end of the file a mapping has no bytes (SIGBUS).
        let end = at.checked_add(len)?.min(bytes.len());
        bytes.get(at..end).filter(|b| !b.is_empty())
    }

    /// The bytes at `addr` (up to `max`) from wherever they are: the core,
    /// else the file mapped there. None where neither has them.
    fn piece(&self, addr: u64, max: usize) -> Option<&[u8]> {
        if let Some(b) = self.core.dumped(addr, max) {
            return Some(b);
        }
        if let Some(s) = self.core.segment_of(addr)
            && s.flags & PF_W != 0
            && addr < s.vaddr.saturating_add(s.filesz)
        {
            // Written memory that a truncated core lost.
            return None;
        }
        self.file_bytes(addr, max)
    }

    /// A NUL-terminated string of at most `max` bytes at `addr`.
    pub fn c_string(&self, addr: u64, max: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        for _ in 0..MAX_PIECES {
            let want = max.checked_sub(out.len())?;
            if want == 0 {
                return None;
            }
            let piece = self.piece(at, want)?;
            match piece.iter().position(|&b| b == 0) {
                Some(n) => {
                    out.extend_from_slice(piece.get(..n)?);
                    return Some(out);
                }
                None => {
                    out.extend_from_slice(piece);
                    at = at.checked_add(u64::try_from(piece.len()).ok()?)?;
                }
            }
        }
        None
    }

    /// The command line: `argv` as the process had it, found on the main
    /// thread's stack below the auxiliary vector (the copy in `NT_AUXV`),
    /// else `pr_psargs` (cut at 79 bytes) split at spaces.
    pub fn command_line(&self) -> Vec<Vec<u8>> {
        if let Some(args) = self.argv() {
            return args;
        }
        match &self.core.process {
            Some(p) => p
                .args
                .split(|&b| b == b' ')
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The initial stack is `argc, argv[argc], NULL, envp..., NULL, auxv`;
    /// the auxv is the one the core's `NT_AUXV` holds, and the strings sit
    /// above it, where `AT_EXECFN` points.
    fn argv(&self) -> Option<Vec<Vec<u8>>> {
        let execfn = self.core.aux(AT_EXECFN)?;
        let auxv: Vec<u8> = self
            .core
            .auxv
            .iter()
            .flat_map(|&(k, v)| k.to_le_bytes().into_iter().chain(v.to_le_bytes()))
            .collect();
        if auxv.len() < 32 {
            return None;
        }
        let segment = self.core.segment_of(execfn)?;
        // The stack's bytes, up to the strings.
        let top = execfn.min(segment.present_end());
        let from = top
            .saturating_sub(u64::try_from(MAX_ARGS_BYTES).ok()?.saturating_mul(4))
            .max(segment.vaddr)
            & !7;
        let len = usize::try_from(top.checked_sub(from)?).ok()?;
        let stack = self.core.dumped(from, len)?;
        // The auxv's copy: 8-aligned, the last match below the strings.
        let word = |i: usize| u64_at(stack, i);
        let mut at = len.checked_sub(auxv.len())? & !7;
        while stack.get(at..at.checked_add(auxv.len())?) != Some(auxv.as_slice()) {
            at = at.checked_sub(8)?;
        }
        let auxv_at = at;
        // envp's NULL, envp, then argv's NULL...
        if word(auxv_at.checked_sub(8)?)? != 0 {
            return None;
        }
        let mut i = auxv_at.checked_sub(16)?;
        let mut steps = 0usize;
        while word(i)? != 0 {
            i = i.checked_sub(8)?;
            steps = steps.checked_add(1)?;
            if steps > (1 << 20) {
                return None;
            }
        }
        // ...argv's NULL is at i: argc is the word n+1 below it that equals n.
        let null_at = i;
        let argc = (1..=MAX_ARGS).find(|&n| {
            n.checked_mul(8)
                .and_then(|d| null_at.checked_sub(d.checked_add(8)?))
                .and_then(word)
                == u64::try_from(n).ok()
        })?;
        let first = null_at.checked_sub(argc.checked_mul(8)?)?;
        let mut args = Vec::with_capacity(argc);
        let mut total = 0usize;
        for k in 0..argc {
            let ptr = word(first.checked_add(k.checked_mul(8)?)?)?;
            let arg = self.c_string(ptr, MAX_ARGS_BYTES.saturating_sub(total))?;
            total = total.checked_add(arg.len())?.checked_add(1)?;
            args.push(arg);
        }
        Some(args)
    }
}

/// A placeholder for a slot index out of range (never happens for slots
/// this module made).
static NO_SLOT: FileProblem = FileProblem::Missing {
    looked_at: PathBuf::new(),
    error: String::new(),
};

/// The GNU build-id of an ELF file whose bytes at file offset `o` (up to
/// `len`) `read(o, len)` gives: from its program headers' `PT_NOTE`s, which
/// lie in its first page (the one a core keeps).
pub fn build_id<'a>(read: impl Fn(u64, usize) -> Option<&'a [u8]>) -> Option<&'a [u8]> {
    let header = read(0, 64)?;
    if header.get(..4) != Some(b"\x7fELF") || header.get(4) != Some(&2) {
        return None;
    }
    let phoff = u64_at(header, 32)?;
    let phentsize = usize::from(u16_at(header, 54)?);
    let phnum = usize::from(u16_at(header, 56)?);
    if phentsize != 56 || phnum > 256 {
        return None;
    }
    let table = read(phoff, phnum.checked_mul(56)?)?;
    for ph in table.chunks_exact(56) {
        if u32_at(ph, 0)? != 4 {
            continue;
        }
        let offset = u64_at(ph, 8)?;
        let size = usize::try_from(u64_at(ph, 32)?).ok()?;
        if size > MAX_NOTE_BYTES {
            continue;
        }
        let Some(notes) = read(offset, size) else {
            continue;
        };
        let mut at = 0usize;
        while at < notes.len() {
            let namesz = usize::try_from(u32_at(notes, at)?).ok()?;
            let descsz = usize::try_from(u32_at(notes, at.checked_add(4)?)?).ok()?;
            let kind = u32_at(notes, at.checked_add(8)?)?;
            let name_at = at.checked_add(12)?;
            let desc_at = name_at.checked_add(namesz.checked_next_multiple_of(4)?)?;
            let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
            let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
            if name == b"GNU\0" && kind == 3 && !desc.is_empty() {
                return Some(desc);
            }
            at = desc_at.checked_add(descsz.checked_next_multiple_of(4)?)?;
        }
    }
    None
}

impl Memory for CoreSource {
    /// Not for signal context (files are opened on first use).
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        let mut done = 0usize;
        for _ in 0..MAX_PIECES {
            let Some(rest) = dst.get_mut(done..) else {
                return Err(BadAddress(addr));
            };
            if rest.is_empty() {
                return Ok(());
            }
            let at = addr
                .checked_add(done)
                .and_then(|a| u64::try_from(a).ok())
                .ok_or(BadAddress(addr))?;
            let piece = self.piece(at, rest.len()).ok_or(BadAddress(addr))?;
            let n = piece.len().min(rest.len());
            match (rest.get_mut(..n), piece.get(..n)) {
                (Some(d), Some(s)) if n > 0 => d.copy_from_slice(s),
                _ => return Err(BadAddress(addr)),
            }
            done = done.checked_add(n).ok_or(BadAddress(addr))?;
        }
        if done == dst.len() {
            Ok(())
        } else {
            Err(BadAddress(addr))
        }
    }
}

impl Source for CoreSource {
    type Mem = CoreSource;

    fn pid(&self) -> i32 {
        self.core
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .unwrap_or(0)
    }

    fn live(&self) -> bool {
        false
    }

    fn memory(&self) -> &CoreSource {
        self
    }

    fn mappings(&self) -> &[Mapping] {
        &self.mappings
    }

    fn open(&self, m: &Mapping) -> std::io::Result<(Rc<MappedFile>, OpenedThrough)> {
        let slot = self
            .slot_of_mapping(m)
            .ok_or_else(|| std::io::Error::other("not a mapping of this core"))?;
        match self.file(slot) {
            Ok((file, how)) => Ok((Rc::clone(file), *how)),
            Err(problem) => Err(std::io::Error::other(problem.to_string())),
        }
    }

    fn executable(&self) -> Option<PathBuf> {
        self.executable_path()
            .map(|p| PathBuf::from(OsStr::from_bytes(p)))
    }

    fn tasks(&self) -> HashSet<u32> {
        self.core.threads.iter().map(|t| t.tid).collect()
    }

    fn file_problem(&self, m: &Mapping) -> Option<String> {
        self.problem(m).map(|p| p.to_string())
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::core_file::CoreBytes;
    use crate::core_file::tests::{Builder, note_bytes, nt_file, prpsinfo, prstatus};

    const NT_FILE: u32 = 0x4649_4c45;

    fn with_file(path: &Path, memsz: u64) -> Builder {
        let p = path.as_os_str().as_bytes();
        Builder {
            loads: vec![
                (
                    0x10000,
                    (0..0x2000u32).map(|i| i as u8).collect(),
                    0x2000,
                    6,
                ),
                // The first page of the file, the rest not dumped.
                (
                    0x40000,
                    std::fs::read(path).unwrap()[..0x1000].to_vec(),
                    memsz,
                    4,
                ),
            ],
            notes: vec![
                (b"CORE".to_vec(), 1, prstatus(5, 0)),
                (b"CORE".to_vec(), 3, prpsinfo(5, b"x", b"x")),
                (
                    b"CORE".to_vec(),
                    NT_FILE,
                    nt_file(&[(0x40000, 0x40000 + memsz, 0, p)]),
                ),
            ],
        }
    }

    fn source(bytes: Vec<u8>, options: CoreOptions) -> CoreSource {
        let core = CoreFile::parse(CoreBytes::Owned(bytes), Path::new("/x/core")).unwrap();
        CoreSource::new(core, options).unwrap()
    }

    fn libc() -> PathBuf {
        crate::maps::own_libc().path().unwrap().to_path_buf()
    }

    #[test]
    fn reads_the_core_then_the_file() {
        let lib = libc();
        let data = std::fs::read(&lib).unwrap();
        let s = source(with_file(&lib, 0x8000).build(), CoreOptions::default());
        // From the core, across nothing.
        let mut buf = [0u8; 16];
        s.read_bytes(0x10ff8, &mut buf).unwrap();
        assert_eq!(buf[0], 0xf8);
        assert_eq!(buf[8], 0x00);
        // Across the end of the core's page into the file's bytes.
        let mut buf = vec![0u8; 64];
        s.read_bytes(0x40fe0, &mut buf).unwrap();
        assert_eq!(buf[..], data[0xfe0..0x1020]);
        // Unmapped: an error.
        assert!(s.read_bytes(0x30000, &mut buf).is_err());
        assert!(s.read_bytes(0x40000 + 0x8000 - 8, &mut buf).is_err());
        // The mapping and its file.
        assert_eq!(s.mappings().len(), 1);
        let (_, how) = s.open(&s.mappings()[0]).unwrap();
        assert_eq!(how, OpenedThrough::BuildId);
        assert!(s.unavailable_files().is_empty());
        assert_eq!(s.tasks(), HashSet::from([5]));
        assert_eq!(s.pid(), 5);
        assert_eq!(s.command_line(), vec![b"x".to_vec()]);
    }

    #[test]
    fn another_build_is_refused_and_named() {
        let lib = libc();
        let mut core = with_file(&lib, 0x8000);
        // The core recorded another build-id: change one byte of it.
        let page = &mut core.loads[1].1;
        let id = build_id(|o, l| page.get(o as usize..o as usize + l)).unwrap();
        let at = id.as_ptr() as usize - page.as_ptr() as usize;
        page[at] ^= 0xff;
        let s = source(core.build(), CoreOptions::default());
        let mut buf = [0u8; 8];
        assert!(s.read_bytes(0x41000, &mut buf).is_err());
        let problem = s.problem(&s.mappings()[0]).unwrap();
        assert!(matches!(problem, FileProblem::Mismatch { .. }), "{problem}");
        assert!(problem.to_string().contains("build-id"), "{problem}");
        let listed = s.unavailable_files();
        assert_eq!(listed.len(), 1);
        // Its first page, from the core, still reads.
        s.read_bytes(0x40000, &mut buf).unwrap();
    }

    #[test]
    fn missing_files_and_roots() {
        let lib = libc();
        let s = source(
            with_file(&lib, 0x8000).build(),
            CoreOptions {
                root: Some("/nonexistent-root".into()),
                executable: None,
            },
        );
        let problem = s.problem(&s.mappings()[0]).unwrap();
        assert!(matches!(problem, FileProblem::Missing { .. }));
        assert!(
            problem.to_string().contains("/nonexistent-root/"),
            "{problem}"
        );
        // `/` as the root is the file itself.
        let s = source(
            with_file(&lib, 0x8000).build(),
            CoreOptions {
                root: Some("/".into()),
                executable: None,
            },
        );
        assert_eq!(s.problem(&s.mappings()[0]), None);
    }

    #[test]
    fn the_command_line_comes_from_the_stack() {
        // A stack: argc=2, argv, NULL, one env, NULL, auxv, strings.
        let base = 0x7000_0000u64;
        let mut stack = vec![0u8; 0x1000];
        let strings_at = 0x800usize;
        let strs: &[&[u8]] = &[b"python3\0", b"-c\0", b"A=1\0", b"/usr/bin/python3\0"];
        let mut addrs = Vec::new();
        let mut at = strings_at;
        for s in strs {
            addrs.push(base + at as u64);
            stack[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        }
        let auxv = [(AT_EXECFN, addrs[3]), (AT_PHDR, 0x1234), (6, 4096), (0, 0)];
        let words: Vec<u64> = [2, addrs[0], addrs[1], 0, addrs[2], 0]
            .into_iter()
            .chain(auxv.iter().flat_map(|&(k, v)| [k, v]))
            .collect();
        for (i, w) in words.iter().enumerate() {
            stack[0x400 + 8 * i..0x408 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        let auxv_note: Vec<u8> = auxv
            .iter()
            .flat_map(|&(k, v)| [k, v])
            .flat_map(u64::to_le_bytes)
            .collect();
        let core = Builder {
            loads: vec![(base, stack, 0x1000, 6)],
            notes: vec![
                (b"CORE".to_vec(), 1, prstatus(9, 0)),
                (b"CORE".to_vec(), 6, auxv_note),
                (
                    b"CORE".to_vec(),
                    NT_FILE,
                    nt_file(&[(0x1000, 0x2000, 0, b"/bin/x")]),
                ),
            ],
        };
        let s = source(core.build(), CoreOptions::default());
        assert_eq!(s.command_line(), vec![b"python3".to_vec(), b"-c".to_vec()]);
        let _ = note_bytes;
    }
}
