//! Finding the interpreter in another process: which file holds it, where it
//! is loaded, which version and build it is, and the addresses the walker
//! starts from, each checked against the target's memory.
//!
//! [`discover`] is the one call: pid in, [`Interpreter`] out (or a
//! [`RemoteError`] that says why not). It reads `/proc/PID/maps`, the
//! interpreter's ELF file (through the target's root) and a few words of the
//! target's memory; it never writes to the target and never stops it.
//! [`discover_in`] does the same through any [`Source`]: a live process, or
//! a core file ([`crate::core_source`]).
//!
//! Everything read from the target or its files is untrusted: checked
//! arithmetic, bounded loops, no panics.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use lastwords_core::cpython::debug_offsets;
use lastwords_core::cpython::layout::{self, Layout};
use lastwords_core::memory::Memory;

use crate::elf::{Elf, MappedFile, OpenedThrough};
use crate::error::RemoteError;
use crate::facts::{self, Gil, Tid, VersionFacts};
use crate::maps::Mapping;
use crate::source::{LiveProcess, Source};
use crate::x86;

/// Threads followed at most in one interpreter's list (the walker's own
/// bound is lower; this one only stops a cycle).
const MAX_THREADS: usize = 100_000;
/// Reads of a thread list torn by threads starting or ending meanwhile.
const THREAD_LIST_ATTEMPTS: u32 = 20;
/// Interpreters followed at most in the runtime's list.
const MAX_INTERPRETERS: usize = 10_000;

/// A CPython version, as `sys.version_info` / `sys.hexversion` put it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
    /// None when only the major and minor version are known (from a file
    /// name).
    pub micro: Option<u8>,
    /// 0xA alpha, 0xB beta, 0xC candidate, 0xF final.
    pub level: u8,
    pub serial: u8,
}

impl Version {
    pub fn from_hex(hex: u32) -> Version {
        let [major, minor, micro, tail] = hex.to_be_bytes();
        Version {
            major,
            minor,
            micro: Some(micro),
            level: tail >> 4,
            serial: tail & 0xf,
        }
    }

    /// `sys.hexversion` (micro 0 if unknown).
    pub fn hex(&self) -> u32 {
        u32::from_be_bytes([
            self.major,
            self.minor,
            self.micro.unwrap_or(0),
            (self.level << 4) | (self.serial & 0xf),
        ])
    }

    /// Parse `PY_VERSION`: `3.9.18`, `3.15.0a1`, `3.14.0rc2`, `2.7.18+`.
    pub fn parse(text: &[u8]) -> Option<Version> {
        let text = std::str::from_utf8(text).ok()?;
        let text = text.strip_suffix('+').unwrap_or(text);
        let mut parts = text.splitn(3, '.');
        let major: u8 = parts.next()?.parse().ok()?;
        let minor: u8 = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let micro: u8 = rest.get(..digits)?.parse().ok()?;
        let tail = rest.get(digits..)?;
        let (level, serial) = if tail.is_empty() {
            (0xf, 0)
        } else {
            let (level, serial) = if let Some(s) = tail.strip_prefix("rc") {
                (0xc, s)
            } else if let Some(s) = tail.strip_prefix('a') {
                (0xa, s)
            } else if let Some(s) = tail.strip_prefix('b') {
                (0xb, s)
            } else {
                return None;
            };
            (level, serial.parse::<u8>().ok().filter(|s| *s < 16)?)
        };
        if !(2..=3).contains(&major) {
            return None;
        }
        Some(Version {
            major,
            minor,
            micro: Some(micro),
            level,
            serial,
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(micro) = self.micro {
            write!(f, ".{micro}")?;
            match self.level {
                0xa => write!(f, "a{}", self.serial)?,
                0xb => write!(f, "b{}", self.serial)?,
                0xc => write!(f, "rc{}", self.serial)?,
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where the version came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionSource {
    /// The exported `Py_Version` constant (3.11+), read from the target.
    PyVersion,
    /// `_Py_DebugOffsets.version` at the start of `_PyRuntime` (3.13+).
    DebugOffsets,
    /// The `PY_VERSION` literal that `Py_GetVersion` formats (its code
    /// decoded to find it): every version.
    PyGetVersion,
    /// The file name (`libpython3.9.so`, `python3.14d`): major and minor
    /// only.
    FileName,
}

impl VersionSource {
    pub fn name(self) -> &'static str {
        match self {
            VersionSource::PyVersion => "Py_Version",
            VersionSource::DebugOffsets => "_Py_DebugOffsets.version",
            VersionSource::PyGetVersion => "Py_GetVersion's PY_VERSION",
            VersionSource::FileName => "file name",
        }
    }
}

/// The file that holds the interpreter, and where it is loaded.
#[derive(Clone, Debug)]
pub struct Binary {
    /// As the target sees it (its mount namespace).
    pub path: PathBuf,
    pub opened_through: OpenedThrough,
    /// A shared libpython (else the interpreter is linked into the
    /// executable).
    pub shared: bool,
    /// Added to an address of the file to get the address in the target.
    pub load_bias: usize,
    pub build_id: Option<Vec<u8>>,
    /// The file has `.symtab` (not stripped).
    pub has_symtab: bool,
}

/// The type objects the walker compares against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Types {
    pub type_type: usize,
    pub unicode: usize,
    /// 2.7's `str` (`PyString_Type`).
    pub string: Option<usize>,
    /// 3.x's `bytes` (`PyBytes_Type`).
    pub bytes: Option<usize>,
    pub code: usize,
    pub module: usize,
}

/// Where the GIL's state is, resolved to addresses in the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GilAt {
    /// 2.7: the address of `_PyThreadState_Current` (a pointer: the
    /// holder's thread state, NULL when none).
    CurrentThreadState { var: usize },
    /// 3.x: the `int locked` and the `PyThreadState *last_holder` of the
    /// GIL the main interpreter uses.
    State { locked: usize, last_holder: usize },
}

/// How a thread's kernel tid is read, resolved for this target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TidAt {
    /// `tstate + offset` holds the tid (3.11+).
    ThreadState { offset: usize },
    /// The `pid_t` at `pthread_t + offset` (glibc's `struct pthread`), with
    /// where the offset came from.
    Pthread { offset: usize, source: &'static str },
}

/// Where the thread list is, resolved for this target (from the walker's
/// layout: the target's `_Py_DebugOffsets` from 3.13 on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadOffsets {
    pub interp_threads_head: usize,
    pub tstate_next: usize,
    pub tstate_interp: usize,
    pub tstate_thread_id: usize,
}

/// One thread state of the interpreter, as discovery saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    pub tstate: usize,
    /// `tstate->thread_id` (the `pthread_t`).
    pub thread_id: u64,
    /// The kernel thread id, if it could be read.
    pub tid: Option<u32>,
    /// The tid is one of `/proc/PID/task`.
    pub tid_verified: bool,
    pub holds_gil: bool,
}

/// Everything about the target's interpreter that the walker needs, and
/// where each piece came from.
#[derive(Clone, Debug)]
pub struct Interpreter {
    pub pid: i32,
    /// Read from a running process (else from a core file).
    pub live: bool,
    pub version: Version,
    pub version_source: VersionSource,
    /// Every source that gave a version (they agree: discovery fails
    /// otherwise).
    pub version_sources: Vec<(VersionSource, Version)>,
    /// A `Py_DEBUG` build (`_Py_RefTotal` is exported: `Py_REF_DEBUG`).
    pub debug_build: bool,
    pub binary: Binary,
    pub facts: &'static VersionFacts,
    /// `_PyRuntime` (3.x), and whether from its symbol or the section.
    pub runtime: Option<usize>,
    pub runtime_source: Option<&'static str>,
    /// The first (newest) `PyInterpreterState`.
    pub interp_head: usize,
    pub interp_head_source: &'static str,
    /// Interpreters in the runtime's list.
    pub interpreters: usize,
    pub types: Types,
    /// How the walker reads this interpreter's structures: a built-in table
    /// for 2.7 and 3.9-3.12, the target's `_Py_DebugOffsets` from 3.13.
    pub layout: Layout,
    pub layout_source: &'static str,
    pub gil: GilAt,
    pub tid: TidAt,
    pub thread_offsets: ThreadOffsets,
    /// The threads of the head interpreter, newest first, as read during
    /// discovery (the target kept running).
    pub threads: Vec<ThreadInfo>,
}

impl Interpreter {
    /// Read the thread list of the head interpreter again, with tids (checked
    /// against `tasks`, the kernel's) and the GIL holder (call it while the
    /// target is paused for a consistent answer).
    pub fn read_threads<M: Memory>(
        &self,
        mem: &M,
        tasks: &HashSet<u32>,
    ) -> Result<Vec<ThreadInfo>, RemoteError> {
        let holder = self.gil_holder(mem).unwrap_or(None);
        let f = self.thread_offsets;
        let cx = self.cx();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        // The fields read of each thread state, in one read where it can be
        // had (four reads a thread otherwise: ~40 system calls for 10
        // threads of a live target).
        let tid_field = match self.tid {
            TidAt::ThreadState { offset } => offset,
            TidAt::Pthread { .. } => 0,
        };
        let span = [
            f.tstate_next,
            f.tstate_interp,
            f.tstate_thread_id,
            tid_field,
        ]
        .into_iter()
        .max()
        .and_then(|last| last.checked_add(8))
        .filter(|&n| n <= TSTATE_WINDOW);
        let mut t = read_ptr(mem, cx, self.interp_head, f.interp_threads_head)?;
        while t != 0 {
            if out.len() >= MAX_THREADS || !seen.insert(t) {
                return Err(self.inconsistent("the thread list does not end"));
            }
            let window = Window::read(mem, t, span);
            let mem = &window;
            let interp = read_ptr(mem, cx, t, f.tstate_interp)?;
            if interp != self.interp_head {
                return Err(self.inconsistent(&format!(
                    "thread state 0x{t:x} belongs to interpreter 0x{interp:x}, not 0x{:x}",
                    self.interp_head
                )));
            }
            let thread_id = mem
                .read::<u64>(add(self.pid, t, f.tstate_thread_id)?)
                .map_err(|_| self.unreadable(t))?;
            let tid = self.tid_of(mem, t, thread_id);
            out.push(ThreadInfo {
                tstate: t,
                thread_id,
                tid,
                tid_verified: tid.is_some_and(|tid| tasks.contains(&tid)),
                holds_gil: holder == Some(t),
            });
            t = read_ptr(mem, cx, t, f.tstate_next)?;
        }
        Ok(out)
    }

    /// The thread state holding the GIL, None when no thread holds it.
    pub fn gil_holder<M: Memory>(&self, mem: &M) -> Result<Option<usize>, RemoteError> {
        match self.gil {
            GilAt::CurrentThreadState { var } => {
                let t = mem.read::<usize>(var).map_err(|_| self.unreadable(var))?;
                Ok((t != 0).then_some(t))
            }
            GilAt::State {
                locked,
                last_holder,
            } => {
                let is_locked = mem
                    .read::<i32>(locked)
                    .map_err(|_| self.unreadable(locked))?;
                if is_locked == 0 {
                    return Ok(None);
                }
                let t = mem
                    .read::<usize>(last_holder)
                    .map_err(|_| self.unreadable(last_holder))?;
                Ok((t != 0).then_some(t))
            }
        }
    }

    fn tid_of<M: Memory>(&self, mem: &M, tstate: usize, thread_id: u64) -> Option<u32> {
        match self.tid {
            TidAt::ThreadState { offset } => {
                let v = mem.read::<u64>(tstate.checked_add(offset)?).ok()?;
                u32::try_from(v).ok().filter(|v| *v != 0)
            }
            TidAt::Pthread { offset, .. } => {
                let base = usize::try_from(thread_id).ok()?;
                let v = mem.read::<i32>(base.checked_add(offset)?).ok()?;
                u32::try_from(v).ok().filter(|v| *v != 0)
            }
        }
    }

    /// The type objects in the form lastwords-core's walker takes them.
    pub fn known_types(&self) -> lastwords_core::cpython::walk::KnownTypes {
        lastwords_core::cpython::walk::KnownTypes {
            unicode: self.types.unicode,
            module: self.types.module,
            code: self.types.code,
            bytes_str: self.types.string.unwrap_or(0),
        }
    }

    fn inconsistent(&self, what: &str) -> RemoteError {
        RemoteError::Inconsistent {
            pid: self.pid,
            what: what.to_string(),
        }
    }

    fn unreadable(&self, addr: usize) -> RemoteError {
        unreadable(self.cx(), addr)
    }

    fn cx(&self) -> Cx {
        Cx {
            pid: self.pid,
            live: self.live,
        }
    }
}

/// Who is read, for errors: a running process (which may have exited when
/// a read fails) or a core.
#[derive(Clone, Copy, Debug)]
struct Cx {
    pid: i32,
    live: bool,
}

/// The kernel tids of the process's threads.
pub fn task_ids(pid: i32) -> HashSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .take(MAX_THREADS)
                .collect()
        })
        .unwrap_or_default()
}

fn add(pid: i32, base: usize, offset: usize) -> Result<usize, RemoteError> {
    base.checked_add(offset)
        .ok_or_else(|| RemoteError::Inconsistent {
            pid,
            what: format!("address 0x{base:x} + {offset} overflows"),
        })
}

/// An unreadable address: the process is gone, or a pointer is bad (or, in
/// a core, the memory was not dumped).
fn unreadable(cx: Cx, addr: usize) -> RemoteError {
    if cx.live && !crate::error::alive(cx.pid) {
        return RemoteError::Exited(cx.pid);
    }
    RemoteError::Inconsistent {
        pid: cx.pid,
        what: format!("address 0x{addr:x} is not readable"),
    }
}

/// A pointer field, which must be aligned (NULL allowed).
fn read_ptr<M: Memory>(mem: &M, cx: Cx, base: usize, offset: usize) -> Result<usize, RemoteError> {
    let at = add(cx.pid, base, offset)?;
    let v = mem.read::<usize>(at).map_err(|_| unreadable(cx, at))?;
    if !v.is_multiple_of(8) {
        return Err(RemoteError::Inconsistent {
            pid: cx.pid,
            what: format!("misaligned pointer 0x{v:x} at 0x{at:x}"),
        });
    }
    Ok(v)
}

/// Whether a file name looks like it may hold an interpreter.
fn python_like(name: &[u8]) -> bool {
    name.starts_with(b"libpython") || name.starts_with(b"python")
}

/// (major, minor, debug) from `libpython3.9.so.1.0`, `libpython3.14d.so`,
/// `python3.14d`, `python2.7`.
fn version_from_name(name: &[u8]) -> Option<(u8, u8, bool)> {
    let name = std::str::from_utf8(name).ok()?;
    let rest = name
        .strip_prefix("libpython")
        .or_else(|| name.strip_prefix("python"))?;
    let (major, rest) = rest.split_once('.')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let minor = rest.get(..digits)?;
    let flags = rest.get(digits..)?;
    let flags = flags.split('.').next().unwrap_or("");
    Some((
        major.parse().ok()?,
        minor.parse().ok()?,
        flags.contains('d'),
    ))
}

/// The load bias of a file from its mappings: each `PT_LOAD` segment is
/// mapped at `bias + vaddr` from file offset `offset` (both rounded down to
/// a page). Several mappings of the same file (libffi's trampolines map
/// their library again) give several candidates; the one that explains the
/// most segments wins (the lowest on a tie).
pub fn load_bias(mappings: &[&Mapping], elf: &Elf<'_>) -> Option<usize> {
    let page = u64::try_from(lastwords_core::memory::page_size()).ok()?;
    let mask = !page.checked_sub(1)?;
    let loads: Vec<_> = elf.loads().collect();
    let explains = |bias: u64| {
        loads
            .iter()
            .filter(|l| {
                mappings.iter().any(|m| {
                    m.offset == l.offset & mask
                        && bias
                            .checked_add(l.vaddr & mask)
                            .and_then(|a| usize::try_from(a).ok())
                            == Some(m.start)
                })
            })
            .count()
    };
    let mut best: Option<(usize, u64)> = None;
    for m in mappings {
        for l in &loads {
            if m.offset != l.offset & mask {
                continue;
            }
            let Some(bias) = u64::try_from(m.start)
                .ok()
                .and_then(|s| s.checked_sub(l.vaddr & mask))
            else {
                continue;
            };
            let score = explains(bias);
            let better = match best {
                None => true,
                Some((s, b)) => score > s || (score == s && bias < b),
            };
            if better {
                best = Some((score, bias));
            }
        }
    }
    best.and_then(|(_, bias)| usize::try_from(bias).ok())
}

/// An interpreter candidate: an opened, parsed file and its mappings.
struct Candidate<'m> {
    mappings: Vec<&'m Mapping>,
    file: std::rc::Rc<MappedFile>,
    through: OpenedThrough,
}

/// The distinct files mapped in the process that may hold an interpreter:
/// libpython first, then the executable, then other `python*` files.
fn candidates<'m>(exe: Option<&Path>, maps: &'m [Mapping]) -> Vec<(u8, Vec<&'m Mapping>)> {
    let mut out: Vec<(u8, Vec<&Mapping>)> = Vec::new();
    for m in maps {
        if m.path().is_none() {
            continue;
        }
        if let Some((_, group)) = out.iter_mut().find(|(_, g)| {
            g.first()
                .is_some_and(|f| f.same_file(m) && f.name == m.name)
        }) {
            group.push(m);
            continue;
        }
        let rank = if m.file_name().starts_with(b"libpython") {
            0
        } else if exe.is_some() && exe == m.path() {
            1
        } else if python_like(m.file_name()) {
            2
        } else {
            continue;
        };
        out.push((rank, vec![m]));
    }
    out.sort_by_key(|(rank, _)| *rank);
    out
}

/// Discover the interpreter of process `pid`.
pub fn discover(pid: i32) -> Result<Interpreter, RemoteError> {
    discover_in(&LiveProcess::new(pid)?)
}

/// Discover the interpreter of a target: a live process or a core.
pub fn discover_in<S: Source>(source: &S) -> Result<Interpreter, RemoteError> {
    let pid = source.pid();
    let live = source.live();
    let cx = Cx { pid, live };
    let maps = source.mappings();
    let mem = source.memory();
    let exe = source.executable();
    let exe_name = || {
        exe.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "?".into())
    };
    // The first candidate file that holds an interpreter; the first file
    // that could not be used, for a target that must say why (a core).
    let mut found = None;
    let mut problem = None;
    for (_, group) in candidates(exe.as_deref(), maps) {
        let Some(first) = group.first() else { continue };
        let Ok((file, through)) = source.open(first) else {
            if problem.is_none()
                && let Some(why) = source.file_problem(first)
            {
                problem = Some(RemoteError::FileUnavailable {
                    pid,
                    path: String::from_utf8_lossy(&first.name).into_owned(),
                    why,
                });
            }
            continue;
        };
        let holds = Elf::parse(file.bytes()).is_ok_and(|e| {
            e.dynamic_symbol("Py_GetVersion").is_some()
                || e.dynamic_symbol("Py_Initialize").is_some()
        });
        if holds {
            found = Some(Candidate {
                mappings: group,
                file,
                through,
            });
            break;
        }
    }
    let Some(c) = found else {
        return Err(problem.unwrap_or(RemoteError::NotPython {
            pid,
            exe: exe_name(),
        }));
    };
    let elf = Elf::parse(c.file.bytes()).map_err(|e| RemoteError::Inconsistent {
        pid,
        what: format!("{}: {e}", c.file.opened_from.display()),
    })?;
    let first = c.mappings.first().copied().ok_or(RemoteError::NotPython {
        pid,
        exe: exe_name(),
    })?;
    let bias = load_bias(&c.mappings, &elf).ok_or_else(|| RemoteError::Inconsistent {
        pid,
        what: format!(
            "no mapping of {} matches its load segments",
            first
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    })?;
    let addr = |vaddr: u64| -> Option<usize> { usize::try_from(vaddr).ok()?.checked_add(bias) };
    let sym = |name: &str| elf.dynamic_symbol(name).and_then(|s| addr(s.value));
    let name_version = version_from_name(first.file_name());

    // ---- version ---------------------------------------------------------
    let mut sources: Vec<(VersionSource, Version)> = Vec::new();
    if let Some(at) = sym("Py_Version")
        && let Ok(hex) = mem.read::<u32>(at)
    {
        sources.push((VersionSource::PyVersion, Version::from_hex(hex)));
    }
    if let Some(v) = py_get_version(&elf, mem, bias) {
        sources.push((VersionSource::PyGetVersion, v));
    }
    // _PyRuntime: the symbol, else the section 3.10+ builds put it in.
    let (runtime, runtime_source) = match sym("_PyRuntime") {
        Some(a) => (Some(a), Some("symbol _PyRuntime")),
        None => match elf.section(".PyRuntime").and_then(|s| addr(s.addr)) {
            Some(a) => (Some(a), Some("section .PyRuntime")),
            None => (None, None),
        },
    };
    // _Py_DebugOffsets (3.13+): the cookie, then the version word.
    let mut debug_words: Option<Vec<u64>> = None;
    if let Some(rt) = runtime {
        let mut head = [0u64; 2];
        let mut raw = [0u8; 16];
        if mem.read_bytes(rt, &mut raw).is_ok() {
            for (w, chunk) in head.iter_mut().zip(raw.chunks_exact(8)) {
                *w = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
            }
            if head.first() == Some(&u64::from_ne_bytes(*b"xdebugpy")) {
                let v = u32::try_from(head.get(1).copied().unwrap_or(0)).unwrap_or(0);
                let version = Version::from_hex(v);
                sources.push((VersionSource::DebugOffsets, version));
                if let Some(w) = facts::debug_words(version.minor).filter(|_| version.major == 3) {
                    debug_words = read_words(mem, rt, w.len);
                }
            }
        }
    }
    if let Some((major, minor, _)) = name_version {
        sources.push((
            VersionSource::FileName,
            Version {
                major,
                minor,
                micro: None,
                level: 0xf,
                serial: 0,
            },
        ));
    }
    let Some(&(version_source, version)) = sources.first() else {
        return Err(RemoteError::UnsupportedVersion {
            pid,
            version: "(unknown)".into(),
            why: format!(
                "{} has no version lastwords can read",
                c.file.opened_from.display()
            ),
        });
    };
    // Every source must agree with the first (on as much as it knows).
    for (source, v) in &sources {
        let same = v.major == version.major
            && v.minor == version.minor
            && (v.micro.is_none()
                || *source == VersionSource::FileName
                || v.hex() >> 8 == version.hex() >> 8);
        if !same {
            return Err(RemoteError::Inconsistent {
                pid,
                what: format!(
                    "{} says {version} but {} says {v}",
                    version_source.name(),
                    source.name()
                ),
            });
        }
    }
    let debug_build =
        elf.dynamic_symbol("_Py_RefTotal").is_some() || name_version.is_some_and(|(_, _, d)| d);
    let unsupported = |why: &str| RemoteError::UnsupportedVersion {
        pid,
        version: format!(
            "{version}{}",
            if debug_build { " (debug build)" } else { "" }
        ),
        why: why.to_string(),
    };
    let facts = facts::for_version(version.major, version.minor)
        .ok_or_else(|| unsupported("lastwords reads CPython 2.7 and 3.9 to 3.15"))?;

    // ---- the walker's layout ---------------------------------------------
    let (layout, layout_source) = if version.major == 2 {
        if debug_build {
            return Err(unsupported(
                "2.7 debug builds (Py_TRACE_REFS) move every object field; not supported yet",
            ));
        }
        (layout::PY27, "built-in 2.7 table")
    } else {
        match (version.minor, &debug_words) {
            (9..=12, _) if debug_build => {
                return Err(unsupported(
                    "debug builds of 3.9-3.12 have a different memory layout",
                ));
            }
            (9..=12, _) => (
                *layout::table_for(version.minor).ok_or_else(|| unsupported("no table"))?,
                "built-in table",
            ),
            (13..=15, Some(words)) => {
                if debug_build && version.minor == 13 {
                    return Err(unsupported(
                        "3.13 debug builds have a different memory layout",
                    ));
                }
                let decoded = debug_offsets::decode(words, u64::from(version.hex()))
                    .map_err(|e| unsupported(&e.to_string()))?;
                (decoded, "_Py_DebugOffsets")
            }
            (13..=15, None) => {
                return Err(unsupported("_PyRuntime holds no _Py_DebugOffsets"));
            }
            _ => return Err(unsupported("lastwords reads CPython 2.7 and 3.9 to 3.15")),
        }
    };

    // ---- types -----------------------------------------------------------
    let need = |name: &'static str| {
        sym(name).ok_or_else(|| RemoteError::Inconsistent {
            pid,
            what: format!("{} does not export {name}", c.file.opened_from.display()),
        })
    };
    let types = Types {
        type_type: need("PyType_Type")?,
        unicode: need("PyUnicode_Type")?,
        string: if version.major == 2 {
            Some(need("PyString_Type")?)
        } else {
            None
        },
        bytes: if version.major == 3 {
            Some(need("PyBytes_Type")?)
        } else {
            None
        },
        code: need("PyCode_Type")?,
        module: need("PyModule_Type")?,
    };
    // Every type object's type is `type`: checks the bias and the symbols
    // against the target's memory.
    for t in [
        Some(types.type_type),
        Some(types.unicode),
        types.string,
        types.bytes,
        Some(types.code),
        Some(types.module),
    ]
    .into_iter()
    .flatten()
    {
        let ob_type = read_ptr(mem, cx, t, 8)?;
        if ob_type != types.type_type {
            return Err(RemoteError::Inconsistent {
                pid,
                what: format!("the type object at 0x{t:x} is not a type (load bias 0x{bias:x})"),
            });
        }
    }

    // ---- the interpreter head ---------------------------------------------
    let dw = facts::debug_words(version.minor).filter(|_| version.major == 3);
    let word = |i: usize| -> Option<usize> { usize::try_from(*debug_words.as_ref()?.get(i)?).ok() };
    let (interp_head, interp_head_source) = if version.major == 2 {
        let var = match elf.static_symbol("interp_head").and_then(|s| addr(s.value)) {
            Some(a) => (a, ".symtab interp_head"),
            None => {
                let f = elf
                    .dynamic_symbol("PyInterpreterState_Head")
                    .ok_or_else(|| unsupported("PyInterpreterState_Head is not exported"))?;
                let code = elf.bytes_at(f.value, 16).unwrap_or(&[]);
                let target = x86::returned_load(code, f.value)
                    .and_then(addr)
                    .ok_or_else(|| {
                        unsupported("interp_head: no .symtab, and PyInterpreterState_Head is not `return interp_head` as lastwords knows it (x86-64 only)")
                    })?;
                (target, "PyInterpreterState_Head decoded")
            }
        };
        (read_ptr(mem, cx, var.0, 0)?, var.1)
    } else {
        let rt = runtime.ok_or_else(|| unsupported("_PyRuntime not found"))?;
        let offset = match dw.and_then(|w| word(w.runtime_interpreters_head)) {
            Some(o) => o,
            None => facts
                .runtime_interpreters_head
                .ok_or_else(|| unsupported("no _PyRuntime layout"))?,
        };
        (
            read_ptr(mem, cx, rt, offset)?,
            "_PyRuntime.interpreters.head",
        )
    };
    if interp_head == 0 {
        return Err(RemoteError::Inconsistent {
            pid,
            what: "the interpreter list is empty (starting up or shutting down?)".into(),
        });
    }
    // The runtime's list of interpreters ends.
    let interp_next = dw
        .and_then(|w| word(w.interp_next))
        .unwrap_or(facts.interp_next);
    let mut interpreters = 0usize;
    let mut i = interp_head;
    while i != 0 {
        interpreters = interpreters.saturating_add(1);
        if interpreters > MAX_INTERPRETERS {
            return Err(RemoteError::Inconsistent {
                pid,
                what: "the interpreter list does not end".into(),
            });
        }
        i = read_ptr(mem, cx, i, interp_next)?;
    }

    // ---- GIL and tids -----------------------------------------------------
    let gil = match (facts.gil, dw) {
        (Gil::CurrentThreadState, _) => GilAt::CurrentThreadState {
            var: need("_PyThreadState_Current")?,
        },
        (
            Gil::Runtime {
                state,
                locked,
                last_holder,
                ..
            },
            _,
        ) => {
            let rt = runtime.ok_or_else(|| unsupported("_PyRuntime not found"))?;
            let gil = add(pid, rt, state)?;
            GilAt::State {
                locked: add(pid, gil, locked)?,
                last_holder: add(pid, gil, last_holder)?,
            }
        }
        (
            Gil::Interpreter {
                pointer,
                locked,
                last_holder,
            },
            w,
        ) => {
            // 3.13+: the published offsets win over the table.
            let (pointer, locked, last_holder) = match w.and_then(|w| {
                let own = word(w.interp_gil_runtime_state)?;
                Some((
                    word(w.interp_ceval_gil)?,
                    word(w.interp_gil_locked)?.checked_sub(own)?,
                    word(w.interp_gil_holder)?.checked_sub(own)?,
                ))
            }) {
                Some(published) => published,
                None => (pointer, locked, last_holder),
            };
            let gil = read_ptr(mem, cx, interp_head, pointer)?;
            if gil == 0 {
                return Err(RemoteError::Inconsistent {
                    pid,
                    what: "the interpreter has no GIL (free-threaded?)".into(),
                });
            }
            GilAt::State {
                locked: add(pid, gil, locked)?,
                last_holder: add(pid, gil, last_holder)?,
            }
        }
    };
    let tid = match facts.tid {
        Tid::NativeThreadId(offset) => TidAt::ThreadState {
            offset: dw
                .and_then(|w| word(w.tstate_native_thread_id))
                .unwrap_or(offset),
        },
        Tid::ThroughPthread => {
            let (offset, source) = pthread_tid_offset(source, &elf)
                .unwrap_or((facts::GLIBC_PTHREAD_TID, "built-in (glibc x86-64)"));
            TidAt::Pthread { offset, source }
        }
    };

    let thread_offsets = ThreadOffsets {
        interp_threads_head: layout.interp_threads_head,
        tstate_next: layout.tstate_next,
        tstate_interp: layout.tstate_interp,
        tstate_thread_id: layout.tstate_thread_id,
    };
    let mut interp = Interpreter {
        pid,
        live,
        version,
        version_source,
        version_sources: sources,
        debug_build,
        binary: Binary {
            path: first.path().map(PathBuf::from).unwrap_or_default(),
            opened_through: c.through,
            shared: first.file_name().starts_with(b"libpython"),
            load_bias: bias,
            build_id: elf.build_id().map(<[u8]>::to_vec),
            has_symtab: elf.has_symtab(),
        },
        facts,
        runtime,
        runtime_source,
        interp_head,
        interp_head_source,
        interpreters,
        types,
        layout,
        layout_source,
        gil,
        tid,
        thread_offsets,
        threads: Vec::new(),
    };
    // The thread list must hold together: every state points back at the
    // interpreter. The target runs meanwhile: a thread that starts or ends
    // while the list is read can tear it, so a torn list is read again
    // (a wrong layout tears it every time).
    let tasks = source.tasks();
    let attempts = if live { THREAD_LIST_ATTEMPTS } else { 0 };
    let mut attempt = 0u32;
    interp.threads = loop {
        match interp.read_threads(mem, &tasks) {
            Err(RemoteError::Inconsistent { .. }) if attempt < attempts => {
                attempt = attempt.saturating_add(1);
                std::thread::yield_now();
            }
            other => break other?,
        }
    };
    if interp.threads.is_empty() {
        return Err(RemoteError::Inconsistent {
            pid,
            what: "the interpreter has no thread (shutting down?)".into(),
        });
    }
    Ok(interp)
}

/// The most bytes of a thread state that [`Interpreter::read_threads`]
/// reads at once (its fields lie within 0x100 bytes on every version).
const TSTATE_WINDOW: usize = 512;

/// The bytes at `base..base + len` of a memory, read at once, in front of
/// it: reads inside them are served from the copy, the others (or all, when
/// the window could not be read) go to the memory itself.
struct Window<'m, M: Memory> {
    mem: &'m M,
    base: usize,
    bytes: [u8; TSTATE_WINDOW],
    len: usize,
}

impl<'m, M: Memory> Window<'m, M> {
    fn read(mem: &'m M, base: usize, len: Option<usize>) -> Self {
        let mut w = Window {
            mem,
            base,
            bytes: [0; TSTATE_WINDOW],
            len: 0,
        };
        if let Some(len) = len
            && let Some(dst) = w.bytes.get_mut(..len)
            && mem.read_bytes(base, dst).is_ok()
        {
            w.len = len;
        }
        w
    }
}

impl<M: Memory> Memory for Window<'_, M> {
    fn read_bytes(
        &self,
        addr: usize,
        dst: &mut [u8],
    ) -> Result<(), lastwords_core::memory::BadAddress> {
        let inside = addr
            .checked_sub(self.base)
            .and_then(|start| Some(start..start.checked_add(dst.len())?))
            .filter(|r| r.end <= self.len)
            .and_then(|r| self.bytes.get(r));
        match inside {
            Some(src) => {
                dst.copy_from_slice(src);
                Ok(())
            }
            None => self.mem.read_bytes(addr, dst),
        }
    }
}

/// `n` u64 words at `addr`.
fn read_words<M: Memory>(mem: &M, addr: usize, n: usize) -> Option<Vec<u64>> {
    let mut raw = vec![0u8; n.checked_mul(8)?];
    mem.read_bytes(addr, &mut raw).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .collect(),
    )
}

/// The version `Py_GetVersion` knows: its code refers to the `PY_VERSION`
/// literal it formats (a RIP-relative `lea` into the file) and to the static
/// buffer it fills and returns (a `lea`, or `mov eax, imm32` in a non-PIE
/// executable), which holds `sys.version` in a running interpreter. The
/// first candidate that reads as a version wins: from the file if it is
/// there, else from the target's memory (its first word).
fn py_get_version<M: Memory>(elf: &Elf<'_>, mem: &M, bias: usize) -> Option<Version> {
    let f = elf.dynamic_symbol("Py_GetVersion")?;
    let len = usize::try_from(f.size)
        .ok()
        .filter(|n| (1..=512).contains(n))
        .unwrap_or(128);
    let code = elf.bytes_at(f.value, len)?;
    let mut candidates = x86::lea_targets(code, f.value);
    candidates.extend(x86::mov_eax_immediates(code));
    candidates.into_iter().find_map(|t| {
        if let Some(v) = elf.c_string_at(t, 32).and_then(Version::parse) {
            return Some(v);
        }
        let at = usize::try_from(t).ok()?.checked_add(bias)?;
        let text = read_c_string(mem, at, 64)?;
        let first = text.split(|&b| b == b' ').next()?;
        Version::parse(first)
    })
}

/// glibc's offset of `tid` in `struct pthread`, from the target's libc
/// (`_thread_db_pthread_tid`, which glibc keeps for libthread_db: `{bits,
/// count, offset}`), or from the interpreter's file when glibc is linked in.
fn pthread_tid_offset<S: Source>(source: &S, interp: &Elf<'_>) -> Option<(usize, &'static str)> {
    let decode = |elf: &Elf<'_>| -> Option<usize> {
        let s = elf.symbol("_thread_db_pthread_tid")?;
        let d = elf.bytes_at(s.value, 12)?;
        let word = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(
                d.get(i..i.checked_add(4)?)?.try_into().ok()?,
            ))
        };
        let (bits, count, offset) = (word(0)?, word(4)?, word(8)?);
        (bits == 32 && count == 1 && offset < 4096)
            .then(|| usize::try_from(offset).ok())
            .flatten()
    };
    if let Some(m) = source.mappings().iter().find(|m| {
        let n = m.file_name();
        n.starts_with(b"libc.so") || n.starts_with(b"libc-2.")
    }) && let Ok((file, _)) = source.open(m)
        && let Ok(elf) = Elf::parse(file.bytes())
        && let Some(o) = decode(&elf)
    {
        return Some((o, "libc _thread_db_pthread_tid"));
    }
    decode(interp).map(|o| (o, "static glibc _thread_db_pthread_tid"))
}

/// A NUL-terminated string of at most `max` bytes at `addr` (read up to the
/// end of its page if the whole cannot be read).
fn read_c_string<M: Memory>(mem: &M, addr: usize, max: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; max];
    let mut len = max;
    if mem.read_bytes(addr, &mut buf).is_err() {
        let to_page_end = 4096usize.wrapping_sub(addr & 4095);
        len = len.min(to_page_end);
        mem.read_bytes(addr, buf.get_mut(..len)?).ok()?;
    }
    let text = buf.get(..len)?;
    let nul = text.iter().position(|&b| b == 0)?;
    Some(text.get(..nul)?.to_vec())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use super::*;
    use crate::maps;

    /// Memory of `bytes` at `base`, counting the reads that reach it.
    struct Counted {
        base: usize,
        bytes: Vec<u8>,
        reads: std::cell::Cell<usize>,
    }

    impl Memory for Counted {
        fn read_bytes(
            &self,
            addr: usize,
            dst: &mut [u8],
        ) -> Result<(), lastwords_core::memory::BadAddress> {
            self.reads.set(self.reads.get() + 1);
            let start = addr
                .checked_sub(self.base)
                .ok_or(lastwords_core::memory::BadAddress(addr))?;
            let src = self
                .bytes
                .get(start..start + dst.len())
                .ok_or(lastwords_core::memory::BadAddress(addr))?;
            dst.copy_from_slice(src);
            Ok(())
        }
    }

    #[test]
    fn a_window_serves_what_it_holds_and_passes_the_rest_on() {
        let mem = Counted {
            base: 0x1000,
            bytes: (0..=255u8).collect(),
            reads: std::cell::Cell::new(0),
        };
        let w = Window::read(&mem, 0x1010, Some(32));
        assert_eq!(mem.reads.get(), 1);
        assert_eq!(w.read::<u8>(0x1010).unwrap(), 0x10);
        assert_eq!(
            w.read::<u64>(0x1028).unwrap(),
            u64::from_le_bytes(*b"\x28\x29\x2a\x2b\x2c\x2d\x2e\x2f")
        );
        assert_eq!(mem.reads.get(), 1, "reads inside the window");
        // Straddling its end, before it, or past the memory: passed on.
        assert_eq!(
            w.read::<u64>(0x102c).unwrap(),
            u64::from_le_bytes(*b"\x2c\x2d\x2e\x2f\x30\x31\x32\x33")
        );
        assert_eq!(w.read::<u8>(0x100f).unwrap(), 0x0f);
        assert!(w.read::<u8>(0x1100).is_err());
        assert_eq!(mem.reads.get(), 4);
        // A window that cannot be read (it runs off the memory) holds
        // nothing: every read is the memory's own.
        let w = Window::read(&mem, 0x10f0, Some(32));
        assert_eq!(w.read::<u8>(0x10f0).unwrap(), 0xf0);
        assert!(w.read::<u64>(0x10fc).is_err());
        assert_eq!(mem.reads.get(), 7);
        // No span (fields too far apart): no read up front.
        let _ = Window::read(&mem, 0x1000, None);
        assert_eq!(mem.reads.get(), 7);
    }

    #[test]
    fn versions_parse() {
        let v = Version::parse(b"3.9.18").unwrap();
        assert_eq!(v.hex(), 0x030912f0);
        assert_eq!(v.to_string(), "3.9.18");
        assert_eq!(Version::parse(b"2.7.18").unwrap().hex(), 0x020712f0);
        assert_eq!(Version::parse(b"3.15.0a1").unwrap().hex(), 0x030f00a1);
        assert_eq!(Version::parse(b"3.14.0rc2").unwrap().hex(), 0x030e00c2);
        assert_eq!(Version::parse(b"3.13.0+").unwrap().hex(), 0x030d00f0);
        assert_eq!(Version::from_hex(0x030e0af0).to_string(), "3.14.10");
        for bad in [
            &b""[..],
            b"3",
            b"3.9",
            b"3.9.",
            b"x.y.z",
            b"3.9.18z",
            b"4.0.0",
            b"3.9.999",
            b"3.9.1rc99",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn file_names_give_versions() {
        assert_eq!(
            version_from_name(b"libpython3.9.so.1.0"),
            Some((3, 9, false))
        );
        assert_eq!(
            version_from_name(b"libpython3.14d.so.1.0"),
            Some((3, 14, true))
        );
        assert_eq!(version_from_name(b"python3.15d"), Some((3, 15, true)));
        assert_eq!(version_from_name(b"python2.7"), Some((2, 7, false)));
        assert_eq!(version_from_name(b"python3"), None);
        assert_eq!(version_from_name(b"libc.so.6"), None);
    }

    fn mapping(start: usize, offset: u64) -> Mapping {
        Mapping {
            start,
            end: start + 0x1000,
            read: true,
            write: false,
            exec: false,
            private: true,
            offset,
            dev: (8, 1),
            inode: 7,
            name: b"/lib/libpython3.11.so.1.0".to_vec(),
            deleted: false,
        }
    }

    /// The load bias of our own executable, among duplicate mappings of it.
    #[test]
    fn bias_survives_duplicate_mappings() {
        let pid = std::process::id() as i32;
        let maps = maps::read(pid).unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let mine: Vec<&Mapping> = maps
            .iter()
            .filter(|m| m.path() == Some(exe.as_path()))
            .collect();
        let file = MappedFile::open(&exe).unwrap();
        let elf = Elf::parse(file.bytes()).unwrap();
        let bias = load_bias(&mine, &elf).unwrap();
        // A function of ours is where the bias says.
        let here = bias_survives_duplicate_mappings as *const () as usize;
        assert!(mine.iter().any(|m| m.exec && m.contains(here, 1)));
        assert!(bias <= here);
        // Add decoys: the same file mapped again elsewhere at one offset
        // (a trampoline page), before and after the real mappings.
        let first_exec = mine.iter().find(|m| m.exec).unwrap();
        let low = mapping(0x10000, 0);
        let high = mapping(0x7fff_0000_0000, first_exec.offset);
        let mut with_decoys = vec![&low];
        with_decoys.extend(mine.iter().copied());
        with_decoys.push(&high);
        assert_eq!(load_bias(&with_decoys, &elf), Some(bias));
        assert_eq!(load_bias(&[], &elf), None);
    }
}
