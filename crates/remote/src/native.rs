//! Native stacks of another process or of a core (`lastwords dump --native`):
//! each thread's registers (ptrace, or the core's `NT_PRSTATUS`) unwound by
//! lastwords-core's unwinder through the target's memory, over the objects of
//! its `link_map` list, and named from the files behind them.
//!
//! Nothing here unwinds or parses CFI itself: the steps are
//! `lastwords_core::unwind::step`'s, the symbol tables are scanned by
//! `unwind::symbols` (the `object` crate), the file check is
//! `unwind::symbolise::same_object`. What this module adds is what a dump
//! needs and a signal handler cannot have: the target's files, opened through
//! a [`Source`] (`/proc/PID/root`, or the core's file list under `--root`),
//! detached debug files by build-id or `.gnu_debuglink` under the same root,
//! demangled C++ and Rust names, and every thread's frames named together
//! (one scan of each table per object, whatever the number of threads).
//!
//! Memory and files are untrusted: the unwinder bounds its steps and checks
//! every read; a name is cut at [`MAX_NAME`] bytes; an address no symbol
//! covers (by the symbol's size) keeps no name and is printed relative to its
//! object.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lastwords_core::memory::Memory;
use lastwords_core::unwind::dynsym::dynsym_lookup;
use lastwords_core::unwind::objects::{self, Found, Objects, Phdr, Process, for_each_phdr};
use lastwords_core::unwind::step::{End, RowCache, unwind_ends_cached};
use lastwords_core::unwind::symbolise::same_object;
use lastwords_core::unwind::symbols::{ElfImage, Pass, Query, Table};
use lastwords_core::unwind::{Regs, arch};

use crate::elf::{Elf, MappedFile};
use crate::maps::Mapping;
use crate::source::Source;
use crate::symbol_index::{self, Index};

/// Native frames unwound per thread unless lifted (`--all`).
pub const MAX_NATIVE_FRAMES: usize = 256;
/// The most a lifted walk takes (the unwinder's own bound).
pub const MAX_NATIVE_FRAMES_LIFTED: usize = lastwords_core::unwind::step::MAX_STEPS;
/// The longest name kept, in bytes.
pub const MAX_NAME: usize = 4096;
/// Program headers of one object compared with its file.
const MAX_LOADS: usize = 16;

const AT_PHDR: u64 = 3;
const AT_PHNUM: u64 = 5;

/// One native frame, named.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NativeFrame {
    /// The pc: exact for the innermost frame, else a return address.
    pub pc: usize,
    /// The object's path as the process saw it, and its load bias.
    pub object: Option<(String, usize)>,
    /// The start of the symbol containing the pc, and its name (demangled).
    pub symbol: Option<(usize, String)>,
    /// A call of CPython's eval loop (`_PyEval_EvalFrameDefault`, 2.7's
    /// `PyEval_EvalFrameEx`): where the Python frames it runs go.
    pub eval: bool,
}

/// One thread's native stack, innermost first, and how its walk ended.
#[derive(Clone, Debug)]
pub struct NativeStack {
    pub frames: Vec<NativeFrame>,
    pub end: End,
}

/// The registers of a thread in the order of the machine's
/// `user_regs_struct` (what `PTRACE_GETREGSET(NT_PRSTATUS)` gives and what a
/// core's `NT_PRSTATUS` note holds), as the unwinder's register set.
#[cfg(target_arch = "x86_64")]
pub fn regs_from_words(words: &[u64]) -> Option<Regs> {
    // user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx
    // rsi rdi orig_rax rip cs eflags rsp ...; DWARF: rax rdx rcx rbx rsi rdi
    // rbp rsp r8..r15.
    const DWARF_TO_WORD: [usize; 16] = [10, 12, 11, 5, 13, 14, 4, 19, 9, 8, 7, 6, 3, 2, 1, 0];
    let mut regs = Regs::empty();
    for (dwarf, &word) in (0u16..).zip(DWARF_TO_WORD.iter()) {
        regs.set(dwarf, *words.get(word)?);
    }
    regs.pc = *words.get(16)?;
    Some(regs)
}

/// As above, for aarch64: x0-x30, sp, pc, pstate.
#[cfg(target_arch = "aarch64")]
pub fn regs_from_words(words: &[u64]) -> Option<Regs> {
    let mut regs = Regs::empty();
    for (r, &v) in (0u16..31).zip(words.iter()) {
        regs.set(r, v);
    }
    regs.set(arch::SP, *words.get(31)?);
    regs.pc = *words.get(32)?;
    Some(regs)
}

/// No native unwinding on other machines.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn regs_from_words(_words: &[u64]) -> Option<Regs> {
    None
}

/// The words of a ptrace register set, in `user_regs_struct` order.
#[cfg(target_arch = "x86_64")]
pub fn ptrace_words(r: &libc::user_regs_struct) -> Vec<u64> {
    vec![
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss,
    ]
}

/// The words of a ptrace register set, in `user_regs_struct` order.
#[cfg(target_arch = "aarch64")]
pub fn ptrace_words(r: &libc::user_regs_struct) -> Vec<u64> {
    let mut words = r.regs.to_vec();
    words.push(r.sp);
    words.push(r.pc);
    words
}

/// Where the object list of a live process starts: its main program's
/// program headers, from `/proc/PID/auxv`.
pub fn process_live(pid: i32) -> Process {
    let auxv = std::fs::read(format!("/proc/{pid}/auxv")).unwrap_or_default();
    let pairs: Vec<(u64, u64)> = auxv
        .chunks_exact(16)
        .filter_map(|c| {
            Some((
                u64::from_le_bytes(c.get(..8)?.try_into().ok()?),
                u64::from_le_bytes(c.get(8..)?.try_into().ok()?),
            ))
        })
        .collect();
    process_from_auxv(&pairs)
}

/// The same from an auxiliary vector's (type, value) pairs (a core's).
pub fn process_from_auxv(auxv: &[(u64, u64)]) -> Process {
    let aux = |kind: u64| {
        auxv.iter()
            .find(|(k, _)| *k == kind)
            .and_then(|&(_, v)| usize::try_from(v).ok())
            .unwrap_or(0)
    };
    Process {
        r_debug: 0,
        main_phdr: aux(AT_PHDR),
        main_phnum: aux(AT_PHNUM),
        main_name: 0,
    }
}

/// Whether a symbol is a call of CPython's eval loop (a `.cold` part of it
/// runs in the same C frame).
pub fn is_eval_function(name: &str) -> bool {
    ["_PyEval_EvalFrameDefault", "PyEval_EvalFrameEx"]
        .iter()
        .any(|f| {
            name.strip_prefix(f)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
}

/// A C++ or Rust name demangled (without Rust's hash); others as they are.
pub fn demangle(raw: &[u8]) -> String {
    let raw = raw.get(..raw.len().min(MAX_NAME)).unwrap_or(&[]);
    let text = String::from_utf8_lossy(raw);
    if let Ok(d) = rustc_demangle::try_demangle(&text) {
        return format!("{d:#}");
    }
    if text.starts_with("_Z")
        && let Ok(symbol) = cpp_demangle::Symbol::new(raw)
        && let Ok(d) = symbol.demangle()
    {
        return d;
    }
    text.into_owned()
}

/// Unwind and name the stacks of `threads` (kernel thread id, registers),
/// reading through `mem` (the target's memory, cached) and opening files
/// through `source`; detached debug files are looked for under `root`
/// (`/proc/PID/root`, or `--root`). `max` bounds each thread's frames.
pub fn native_stacks<S: Source, M: Memory>(
    source: &S,
    mem: &M,
    process: Process,
    root: &Path,
    threads: &[(u32, Regs)],
    max: usize,
) -> HashMap<u32, NativeStack> {
    let objects = Objects::snapshot(mem, process);
    let max = max.clamp(1, MAX_NATIVE_FRAMES_LIFTED);
    let mut buf = vec![0usize; max];
    // The CFI rows found for one thread serve the others.
    let mut rows = RowCache::new();
    // Every frame of every thread: (thread, pc, lookup address, object).
    let mut all: Vec<(u32, usize, usize, Option<Found>)> = Vec::new();
    let mut ends = Vec::with_capacity(threads.len());
    for &(tid, regs) in threads {
        if regs.get(arch::SP).is_none() {
            ends.push((tid, End::Lost));
            continue;
        }
        let (n, end) = unwind_ends_cached(mem, &objects, regs, &mut buf, &mut rows);
        for (i, &pc) in buf.iter().take(n).enumerate() {
            let lookup = if i == 0 { pc } else { pc.wrapping_sub(1) };
            all.push((tid, pc, lookup, objects.find(lookup)));
        }
        ends.push((tid, end));
    }
    // Name each object's frames together.
    let mut names: Vec<Option<(usize, String)>> = vec![None; all.len()];
    let mut shown: Vec<Option<(String, usize)>> = vec![None; all.len()];
    let mut done: Vec<Found> = Vec::new();
    let namer = Namer { source, mem, root };
    for i in 0..all.len() {
        let Some(found) = all.get(i).and_then(|f| f.3) else {
            continue;
        };
        if done.contains(&found) {
            continue;
        }
        done.push(found);
        let members: Vec<usize> = (0..all.len())
            .filter(|&j| all.get(j).is_some_and(|f| f.3 == Some(found)))
            .collect();
        let lookups: Vec<usize> = members
            .iter()
            .filter_map(|&j| all.get(j).map(|f| f.2))
            .collect();
        let (object_name, named) = namer.name_object(&found, &lookups);
        for (&j, symbol) in members.iter().zip(named) {
            if let Some(slot) = names.get_mut(j) {
                *slot = symbol;
            }
            if let Some(slot) = shown.get_mut(j) {
                *slot = Some((object_name.clone(), found.bias));
            }
        }
    }
    let mut stacks: HashMap<u32, NativeStack> = HashMap::new();
    for (tid, end) in ends {
        stacks.insert(
            tid,
            NativeStack {
                frames: Vec::new(),
                end,
            },
        );
    }
    for ((tid, pc, _, _), (symbol, object)) in all.into_iter().zip(names.into_iter().zip(shown)) {
        if let Some(stack) = stacks.get_mut(&tid) {
            let eval = symbol.as_ref().is_some_and(|(_, n)| is_eval_function(n));
            stack.frames.push(NativeFrame {
                pc,
                object,
                symbol,
                eval,
            });
        }
    }
    stacks
}

/// An object's symbol index: kept in the cache, or just built.
enum IndexBytes {
    Kept(MappedFile),
    Built(Vec<u8>),
}

impl IndexBytes {
    fn bytes(&self) -> &[u8] {
        match self {
            IndexBytes::Kept(file) => file.bytes(),
            IndexBytes::Built(bytes) => bytes,
        }
    }
}

/// Names the frames of one object.
struct Namer<'a, S: Source, M: Memory> {
    source: &'a S,
    mem: &'a M,
    root: &'a Path,
}

impl<S: Source, M: Memory> Namer<'_, S, M> {
    /// The object's name as printed, and for each of `lookups`, the start
    /// and name of the symbol containing it.
    fn name_object(
        &self,
        found: &Found,
        lookups: &[usize],
    ) -> (String, Vec<Option<(usize, String)>>) {
        let mapping = self.mapping_of(found);
        let shown = match mapping {
            Some(m) => String::from_utf8_lossy(&m.name).into_owned(),
            None => self.c_string(found.name),
        };
        if let Some(m) = mapping
            && let Some(named) = self.name_from_files(found, m, lookups)
        {
            return (shown, named);
        }
        // No usable file (the vDSO, a deleted or replaced file, a core
        // whose files are elsewhere): `.dynsym` in memory, as dladdr does.
        let named = lookups
            .iter()
            .map(|&addr| {
                if found.dynamic == 0 {
                    return None;
                }
                let (start, name) = dynsym_lookup(self.mem, found.dynamic, found.bias, addr)?;
                let name = self.c_string(name);
                (!name.is_empty()).then(|| (start, demangle(name.as_bytes())))
            })
            .collect();
        (shown, named)
    }

    /// The file mapping that holds the object's program headers.
    fn mapping_of(&self, found: &Found) -> Option<&Mapping> {
        self.source
            .mappings()
            .iter()
            .find(|m| m.start <= found.phdr && found.phdr < m.end && m.path().is_some())
    }

    /// A NUL-terminated string of the target (an object's `l_name`, a
    /// `.dynsym` name), at most [`MAX_NAME`] bytes.
    fn c_string(&self, at: usize) -> String {
        let mut out = Vec::new();
        let mut at = at;
        while at != 0 && out.len() < MAX_NAME {
            let mut chunk = [0u8; 64];
            let n = chunk.len().min(4096usize.wrapping_sub(at & 4095));
            let Some(dst) = chunk.get_mut(..n) else {
                break;
            };
            if self.mem.read_bytes(at, dst).is_err() {
                break;
            }
            match dst.iter().position(|&b| b == 0) {
                Some(end) => {
                    out.extend_from_slice(dst.get(..end).unwrap_or(&[]));
                    break;
                }
                None => out.extend_from_slice(dst),
            }
            let Some(next) = at.checked_add(n) else {
                break;
            };
            at = next;
        }
        out.truncate(MAX_NAME);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Names from the object's file (and its debug file), if the file is
    /// the one loaded; None when it cannot be used.
    fn name_from_files(
        &self,
        found: &Found,
        m: &Mapping,
        lookups: &[usize],
    ) -> Option<Vec<Option<(usize, String)>>> {
        let (file, _) = self.source.open(m).ok()?;
        // What the loaded object looks like: its PT_LOADs and build-id.
        let mut loads = Vec::new();
        let mut exec = Vec::new();
        for_each_phdr(self.mem, found.phdr, found.phnum, |p: &Phdr| {
            if p.is_load() && loads.len() < MAX_LOADS {
                loads.push(*p);
                if p.is_exec() {
                    exec.push((p.vaddr, p.vaddr.saturating_add(p.memsz)));
                }
            }
            true
        });
        let mut id_buf = [0u8; 64];
        let loaded_id =
            objects::build_id(self.mem, found, &mut id_buf).and_then(|n| id_buf.get(..n));
        let elf = ElfImage::parse(file.bytes())?;
        if !same_object(&elf, &loads, loaded_id) {
            return None;
        }
        let debug = if elf.has_symtab() {
            None
        } else {
            self.debug_file(m, file.bytes(), loaded_id)
        };
        let debug_elf = debug.as_ref().and_then(|d| ElfImage::parse(d.bytes()));
        let bias = found.bias as u64;
        // One query per distinct address (threads share most of theirs).
        let mut distinct: Vec<usize> = lookups.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let mut queries: Vec<Query<'_>> = distinct
            .iter()
            .enumerate()
            .map(|(i, &a)| Query::new((a as u64).wrapping_sub(bias), i))
            .collect();
        let mut tables = vec![(&elf, Table::Dynsym), (&elf, Table::Symtab)];
        if let Some(debug_elf) = debug_elf.as_ref() {
            tables.push((debug_elf, Table::Symtab));
        }
        // The tables' index from the cache, or built and kept there; with
        // no cache (or one that cannot be written: building costs more than
        // one scan), one scan of each table.
        let cached = symbol_index::cache_dir().and_then(|dir| {
            let path = dir.join(symbol_index::file_name(&file, debug.as_ref()));
            if let Some(kept) = symbol_index::open(&path) {
                return Some(IndexBytes::Kept(kept));
            }
            if !symbol_index::writable(&dir) {
                return None;
            }
            let built = symbol_index::build(&tables, &exec)?;
            symbol_index::store(&path, &built);
            Some(IndexBytes::Built(built))
        });
        match cached.as_ref().and_then(|c| Index::parse(c.bytes())) {
            Some(index) => {
                for q in &mut queries {
                    if let Some((start, name)) = index.lookup(q.vaddr) {
                        q.start = Some(start);
                        // The index made the choice; a rank only matters
                        // while a scan compares candidates.
                        q.name = Some((name, (0, 0)));
                    }
                }
            }
            None => {
                for &(image, table) in &tables {
                    image.lookup(table, &exec, &mut queries, Pass::Both);
                }
            }
        }
        let mut by_address: Vec<Option<(usize, String)>> = vec![None; distinct.len()];
        for q in &queries {
            if let (Some(start), Some((name, _))) = (q.start, q.name)
                && let Some(slot) = by_address.get_mut(q.frame)
            {
                let start = usize::try_from(start)
                    .ok()
                    .map(|s| s.wrapping_add(found.bias));
                *slot = start.map(|s| (s, demangle(name)));
            }
        }
        let named = lookups
            .iter()
            .map(|a| {
                let i = distinct.binary_search(a).ok()?;
                by_address.get(i).cloned().flatten()
            })
            .collect();
        Some(named)
    }

    /// The detached debug file of a stripped object: by build-id, else by
    /// `.gnu_debuglink`, under the target's root; used only if its build-id
    /// is the loaded object's (where that has one).
    fn debug_file(&self, m: &Mapping, file: &[u8], loaded_id: Option<&[u8]>) -> Option<MappedFile> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        let debug_root = self.root.join("usr/lib/debug");
        if let Some((first, rest)) = loaded_id.and_then(|id| id.split_first())
            && !rest.is_empty()
        {
            let rest: String = rest.iter().map(|b| format!("{b:02x}")).collect();
            candidates.push(debug_root.join(format!(".build-id/{first:02x}/{rest}.debug")));
        }
        if let Ok(elf) = Elf::parse(file)
            && let Some(link) = elf.section(".gnu_debuglink")
            && !link.nobits
            && let Some(bytes) = usize::try_from(link.offset)
                .ok()
                .and_then(|o| file.get(o..o.checked_add(usize::try_from(link.size).ok()?)?))
            && let Some(name) = bytes.split(|&b| b == 0).next()
            && !name.is_empty()
            && !name.contains(&b'/')
            && let Some(dir) = m.path().and_then(Path::parent)
        {
            let name = String::from_utf8_lossy(name).into_owned();
            let dir = dir.strip_prefix("/").unwrap_or(dir);
            candidates.push(debug_root.join(dir).join(&name));
            candidates.push(self.root.join(dir).join(".debug").join(&name));
        }
        candidates.into_iter().find_map(|path| {
            let debug = MappedFile::open(&path).ok()?;
            let id = ElfImage::parse(debug.bytes())?.build_id();
            match loaded_id {
                Some(loaded) if id != Some(loaded) => None,
                _ => Some(debug),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eval_functions_are_recognised_with_their_cold_parts() {
        assert!(is_eval_function("_PyEval_EvalFrameDefault"));
        assert!(is_eval_function("_PyEval_EvalFrameDefault.cold"));
        assert!(is_eval_function("PyEval_EvalFrameEx"));
        assert!(!is_eval_function("_PyEval_EvalFrameDefaultX"));
        assert!(!is_eval_function("PyEval_EvalCode"));
    }

    #[test]
    fn cpp_and_rust_names_are_demangled() {
        assert_eq!(demangle(b"_ZN3foo3barEv"), "foo::bar()");
        assert_eq!(
            demangle(b"_ZN4core9panicking5panic17h0123456789abcdefE"),
            "core::panicking::panic"
        );
        assert_eq!(demangle(b"read"), "read");
        assert_eq!(demangle(b"_Zgarbage"), "_Zgarbage");
    }

    #[test]
    fn registers_map_to_dwarf_numbers() {
        #[cfg(target_arch = "x86_64")]
        {
            let words: Vec<u64> = (0..27).map(|i| 100 + i).collect();
            let regs = regs_from_words(&words).unwrap();
            assert_eq!(regs.pc, 116);
            assert_eq!(regs.get(arch::SP), Some(119));
            assert_eq!(regs.get(arch::FP), Some(104));
            assert_eq!(regs.get(0), Some(110));
            assert!(regs_from_words(&words[..10]).is_none());
        }
    }
}
