//! A sorted index of an object's symbols, kept on disk between dumps.
//!
//! Naming a frame needs the symbol with the highest start among those that
//! contain its address. ELF symbol tables are not sorted, so without an
//! index every dump scans them whole: libpython's `.symtab` and libc's
//! detached debug file hold about 25,000 symbols, whose scan (mostly first
//! touches of their pages) is the largest part of `dump --native` after
//! process start. The index holds the same candidates, sorted, and answers
//! a lookup with a binary search; it is built once per set of files (the
//! object and its debug file, identified by device, inode, size and
//! modification time) and kept under `$XDG_CACHE_HOME/lastwords/symbols`
//! (`~/.cache/...` without it), the newest [`KEPT_INDEXES`] of them.
//! `LASTWORDS_SYMBOL_CACHE=0` turns the cache off (the tables are then
//! scanned as before).
//!
//! The answers equal those of `ElfImage::lookup` over the same tables (a
//! test compares them on real libraries). An index file is untrusted like
//! any file: every offset is checked, a lookup walks a bounded number of
//! entries, and a file that does not parse is rebuilt.
//!
//! The format's version is in `MAGIC` and in the file names (`v1`): bump
//! both when the layout or the choice of symbol changes.
//!
//! Layout (little-endian): a header of `MAGIC`, the entry count and the
//! length of the names; the entries, 32 bytes each, sorted by (start, rank):
//! start, size, the highest end of any entry up to this one (so that a walk
//! down from an address can stop where nothing below reaches it), the offset
//! and length of the name; then the names.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use lastwords_core::unwind::symbols::{ElfImage, Table};

use crate::core_file::{u32_at, u64_at};
use crate::elf::MappedFile;
use crate::native::MAX_NAME;

const MAGIC: &[u8; 8] = b"LWSYMIX1";
const HEADER: usize = 24;
const ENTRY: usize = 32;
/// Entries a lookup walks down from its address, at most.
const MAX_WALK: usize = 1 << 16;
/// The most symbols an index holds (libpython and libc's debug file have
/// 10,000-25,000), and the most bytes of names.
const MAX_ENTRIES: usize = 1 << 22;
const MAX_NAMES_LEN: usize = 1 << 28;

/// One candidate symbol while an index is built.
struct Candidate<'d> {
    start: u64,
    size: u64,
    rank: (u8, u64),
    name: &'d [u8],
}

/// The bytes of an index of the candidates of `tables` (the order of the
/// tables sets the rank between tables of the same kind, as the scan
/// does). None where the tables are too large to index (hostile or absurd
/// files): the scan, which allocates nothing, serves those.
pub fn build(tables: &[(&ElfImage<'_>, Table)], exec: &[(u64, u64)]) -> Option<Vec<u8>> {
    build_at_most(tables, exec, MAX_ENTRIES, MAX_NAMES_LEN)
}

/// [`build`] with its bounds as parameters.
fn build_at_most(
    tables: &[(&ElfImage<'_>, Table)],
    exec: &[(u64, u64)],
    max_entries: usize,
    max_names_len: usize,
) -> Option<Vec<u8>> {
    let mut all: Vec<Candidate<'_>> = Vec::new();
    let mut names_len = 0usize;
    let mut too_large = false;
    for &(image, table) in tables {
        image.for_each_candidate(table, exec, |start, size, rank, name| {
            // Names are printed cut at MAX_NAME bytes: keep no more.
            let name = name.get(..name.len().min(MAX_NAME)).unwrap_or(&[]);
            names_len = names_len.saturating_add(name.len());
            if all.len() >= max_entries || names_len > max_names_len {
                too_large = true;
                return;
            }
            all.push(Candidate {
                start,
                size,
                rank,
                name,
            });
        });
    }
    if too_large {
        return None;
    }
    // A stable sort: at equal (start, rank), the earlier table first, as a
    // scan keeps the first it met.
    all.sort_by_key(|c| (c.start, c.rank));
    let mut out = Vec::with_capacity(
        HEADER
            .saturating_add(all.len().saturating_mul(ENTRY))
            .saturating_add(names_len),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(all.len() as u64).to_le_bytes());
    out.extend_from_slice(&(names_len as u64).to_le_bytes());
    let mut max_end = 0u64;
    // Below MAX_NAMES_LEN, so every offset and length fits in 32 bits.
    let mut name_at = 0u32;
    for c in &all {
        max_end = max_end.max(end_of(c.start, c.size));
        let len = u32::try_from(c.name.len()).ok()?;
        out.extend_from_slice(&c.start.to_le_bytes());
        out.extend_from_slice(&c.size.to_le_bytes());
        out.extend_from_slice(&max_end.to_le_bytes());
        out.extend_from_slice(&name_at.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        name_at = name_at.checked_add(len)?;
    }
    for c in &all {
        out.extend_from_slice(c.name);
    }
    Some(out)
}

/// The first address past a symbol (a zero-size one holds only its start).
fn end_of(start: u64, size: u64) -> u64 {
    start.saturating_add(size.max(1))
}

/// A parsed index over its bytes.
pub struct Index<'d> {
    entries: &'d [u8],
    names: &'d [u8],
}

impl<'d> Index<'d> {
    /// None unless the bytes are a whole index.
    pub fn parse(data: &'d [u8]) -> Option<Self> {
        let magic = data.get(..MAGIC.len())?;
        if magic != MAGIC {
            return None;
        }
        let count = usize::try_from(u64_at(data, 8)?).ok()?;
        let names_len = usize::try_from(u64_at(data, 16)?).ok()?;
        let entries_len = count.checked_mul(ENTRY)?;
        let names_at = HEADER.checked_add(entries_len)?;
        if names_at.checked_add(names_len)? != data.len() {
            return None;
        }
        Some(Index {
            entries: data.get(HEADER..names_at)?,
            names: data.get(names_at..)?,
        })
    }

    fn count(&self) -> usize {
        self.entries.len() / ENTRY
    }

    /// (start, size, max_end, name) of entry `i`.
    fn entry(&self, i: usize) -> Option<(u64, u64, u64, &'d [u8])> {
        let at = i.checked_mul(ENTRY)?;
        let e = self.entries.get(at..at.checked_add(ENTRY)?)?;
        let name_at = usize::try_from(u32_at(e, 24)?).ok()?;
        let name_len = usize::try_from(u32_at(e, 28)?).ok()?;
        let name = self.names.get(name_at..name_at.checked_add(name_len)?)?;
        Some((u64_at(e, 0)?, u64_at(e, 8)?, u64_at(e, 16)?, name))
    }

    /// The start and name of the symbol naming file address `vaddr`: the
    /// highest start among the symbols containing it, and at that start the
    /// first by rank that contains it.
    pub fn lookup(&self, vaddr: u64) -> Option<(u64, &'d [u8])> {
        // The entries starting at or below vaddr: [0, upto).
        let (mut lo, mut hi) = (0usize, self.count());
        while lo < hi {
            let mid = lo.checked_add(hi.checked_sub(lo)? / 2)?;
            if self.entry(mid)?.0 <= vaddr {
                lo = mid.checked_add(1)?;
            } else {
                hi = mid;
            }
        }
        let mut found: Option<(u64, &'d [u8])> = None;
        let mut i = lo;
        for _ in 0..MAX_WALK {
            let Some(below) = i.checked_sub(1) else {
                break;
            };
            i = below;
            let (start, size, max_end, name) = self.entry(i)?;
            if let Some((chosen, _)) = found {
                if start < chosen {
                    break;
                }
            } else if max_end <= vaddr {
                // Nothing at or below this entry reaches vaddr.
                break;
            }
            if vaddr < end_of(start, size) {
                // Same start as the chosen one (or the first found): entries
                // of one start are in rank order, so the lowest index wins.
                found = Some((start, name));
            }
        }
        found
    }
}

/// The directory of the cache, if there is one: off when
/// `LASTWORDS_SYMBOL_CACHE=0`.
pub fn cache_dir() -> Option<PathBuf> {
    if std::env::var_os("LASTWORDS_SYMBOL_CACHE").is_some_and(|v| v == "0") {
        return None;
    }
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    if !base.is_absolute() {
        return None;
    }
    Some(base.join("lastwords").join("symbols"))
}

/// The file name of the index of these files (which tables an index holds
/// follows from them).
pub fn file_name(file: &MappedFile, debug: Option<&MappedFile>) -> String {
    let mut name = String::from("v1");
    for f in [Some(file), debug].into_iter().flatten() {
        name.push_str(&format!(
            "-{:x}.{:x}.{:x}.{:x}",
            f.dev,
            f.inode,
            f.bytes().len(),
            f.mtime_ns
        ));
    }
    name.push_str(if debug.is_some() { ".d" } else { ".n" });
    name
}

/// The index at `path`, mapped, if it parses.
pub fn open(path: &Path) -> Option<MappedFile> {
    let file = MappedFile::open(path).ok()?;
    Index::parse(file.bytes())?;
    Some(file)
}

/// Whether indexes can be kept in `dir` (made if missing).
pub fn writable(dir: &Path) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: access() reads a NUL-terminated path and nothing else.
    unsafe { libc::access(path.as_ptr(), libc::W_OK) == 0 }
}

/// Write `bytes` to `path` whole or not at all (a private file renamed into
/// place); failures are ignored: the cache is only a speed-up.
pub fn store(path: &Path, bytes: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(bytes));
    if written.is_err() || std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        return;
    }
    prune(dir, KEPT_INDEXES);
}

/// How many indexes the cache keeps: a new build of a library (an upgrade,
/// another virtualenv's python) adds one, 0.3-0.5 MB; the oldest go first.
pub const KEPT_INDEXES: usize = 64;

/// Leave the `keep` newest indexes in `dir` (by modification time: when
/// they were built) and remove the others, with any temporary file of a
/// writer that died more than an hour ago. Runs when an index is added, so
/// that the cache does not grow with every library version it ever saw; an
/// index removed while still of use is built again the next time.
fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let mut indexes = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(modified) = meta.modified() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        if name.starts_with('.') && name.ends_with(".tmp") {
            let age = now.duration_since(modified).unwrap_or_default();
            if age > std::time::Duration::from_secs(3600) {
                let _ = std::fs::remove_file(entry.path());
            }
        } else if name.starts_with("v1-") {
            indexes.push((modified, entry.path()));
        }
    }
    if indexes.len() <= keep {
        return;
    }
    indexes.sort_unstable_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, path) in indexes.into_iter().skip(keep) {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
#[allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::arithmetic_side_effects,
    clippy::panic
)]
mod tests {
    use super::*;
    use lastwords_core::unwind::symbols::{Pass, Query};

    /// The `[start, end)` of each of the file's loaded segments (as the
    /// candidates' segment filter takes them).
    fn loads_of(elf: &ElfImage<'_>) -> Vec<(u64, u64)> {
        let mut loads = Vec::new();
        elf.for_each_load(|(_, vaddr, _, memsz)| {
            loads.push((vaddr, vaddr + memsz));
            true
        });
        loads
    }

    /// Every address of every executable segment of a real library (in
    /// steps), named by the index and by the scan of the same tables: the
    /// same answers.
    fn compare_with_scan(path: &str, debug: Option<&Path>) {
        let Ok(file) = MappedFile::open(Path::new(path)) else {
            panic!("{path} cannot be read");
        };
        let elf = ElfImage::parse(file.bytes()).unwrap();
        let exec = loads_of(&elf);
        let debug = debug.map(|d| MappedFile::open(d).unwrap());
        let debug_elf = debug.as_ref().map(|d| ElfImage::parse(d.bytes()).unwrap());
        let mut tables = vec![(&elf, Table::Dynsym), (&elf, Table::Symtab)];
        if let Some(d) = debug_elf.as_ref() {
            tables.push((d, Table::Symtab));
        }
        let bytes = build(&tables, &exec).unwrap();
        let index = Index::parse(&bytes).unwrap();
        let mut checked = 0;
        let mut named = 0;
        for &(s, e) in &exec {
            let mut addrs: Vec<u64> = (s..e).step_by(97).collect();
            // Starts and the addresses around them, where choices are made.
            elf.for_each_candidate(Table::Dynsym, &exec, |start, size, _, _| {
                addrs.extend([
                    start.saturating_sub(1),
                    start,
                    start + size.max(1) - 1,
                    start + size,
                ]);
            });
            for chunk in addrs.chunks(64) {
                let mut queries: Vec<Query<'_>> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| Query::new(a, i))
                    .collect();
                for &(image, table) in &tables {
                    image.lookup(table, &exec, &mut queries, Pass::Both);
                }
                for q in &queries {
                    let scan = match (q.start, q.name) {
                        (Some(start), Some((name, _))) => {
                            Some((start, name.get(..name.len().min(MAX_NAME)).unwrap()))
                        }
                        _ => None,
                    };
                    assert_eq!(index.lookup(q.vaddr), scan, "{path} at {:#x}", q.vaddr);
                    checked += 1;
                    named += usize::from(scan.is_some());
                }
            }
        }
        assert!(
            named > 1000 && checked > named,
            "{path}: {named} of {checked} named"
        );
    }

    #[test]
    fn index_answers_as_the_scan_does_for_this_test_binary() {
        compare_with_scan(&std::env::current_exe().unwrap().to_string_lossy(), None);
    }

    /// libc's .dynsym, and with its detached debug file where installed
    /// (three tables: the case of `dump --native` on Debian's libc).
    #[test]
    fn index_answers_as_the_scan_does_for_libc() {
        let libc = crate::maps::own_libc();
        let path = libc.path().unwrap().to_string_lossy().into_owned();
        compare_with_scan(&path, None);
        let file = MappedFile::open(Path::new(&path)).unwrap();
        let id = ElfImage::parse(file.bytes()).unwrap().build_id().unwrap();
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]);
        if Path::new(&debug).exists() {
            compare_with_scan(&path, Some(Path::new(&debug)));
        } else {
            eprintln!("libc's debug file {debug} is not installed: compared without it");
        }
    }

    /// Tables beyond the bounds give no index (the scan serves them).
    #[test]
    fn too_many_symbols_or_names_give_no_index() {
        let exe = std::env::current_exe().unwrap();
        let file = MappedFile::open(&exe).unwrap();
        let elf = ElfImage::parse(file.bytes()).unwrap();
        let exec = loads_of(&elf);
        let tables = [(&elf, Table::Symtab)];
        let whole = build_at_most(&tables, &exec, MAX_ENTRIES, MAX_NAMES_LEN).unwrap();
        let count = Index::parse(&whole).unwrap().count();
        assert!(count > 100, "{count}");
        assert!(build_at_most(&tables, &exec, count, MAX_NAMES_LEN).is_some());
        assert!(build_at_most(&tables, &exec, count - 1, MAX_NAMES_LEN).is_none());
        assert!(build_at_most(&tables, &exec, MAX_ENTRIES, 100).is_none());
    }

    #[test]
    fn overlapping_and_zero_size_symbols() {
        // Hand-made index: [0x100, 0x200) "outer", [0x140, 0x150) "inner",
        // zero-size "label" at 0x180; "alias" at 0x140 ranks after "inner".
        let mut all = [
            (0x100u64, 0x100u64, (1u8, 0u64), &b"outer"[..]),
            (0x140, 0x10, (1, 1), b"inner"),
            (0x140, 0x10, (2, 2), b"alias"),
            (0x180, 0, (1, 3), b"label"),
        ];
        all.sort_by_key(|c| (c.0, c.2));
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(all.len() as u64).to_le_bytes());
        let names: usize = all.iter().map(|c| c.3.len()).sum();
        out.extend_from_slice(&(names as u64).to_le_bytes());
        let (mut max_end, mut at) = (0u64, 0u32);
        for c in &all {
            max_end = max_end.max(end_of(c.0, c.1));
            for v in [c.0, c.1, max_end] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&at.to_le_bytes());
            out.extend_from_slice(&(c.3.len() as u32).to_le_bytes());
            at += c.3.len() as u32;
        }
        for c in &all {
            out.extend_from_slice(c.3);
        }
        let index = Index::parse(&out).unwrap();
        assert_eq!(index.lookup(0xff), None);
        assert_eq!(index.lookup(0x100), Some((0x100, &b"outer"[..])));
        assert_eq!(index.lookup(0x145), Some((0x140, &b"inner"[..])));
        assert_eq!(index.lookup(0x150), Some((0x100, &b"outer"[..])));
        assert_eq!(index.lookup(0x180), Some((0x180, &b"label"[..])));
        assert_eq!(index.lookup(0x181), Some((0x100, &b"outer"[..])));
        assert_eq!(index.lookup(0x200), None);
    }

    #[test]
    fn the_cache_keeps_the_newest_indexes() {
        let dir = std::env::temp_dir().join(format!("lastwords-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let long_ago = std::time::SystemTime::now() - 100 * day;
        let aged = |name: &str, days: u32| {
            let path = dir.join(name);
            std::fs::write(&path, b"x").unwrap();
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(long_ago + day * days).unwrap();
            path
        };
        // Indexes built on days 0..KEPT_INDEXES+5, a dead writer's file, a
        // fresh one (a writer at work), and a file that is not an index.
        let indexes: Vec<_> = (0..KEPT_INDEXES as u32 + 5)
            .map(|d| aged(&format!("v1-{d}.n"), d))
            .collect();
        let dead = aged(".v1-old.n.1.tmp", 0);
        let busy = dir.join(".v1-new.n.2.tmp");
        std::fs::write(&busy, b"x").unwrap();
        let other = aged("notes.txt", 0);
        store(&dir.join("v1-latest.d"), b"index");
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        let mut expected: Vec<_> = indexes[indexes.len() - (KEPT_INDEXES - 1)..].to_vec();
        expected.extend([dir.join("v1-latest.d"), busy, other]);
        expected.sort();
        assert_eq!(left, expected);
        assert!(!dead.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_index_files_are_refused_or_answer_without_panicking() {
        let libc = crate::maps::own_libc();
        let Ok(file) = MappedFile::open(libc.path().unwrap()) else {
            panic!("libc cannot be read");
        };
        let elf = ElfImage::parse(file.bytes()).unwrap();
        let exec = loads_of(&elf);
        let good = build(&[(&elf, Table::Dynsym)], &exec).unwrap();
        // Truncated anywhere: refused (the lengths no longer add up).
        for cut in [0, 7, 8, HEADER, HEADER + 5, good.len() / 2, good.len() - 1] {
            assert!(Index::parse(&good[..cut]).is_none(), "cut at {cut}");
        }
        // Bytes changed anywhere: parses or not, and lookups end.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200 {
            let mut bad = good.clone();
            for _ in 0..8 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % bad.len() as u64) as usize;
                bad[at] = (state >> 32) as u8;
            }
            if let Some(index) = Index::parse(&bad) {
                for &(s, e) in &exec {
                    for a in (s..e).step_by(4099) {
                        let _ = index.lookup(a);
                    }
                }
            }
        }
    }
}
