//! An ELF core file, parsed: its memory segments (`PT_LOAD`) and the notes
//! that describe the process (`NT_PRSTATUS` per thread, `NT_PRPSINFO`,
//! `NT_FILE`, `NT_AUXV`, `NT_SIGINFO`).
//!
//! The same format comes from the kernel (`core_pattern`, and through it
//! systemd-coredump, whose compressed files [`crate::decompress`] opens) and
//! from gdb's `gcore`. They differ in what they leave out: the kernel writes
//! a `PT_LOAD` for every mapping but no bytes (`p_filesz` 0, or one page of
//! ELF headers) for read-only file-backed memory; gcore writes no segment at
//! all for it. Either way `NT_FILE` says which file (and offset) backs each
//! range, and [`crate::core_source`] reads what the core lacks from there.
//!
//! A core is hostile input: it may be truncated anywhere (a full disk, a
//! size limit, a copy cut short), come from another machine, or be garbage.
//! Everything here is bounds-checked and bounded; a segment cut by the end
//! of the file is kept with the bytes that are there, so that what it lacks
//! reads as unreadable memory (a marker in the report), not as an error.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use crate::elf::MappedFile;

/// `e_machine` values of the cores lastwords reads (64-bit little-endian).
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

const ET_CORE: u16 = 4;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// `PF_W`: the segment was writable.
pub const PF_W: u32 = 2;
/// `e_phnum` when the real count is in the first section header's `sh_info`.
const PN_XNUM: u16 = 0xffff;

const NT_PRSTATUS: u32 = 1;
const NT_PRPSINFO: u32 = 3;
const NT_AUXV: u32 = 6;
const NT_SIGINFO: u32 = 0x5349_4749;
const NT_FILE: u32 = 0x4649_4c45;

/// Bounds for hostile input: far above any real process.
const MAX_SEGMENTS: usize = 1 << 21;
const MAX_NOTES: usize = 1 << 20;
const MAX_FILE_ENTRIES: usize = 1 << 21;
const MAX_THREADS: usize = 1 << 17;
const MAX_AUXV: usize = 4096;
/// The largest core file mapped (a mapping costs nothing until read).
const MAX_CORE_FILE: u64 = 1 << 44;

/// Where a core's bytes live: the file mapped, or decompressed in memory.
pub enum CoreBytes {
    Mapped(MappedFile),
    Owned(Vec<u8>),
}

impl CoreBytes {
    pub fn bytes(&self) -> &[u8] {
        match self {
            CoreBytes::Mapped(m) => m.bytes(),
            CoreBytes::Owned(v) => v,
        }
    }
}

/// One `PT_LOAD`: memory of the process at `vaddr`, `memsz` bytes long, of
/// which the first `present` are in the core at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    /// Bytes the core says it holds (`p_filesz`).
    pub filesz: u64,
    /// Bytes it really holds (less than `filesz` in a truncated core).
    pub present: u64,
    pub flags: u32,
}

impl Segment {
    /// The end of the memory the core holds bytes for.
    pub fn present_end(&self) -> u64 {
        self.vaddr.saturating_add(self.present)
    }

    pub fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.memsz)
    }
}

/// One thread (`NT_PRSTATUS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreThread {
    /// The kernel thread id (`pr_pid`).
    pub tid: u32,
    /// `pr_cursig`: the signal that made the process dump core (the kernel
    /// puts it in every thread's note; gcore leaves it 0).
    pub signal: u16,
    /// `pr_reg`, as the machine's `user_regs_struct` (x86-64: 27 words, rip
    /// at 16, rsp at 19; aarch64: x0-x30, sp, pc, pstate). Kept for native
    /// unwinding.
    pub registers: Vec<u64>,
}

/// `NT_PRPSINFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `pr_fname`: the main thread's name (comm), at most 15 bytes.
    pub name: Vec<u8>,
    /// `pr_psargs`: the command line, arguments joined by spaces, cut at 79
    /// bytes.
    pub args: Vec<u8>,
}

/// One `NT_FILE` entry: `start..end` maps `path` from `offset`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRange {
    pub start: u64,
    pub end: u64,
    /// In bytes.
    pub offset: u64,
    /// As the process saw it, without the kernel's ` (deleted)`.
    pub path: Vec<u8>,
    pub deleted: bool,
}

/// A parsed core file.
pub struct CoreFile {
    bytes: CoreBytes,
    /// Where it was read from.
    pub path: PathBuf,
    /// How it was stored: `None` for a plain core, else the compression.
    pub compression: Option<&'static str>,
    pub machine: u16,
    /// `PT_LOAD` segments, sorted by address.
    pub segments: Vec<Segment>,
    /// In the core's order: the thread that took the signal comes first.
    pub threads: Vec<CoreThread>,
    pub process: Option<ProcessInfo>,
    /// `NT_FILE`, sorted by address.
    pub files: Vec<FileRange>,
    /// `NT_AUXV`: (type, value) pairs.
    pub auxv: Vec<(u64, u64)>,
    /// `si_signo` of the first `NT_SIGINFO` (the signalled thread's).
    pub siginfo_signal: Option<i32>,
    /// Bytes of memory the segments promise but the file lacks.
    pub missing_bytes: u64,
    /// Notes that could not be read (cut, or malformed), skipped.
    pub bad_notes: usize,
}

/// Why a file is not a core lastwords can read: one line for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreError(pub String);

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CoreError {}

fn bad(what: impl Into<String>) -> CoreError {
    CoreError(what.into())
}

/// Little-endian fields at checked offsets.
fn slice(b: &[u8], at: usize, len: usize) -> Option<&[u8]> {
    b.get(at..at.checked_add(len)?)
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(slice(b, at, 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(slice(b, at, 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(slice(b, at, 8)?.try_into().ok()?))
}

fn usize_of(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// A NUL-terminated (or full-length) byte string.
fn c_string(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    b.get(..end).unwrap_or(&[]).to_vec()
}

/// One ELF note.
struct Note<'a> {
    name: &'a [u8],
    kind: u32,
    desc: &'a [u8],
}

/// The notes of one `PT_NOTE` segment, as far as they are whole; the second
/// value counts the ones that were not (the segment cut, a size that runs
/// past its end).
fn notes(data: &[u8], limit: usize) -> (Vec<Note<'_>>, usize) {
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut bad = 0usize;
    while at < data.len() && out.len() < limit {
        let (Some(namesz), Some(descsz), Some(kind)) = (
            u32_at(data, at),
            u32_at(data, at.saturating_add(4)),
            u32_at(data, at.saturating_add(8)),
        ) else {
            bad = bad.saturating_add(1);
            break;
        };
        let parsed = (|| {
            let namesz = usize::try_from(namesz).ok()?;
            let descsz = usize::try_from(descsz).ok()?;
            let name_at = at.checked_add(12)?;
            let desc_at = name_at.checked_add(namesz.checked_next_multiple_of(4)?)?;
            let next = desc_at.checked_add(descsz.checked_next_multiple_of(4)?)?;
            let name = slice(data, name_at, namesz)?;
            let desc = slice(data, desc_at, descsz)?;
            Some((name, desc, next))
        })();
        match parsed {
            Some((name, desc, next)) => {
                // The name is NUL-terminated in its size.
                let name = name.strip_suffix(b"\0").unwrap_or(name);
                out.push(Note { name, kind, desc });
                at = next;
            }
            None => {
                bad = bad.saturating_add(1);
                break;
            }
        }
    }
    (out, bad)
}

impl CoreFile {
    /// Open `path`: a core, or one compressed by systemd-coredump (`.zst`,
    /// `.lz4`, `.xz`, recognised by their magic numbers).
    pub fn open(path: &Path) -> Result<CoreFile, CoreError> {
        let mapped = MappedFile::open_at_most(path, MAX_CORE_FILE)
            .map_err(|e| bad(format!("cannot open it: {e}")))?;
        match crate::decompress::format_of(mapped.bytes()) {
            Some(format) => {
                let bytes = crate::decompress::decompress(format, mapped.bytes())
                    .map_err(|e| bad(format!("cannot decompress it ({}): {e}", format.name())))?;
                drop(mapped);
                let mut core = CoreFile::parse(CoreBytes::Owned(bytes), path)?;
                core.compression = Some(format.name());
                Ok(core)
            }
            None => CoreFile::parse(CoreBytes::Mapped(mapped), path),
        }
    }

    /// Parse the headers and notes of a core. Never panics; bounded.
    pub fn parse(bytes: CoreBytes, path: &Path) -> Result<CoreFile, CoreError> {
        let data = bytes.bytes();
        if data.get(..4) != Some(b"\x7fELF") {
            return Err(bad("not an ELF file"));
        }
        match (data.get(4), data.get(5)) {
            (Some(2), Some(1)) => {}
            (Some(1), _) => {
                return Err(bad(
                    "a 32-bit core; lastwords reads cores of 64-bit processes",
                ));
            }
            _ => {
                return Err(bad(
                    "not a 64-bit little-endian ELF file (lastwords reads x86-64 and aarch64 cores)",
                ));
            }
        }
        let e_type = u16_at(data, 16).ok_or_else(|| bad("truncated ELF header"))?;
        if e_type != ET_CORE {
            return Err(bad(format!(
                "an ELF file of type {e_type}, not a core (type 4){}",
                if e_type == 2 || e_type == 3 {
                    ": an executable or a library, not a core"
                } else {
                    ""
                }
            )));
        }
        let machine = u16_at(data, 18).ok_or_else(|| bad("truncated ELF header"))?;
        if machine != EM_X86_64 && machine != EM_AARCH64 {
            return Err(bad(format!(
                "a core of machine type {machine}; lastwords reads x86-64 (62) and aarch64 (183) cores"
            )));
        }
        let header = (|| {
            let phoff = usize_of(u64_at(data, 32)?)?;
            let shoff = usize_of(u64_at(data, 40)?)?;
            let phentsize = usize::from(u16_at(data, 54)?);
            let phnum = u16_at(data, 56)?;
            let shentsize = usize::from(u16_at(data, 58)?);
            Some((phoff, shoff, phentsize, phnum, shentsize))
        })()
        .ok_or_else(|| bad("truncated ELF header"))?;
        let (phoff, shoff, phentsize, phnum, shentsize) = header;
        if phentsize != 56 {
            return Err(bad(format!(
                "program header entries of {phentsize} bytes, not 56"
            )));
        }
        // More than 65534 segments: the count is in section header 0.
        let count = if phnum == PN_XNUM {
            if shentsize != 64 {
                return Err(bad("PN_XNUM without a section header"));
            }
            u32_at(data, shoff.saturating_add(44))
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| bad("PN_XNUM, but the section header is cut"))?
        } else {
            usize::from(phnum)
        };
        if count > MAX_SEGMENTS {
            return Err(bad(format!("{count} program headers")));
        }
        let table_len = count
            .checked_mul(56)
            .ok_or_else(|| bad("program header table overflows"))?;
        let table = slice(data, phoff, table_len).ok_or_else(|| {
            bad(format!(
                "truncated: the program headers ({count} at offset {phoff}) end past the file's {} bytes",
                data.len()
            ))
        })?;
        let file_len = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let mut segments = Vec::with_capacity(count);
        let mut note_ranges = Vec::new();
        let mut missing_bytes = 0u64;
        for ph in table.chunks_exact(56) {
            let field = |at: usize| u64_at(ph, at).unwrap_or(0);
            let kind = u32_at(ph, 0).unwrap_or(0);
            let flags = u32_at(ph, 4).unwrap_or(0);
            let (offset, vaddr, filesz, memsz) = (field(8), field(16), field(32), field(40));
            match kind {
                PT_LOAD => {
                    if vaddr.checked_add(memsz).is_none() || filesz > memsz {
                        continue;
                    }
                    let present = file_len.saturating_sub(offset).min(filesz);
                    missing_bytes = missing_bytes.saturating_add(filesz.saturating_sub(present));
                    segments.push(Segment {
                        vaddr,
                        memsz,
                        offset,
                        filesz,
                        present,
                        flags,
                    });
                }
                PT_NOTE => note_ranges.push((offset, filesz)),
                _ => {}
            }
        }
        segments.sort_by_key(|s| s.vaddr);

        let mut core = CoreFile {
            path: path.to_path_buf(),
            compression: None,
            machine,
            segments,
            threads: Vec::new(),
            process: None,
            files: Vec::new(),
            auxv: Vec::new(),
            siginfo_signal: None,
            missing_bytes,
            bad_notes: 0,
            bytes: CoreBytes::Owned(Vec::new()),
        };
        let mut seen_notes = 0usize;
        for (offset, size) in note_ranges {
            // A note segment cut by the end of the file: its whole notes.
            let Some(start) = usize_of(offset).filter(|&o| o <= data.len()) else {
                core.bad_notes = core.bad_notes.saturating_add(1);
                continue;
            };
            let len = usize_of(size)
                .unwrap_or(usize::MAX)
                .min(data.len().saturating_sub(start));
            let Some(segment) = slice(data, start, len) else {
                continue;
            };
            let (found, cut) = notes(segment, MAX_NOTES.saturating_sub(seen_notes));
            seen_notes = seen_notes.saturating_add(found.len());
            core.bad_notes = core.bad_notes.saturating_add(cut);
            for note in found {
                core.take_note(&note);
            }
        }
        core.files.sort_by_key(|f| f.start);
        core.bytes = bytes;
        Ok(core)
    }

    fn take_note(&mut self, note: &Note<'_>) {
        let ok = match (note.name, note.kind) {
            (b"CORE", NT_PRSTATUS) => self.prstatus(note.desc),
            (b"CORE", NT_PRPSINFO) => self.prpsinfo(note.desc),
            (b"CORE", NT_FILE) => self.nt_file(note.desc),
            (b"CORE", NT_AUXV) => self.nt_auxv(note.desc),
            (b"CORE", NT_SIGINFO) => {
                if self.siginfo_signal.is_none() {
                    self.siginfo_signal = u32_at(note.desc, 0).map(|s| s as i32);
                }
                true
            }
            _ => true,
        };
        if !ok {
            self.bad_notes = self.bad_notes.saturating_add(1);
        }
    }

    /// `struct elf_prstatus`: `pr_cursig` at 12, `pr_pid` at 32, `pr_reg`
    /// at 112 (x86-64: 27 words; aarch64: 34).
    fn prstatus(&mut self, d: &[u8]) -> bool {
        if self.threads.len() >= MAX_THREADS {
            return true;
        }
        let words = if self.machine == EM_AARCH64 { 34 } else { 27 };
        let (Some(signal), Some(tid)) = (u16_at(d, 12), u32_at(d, 32)) else {
            return false;
        };
        let registers = (0..words)
            .map_while(|i: usize| u64_at(d, i.checked_mul(8)?.checked_add(112)?))
            .collect::<Vec<_>>();
        if registers.len() != words {
            return false;
        }
        self.threads.push(CoreThread {
            tid,
            signal,
            registers,
        });
        true
    }

    /// `struct elf_prpsinfo` (64-bit): pids at 24, `pr_fname[16]` at 40,
    /// `pr_psargs[80]` at 56.
    fn prpsinfo(&mut self, d: &[u8]) -> bool {
        let info = (|| {
            Some(ProcessInfo {
                uid: u32_at(d, 16)?,
                gid: u32_at(d, 20)?,
                pid: u32_at(d, 24)?,
                ppid: u32_at(d, 28)?,
                name: c_string(slice(d, 40, 16)?),
                args: c_string(slice(d, 56, 80)?),
            })
        })();
        match info {
            Some(info) => {
                self.process.get_or_insert(info);
                true
            }
            None => false,
        }
    }

    /// `NT_FILE`: count, page size, `count` × (start, end, page offset),
    /// then `count` NUL-terminated paths.
    fn nt_file(&mut self, d: &[u8]) -> bool {
        let (Some(count), Some(page)) = (u64_at(d, 0), u64_at(d, 8)) else {
            return false;
        };
        let Some(count) = usize_of(count).filter(|&c| c <= MAX_FILE_ENTRIES) else {
            return false;
        };
        let Some(names_at) = count.checked_mul(24).and_then(|n| n.checked_add(16)) else {
            return false;
        };
        let Some(mut names) = d.get(names_at..).map(|n| n.split(|&b| b == 0)) else {
            return false;
        };
        let mut whole = true;
        for i in 0..count {
            let entry = (|| {
                let at = i.checked_mul(24)?.checked_add(16)?;
                let start = u64_at(d, at)?;
                let end = u64_at(d, at.checked_add(8)?)?;
                let offset = u64_at(d, at.checked_add(16)?)?.checked_mul(page)?;
                Some((start, end, offset))
            })();
            let name = names.next();
            let (Some((start, end, offset)), Some(name)) = (entry, name) else {
                whole = false;
                break;
            };
            if end <= start || self.files.len() >= MAX_FILE_ENTRIES {
                whole = false;
                continue;
            }
            const DELETED: &[u8] = b" (deleted)";
            let (path, deleted) = match name.strip_suffix(DELETED) {
                Some(p) => (p.to_vec(), true),
                None => (name.to_vec(), false),
            };
            self.files.push(FileRange {
                start,
                end,
                offset,
                path,
                deleted,
            });
        }
        whole
    }

    fn nt_auxv(&mut self, d: &[u8]) -> bool {
        self.auxv = d
            .chunks_exact(16)
            .take(MAX_AUXV)
            .map(|p| (u64_at(p, 0).unwrap_or(0), u64_at(p, 8).unwrap_or(0)))
            .take_while(|&(kind, _)| kind != 0)
            .collect();
        true
    }

    /// The core's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.bytes()
    }

    /// The value of auxiliary vector entry `kind` (`AT_PHDR` 3, `AT_ENTRY`
    /// 9, `AT_EXECFN` 31).
    pub fn aux(&self, kind: u64) -> Option<u64> {
        self.auxv.iter().find(|(k, _)| *k == kind).map(|(_, v)| *v)
    }

    /// The process id: `NT_PRPSINFO`'s, else (a core without it) the
    /// first thread's id (`pr_pid` of `NT_PRSTATUS` is the thread's, and
    /// the first thread is the one that took the signal, not always the
    /// main one).
    pub fn pid(&self) -> Option<u32> {
        self.process
            .as_ref()
            .map(|p| p.pid)
            .filter(|&p| p != 0)
            .or(self.threads.first().map(|t| t.tid))
            .filter(|&p| p != 0)
    }

    /// The signal that made the process dump core, with the thread that
    /// took it (the kernel writes that thread's note first); None for a
    /// core of a process that was not killed (gcore).
    pub fn fatal_signal(&self) -> Option<(i32, u32)> {
        let first = self.threads.first()?;
        (first.signal != 0).then_some((i32::from(first.signal), first.tid))
    }

    /// The segment holding `addr`, if any (the last one starting at or
    /// below it, when a hostile core has them overlap).
    pub fn segment_of(&self, addr: u64) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.vaddr <= addr);
        let s = self.segments.get(i.checked_sub(1)?)?;
        (addr < s.end()).then_some(s)
    }

    /// The `NT_FILE` entry holding `addr`, if any.
    pub fn file_of(&self, addr: u64) -> Option<&FileRange> {
        let i = self.files.partition_point(|f| f.start <= addr);
        let f = self.files.get(i.checked_sub(1)?)?;
        (addr < f.end).then_some(f)
    }

    /// Bytes the core holds at `addr` (up to `max`), from the segment that
    /// holds it: none where the segment has no bytes in the file.
    pub fn dumped(&self, addr: u64, max: usize) -> Option<&[u8]> {
        let s = self.segment_of(addr)?;
        if addr >= s.present_end() {
            return None;
        }
        let into = addr.checked_sub(s.vaddr)?;
        let available = usize_of(s.present.checked_sub(into)?)?.min(max);
        let at = usize_of(s.offset.checked_add(into)?)?;
        slice(self.bytes(), at, available)
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects
)]
pub(crate) mod tests {
    use super::*;

    /// A small synthetic x86-64 core: builder for tests here and in
    /// core_source.
    #[derive(Default)]
    pub struct Builder {
        pub loads: Vec<(u64, Vec<u8>, u64, u32)>, // vaddr, bytes, memsz, flags
        pub notes: Vec<(Vec<u8>, u32, Vec<u8>)>,
    }

    pub fn note_bytes(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        let mut name = name.to_vec();
        name.push(0);
        n.extend((name.len() as u32).to_le_bytes());
        n.extend((desc.len() as u32).to_le_bytes());
        n.extend(kind.to_le_bytes());
        n.extend(&name);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n.extend(desc);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    }

    pub fn prstatus(tid: u32, sig: u16) -> Vec<u8> {
        let mut d = vec![0u8; 336];
        d[12..14].copy_from_slice(&sig.to_le_bytes());
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        d
    }

    pub fn prpsinfo(pid: u32, name: &[u8], args: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 136];
        d[24..28].copy_from_slice(&pid.to_le_bytes());
        d[40..40 + name.len()].copy_from_slice(name);
        d[56..56 + args.len()].copy_from_slice(args);
        d
    }

    pub fn nt_file(entries: &[(u64, u64, u64, &[u8])]) -> Vec<u8> {
        let mut d = Vec::new();
        d.extend((entries.len() as u64).to_le_bytes());
        d.extend(4096u64.to_le_bytes());
        for (s, e, o, _) in entries {
            d.extend(s.to_le_bytes());
            d.extend(e.to_le_bytes());
            d.extend((o / 4096).to_le_bytes());
        }
        for (_, _, _, p) in entries {
            d.extend(*p);
            d.push(0);
        }
        d
    }

    impl Builder {
        pub fn build(&self) -> Vec<u8> {
            let phnum = self.loads.len() + 1;
            let mut notes = Vec::new();
            for (name, kind, desc) in &self.notes {
                notes.extend(note_bytes(name, *kind, desc));
            }
            let mut out = vec![0u8; 64];
            out[..4].copy_from_slice(b"\x7fELF");
            out[4] = 2;
            out[5] = 1;
            out[6] = 1;
            out[16..18].copy_from_slice(&4u16.to_le_bytes());
            out[18..20].copy_from_slice(&62u16.to_le_bytes());
            out[32..40].copy_from_slice(&64u64.to_le_bytes());
            out[52..54].copy_from_slice(&64u16.to_le_bytes());
            out[54..56].copy_from_slice(&56u16.to_le_bytes());
            out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
            let mut offset = 64 + 56 * phnum as u64;
            let mut ph = Vec::new();
            let mut phdr =
                |kind: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
                    ph.extend(kind.to_le_bytes());
                    ph.extend(flags.to_le_bytes());
                    ph.extend(off.to_le_bytes());
                    ph.extend(vaddr.to_le_bytes());
                    ph.extend(0u64.to_le_bytes());
                    ph.extend(filesz.to_le_bytes());
                    ph.extend(memsz.to_le_bytes());
                    ph.extend(1u64.to_le_bytes());
                };
            phdr(PT_NOTE, 4, offset, 0, notes.len() as u64, 0);
            offset += notes.len() as u64;
            let mut body = notes.clone();
            for (vaddr, bytes, memsz, flags) in &self.loads {
                phdr(PT_LOAD, *flags, offset, *vaddr, bytes.len() as u64, *memsz);
                offset += bytes.len() as u64;
                body.extend(bytes);
            }
            out.extend(ph);
            out.extend(body);
            out
        }
    }

    pub fn sample() -> Builder {
        Builder {
            loads: vec![
                (0x10000, vec![0xaa; 0x1000], 0x1000, 6),
                (0x20000, vec![0xbb; 0x1000], 0x3000, 4),
            ],
            notes: vec![
                (b"CORE".to_vec(), NT_PRSTATUS, prstatus(77, 11)),
                (
                    b"CORE".to_vec(),
                    NT_PRPSINFO,
                    prpsinfo(77, b"python3", b"python3 x.py"),
                ),
                (b"CORE".to_vec(), NT_PRSTATUS, prstatus(78, 11)),
                (
                    b"CORE".to_vec(),
                    NT_FILE,
                    nt_file(&[(0x20000, 0x23000, 0, b"/lib/libx.so (deleted)")]),
                ),
                (
                    b"CORE".to_vec(),
                    NT_AUXV,
                    [3u64, 0x20040, 0, 0]
                        .iter()
                        .flat_map(|w| w.to_le_bytes())
                        .collect(),
                ),
            ],
        }
    }

    fn parse(bytes: Vec<u8>) -> Result<CoreFile, CoreError> {
        CoreFile::parse(CoreBytes::Owned(bytes), Path::new("/x/core"))
    }

    #[test]
    fn parses_a_synthetic_core() {
        let core = parse(sample().build()).unwrap();
        assert_eq!(core.machine, EM_X86_64);
        assert_eq!(core.segments.len(), 2);
        assert_eq!(
            core.threads.iter().map(|t| t.tid).collect::<Vec<_>>(),
            [77, 78]
        );
        assert_eq!(core.pid(), Some(77));
        assert_eq!(core.fatal_signal(), Some((11, 77)));
        let p = core.process.as_ref().unwrap();
        assert_eq!(p.name, b"python3");
        assert_eq!(p.args, b"python3 x.py");
        assert_eq!(core.files.len(), 1);
        assert_eq!(core.files[0].path, b"/lib/libx.so");
        assert!(core.files[0].deleted);
        assert_eq!(core.aux(3), Some(0x20040));
        assert_eq!(core.dumped(0x10ff8, 100).unwrap(), &[0xaa; 8]);
        assert_eq!(core.dumped(0x21000, 8), None);
        assert!(core.file_of(0x22fff).is_some());
        assert!(core.file_of(0x23000).is_none());
        assert_eq!(core.missing_bytes, 0);
        assert_eq!(core.bad_notes, 0);
    }

    #[test]
    fn refuses_what_is_not_a_core() {
        let mut not_core = sample().build();
        not_core[16] = 2;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "not an ELF"),
            (b"\x7fELF".to_vec(), "64-bit"),
            (
                {
                    let mut b = sample().build();
                    b[4] = 1;
                    b
                },
                "32-bit",
            ),
            (
                {
                    let mut b = sample().build();
                    b[18] = 3;
                    b
                },
                "machine type 3",
            ),
            (not_core, "not a core"),
            (sample().build()[..100].to_vec(), "truncated"),
        ];
        for (bytes, says) in cases {
            let e = parse(bytes).err().unwrap();
            assert!(e.0.contains(says), "{e} / {says}");
        }
    }

    #[test]
    fn truncated_cores_keep_what_they_have() {
        let whole = sample().build();
        for n in 0..whole.len() {
            let Ok(core) = parse(whole[..n].to_vec()) else {
                continue;
            };
            // Whatever survived is consistent.
            for s in &core.segments {
                assert!(s.present <= s.filesz);
            }
            let _ = core.dumped(0x10000, 0x1000);
            let _ = core.pid();
        }
        // Cut inside the second segment: half of it is missing.
        let core = parse(whole[..whole.len() - 0x800].to_vec()).unwrap();
        assert_eq!(core.missing_bytes, 0x800);
        assert_eq!(core.dumped(0x20000, 0x1000).unwrap().len(), 0x800);
        assert_eq!(core.dumped(0x20800, 8), None);
    }
}
