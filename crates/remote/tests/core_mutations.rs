//! Cores are hostile input: a property test over mutated cores of a real
//! Python process.
//!
//! The test makes the core itself (no gdb needed): it starts a Python
//! process that parks a thread a few calls deep, copies its memory the way
//! the kernel does (writable and anonymous mappings whole, the first page of
//! each file mapping, `NT_FILE`, `NT_PRSTATUS` per thread, `NT_PRPSINFO`,
//! `NT_AUXV`), and checks that the core reads back to the parked stacks.
//! Then it damages copies of that core — bytes flipped in the headers, the
//! notes, the memory; pointers planted in the interpreter's memory; cuts at
//! any length — and reads each one: every outcome must be a report or one
//! line of error, never a panic or a hang (every loop in the reader is
//! bounded: a hang would stop the test here). The damaged cores follow from
//! a fixed seed, so a failure repeats.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lastwords_core::cpython::walk::Walker;
use lastwords_core::memory::{Memory, ProcessMemory};
use lastwords_core::report::text::{Format, TextSink};
use lastwords_core::report::{Limits, Traversal};
use lastwords_core::writer::{FlushPolicy, VecSink, Writer};
use lastwords_remote::core_file::{CoreBytes, CoreFile};
use lastwords_remote::core_source::{CoreOptions, CoreSource};
use lastwords_remote::{discover_in, native};

const SCRIPT: &str = r#"
import sys, threading
release = threading.Lock(); release.acquire()
parked = threading.Semaphore(0)
def park(n):
    if n == 0:
        parked.release()
        release.acquire()
    else:
        park(n - 1)
t = threading.Thread(target=park, args=(4,)); t.daemon = True; t.start()
parked.acquire()
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.readline()
"#;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("LASTWORDS_TEST_PYTHON") {
        return p.into();
    }
    let pyenv = Path::new(&std::env::var_os("HOME").unwrap_or_default())
        .join(".pyenv/versions/3.11.7/bin/python3.11");
    if pyenv.exists() {
        return pyenv;
    }
    "python3".into()
}

struct Target {
    child: Child,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> Target {
    let mut child = Command::new(python())
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("a Python interpreter (LASTWORDS_TEST_PYTHON, pyenv's 3.11.7, or python3)");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    Target { child }
}

fn note(out: &mut Vec<u8>, kind: u32, desc: &[u8]) {
    out.extend(5u32.to_le_bytes());
    out.extend((desc.len() as u32).to_le_bytes());
    out.extend(kind.to_le_bytes());
    out.extend(b"CORE\0\0\0\0");
    out.extend(desc);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// A core of process `pid` as the kernel would write it with the default
/// `coredump_filter`.
fn make_core(pid: i32) -> Vec<u8> {
    // Stopped, for its registers (NT_PRSTATUS) and a consistent copy.
    let paused = lastwords_remote::attach::pause(pid, std::time::Duration::from_secs(10)).unwrap();
    let maps = lastwords_remote::maps::read(pid).unwrap();
    let mem = ProcessMemory::new(pid);
    // Mappings with anonymous pages, from smaps.
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut cowed = Vec::new();
    let mut start = 0usize;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, _)) = range.split_once('-')
            && let Ok(lo) = usize::from_str_radix(lo, 16)
        {
            start = lo;
        } else if let Some(kb) = line.strip_prefix("Anonymous:")
            && kb.trim().trim_end_matches(" kB") != "0"
        {
            cowed.push(start);
        }
    }
    let mut segments: Vec<(u64, u64, u32, Vec<u8>)> = Vec::new();
    for m in &maps {
        if !m.read || m.name.starts_with(b"[v") {
            continue;
        }
        let size = m.end - m.start;
        let file = m.path().is_some();
        // As the kernel: a file mapping with pages of its own (copied on
        // write: RELRO, which holds the loader's DT_DEBUG) whole.
        let dump = if !file || m.write || cowed.contains(&m.start) {
            size
        } else if m.offset == 0 {
            4096
        } else {
            0
        };
        let mut bytes = vec![0u8; dump];
        if dump > 0 && mem.read_bytes(m.start, &mut bytes).is_err() {
            bytes.clear();
        }
        let flags = 4 | if m.write { 2 } else { 0 } | if m.exec { 1 } else { 0 };
        segments.push((m.start as u64, size as u64, flags, bytes));
    }
    let mut notes = Vec::new();
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_by_key(|&t| (t != pid as u32, t));
    for tid in &tids {
        let mut d = vec![0u8; 336];
        d[32..36].copy_from_slice(&tid.to_le_bytes());
        // pr_reg at 112: the thread's user_regs_struct.
        let regs = paused.registers(*tid as i32).unwrap();
        for (i, w) in native::ptrace_words(&regs.raw).iter().enumerate() {
            d[112 + 8 * i..120 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        note(&mut notes, 1, &d);
    }
    let mut ps = vec![0u8; 136];
    ps[24..28].copy_from_slice(&(pid as u32).to_le_bytes());
    let comm = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    ps[40..40 + comm.len().min(15)].copy_from_slice(&comm[..comm.len().min(15)]);
    note(&mut notes, 3, &ps);
    note(
        &mut notes,
        6,
        &std::fs::read(format!("/proc/{pid}/auxv")).unwrap(),
    );
    let files: Vec<_> = maps.iter().filter(|m| m.path().is_some()).collect();
    let mut d = Vec::new();
    d.extend((files.len() as u64).to_le_bytes());
    d.extend(4096u64.to_le_bytes());
    for m in &files {
        d.extend((m.start as u64).to_le_bytes());
        d.extend((m.end as u64).to_le_bytes());
        d.extend((m.offset / 4096).to_le_bytes());
    }
    for m in &files {
        d.extend(&m.name);
        d.push(0);
    }
    note(&mut notes, 0x4649_4c45, &d);

    let phnum = segments.len() + 1;
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
    let mut offset = (64 + 56 * phnum) as u64;
    let mut headers = Vec::new();
    let mut ph = |kind: u32, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
        for w in [kind, flags] {
            headers.extend(w.to_le_bytes());
        }
        for w in [off, vaddr, 0, filesz, memsz, 1] {
            headers.extend(w.to_le_bytes());
        }
    };
    ph(4, 4, offset, 0, notes.len() as u64, 0);
    offset += notes.len() as u64;
    for (vaddr, size, flags, bytes) in &segments {
        ph(1, *flags, offset, *vaddr, bytes.len() as u64, *size);
        offset += bytes.len() as u64;
    }
    out.extend(headers);
    out.extend(&notes);
    for (_, _, _, bytes) in &segments {
        out.extend(bytes);
    }
    out
}

/// Read a core as `lastwords dump --core` does: its report, or its error
/// (one line).
fn read(bytes: Vec<u8>) -> Result<String, String> {
    let core = CoreFile::parse(CoreBytes::Owned(bytes), Path::new("mutated.core"))
        .map_err(|e| e.to_string())?;
    let source = CoreSource::new(core, CoreOptions::default())?;
    let interp = discover_in(&source).map_err(|e| e.to_string())?;
    let walker = Walker::new(&source, &interp.layout, interp.known_types());
    let mut traversal = Traversal::new(&walker);
    traversal.limits = Limits::LIFTED;
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let format = Format::for_version(interp.version.major, interp.version.minor);
    let mut sink = TextSink::new(&mut out, format, 500);
    let walked = traversal.all_threads(&mut sink, interp.interp_head, 0);
    // Native stacks (`--native`) over the same damage, from the threads'
    // registers in the core (damaged too, where the notes are).
    let threads: Vec<_> = source
        .core
        .threads
        .iter()
        .filter_map(|t| Some((t.tid, native::regs_from_words(&t.registers)?)))
        .collect();
    let stacks = native::native_stacks(
        &source,
        &source,
        native::process_from_auxv(&source.core.auxv),
        Path::new("/"),
        &threads,
        native::MAX_NATIVE_FRAMES,
    );
    assert!(
        stacks
            .values()
            .all(|s| s.frames.len() <= native::MAX_NATIVE_FRAMES)
    );
    let _ = source.command_line();
    let _ = source.unavailable_files();
    let mut text = String::from_utf8_lossy(&out.into_sink().bytes).into_owned();
    let mut summary: Vec<String> = stacks
        .values()
        .map(|s| {
            let evals = s.frames.iter().filter(|f| f.eval).count();
            format!(
                "native: {} frames, {} eval, {:?}\n",
                s.frames.len(),
                evals,
                s.end
            )
        })
        .collect();
    summary.sort();
    text.extend(summary);
    if let Err(why) = walked {
        text.push_str(why);
    }
    Ok(text)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_cores_give_a_report_or_one_error() {
    let target = start();
    let pid = target.child.id() as i32;
    let core = make_core(pid);
    drop(target);

    // The intact core reads back to the parked thread and the main thread.
    let report = read(core.clone()).unwrap();
    assert_eq!(report.matches("Thread 0x").count(), 2, "{report}");
    assert_eq!(report.matches(" in park\n").count(), 5, "{report}");
    assert!(report.contains(" in <module>\n"), "{report}");
    // Both threads' native stacks, whole, with the eval loop's frames.
    let natives: Vec<&str> = report
        .lines()
        .filter(|l| l.starts_with("native: "))
        .collect();
    assert_eq!(natives.len(), 2, "{report}");
    assert!(
        natives.iter().all(|l| l.ends_with(", Outermost")),
        "{report}"
    );
    assert!(natives.iter().all(|l| !l.contains(" 0 eval")), "{report}");

    // Where the damage goes: headers and notes (structure), and the
    // interpreter's structures the walker follows (the interpreter, thread
    // states, frames, names), found in the intact core.
    let parsed = CoreFile::parse(CoreBytes::Owned(core.clone()), Path::new("x")).unwrap();
    let notes_end = parsed.segments.iter().map(|s| s.offset).min().unwrap() as usize;
    let offset_of = |addr: usize| {
        let addr = addr as u64;
        let s = parsed
            .segments
            .iter()
            .find(|s| s.vaddr <= addr && addr + 8 <= s.vaddr + s.present)?;
        Some((s.offset + addr - s.vaddr) as usize)
    };
    let source = CoreSource::new(
        CoreFile::parse(CoreBytes::Owned(core.clone()), Path::new("x")).unwrap(),
        CoreOptions::default(),
    )
    .unwrap();
    let interp = discover_in(&source).unwrap();
    let walker = Walker::new(&source, &interp.layout, interp.known_types());
    let mut hot = vec![interp.interp_head];
    for t in &interp.threads {
        hot.push(t.tstate);
        let mut frame = walker.current_frame(t.tstate).unwrap();
        while frame != 0 {
            hot.push(frame);
            if let Ok(f) = walker.frame(frame) {
                hot.extend([f.filename, f.name]);
            }
            frame = walker.previous_frame(frame).unwrap();
        }
    }
    let hot: Vec<usize> = hot.into_iter().filter_map(offset_of).collect();
    assert!(hot.len() > 10, "{hot:?}");

    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut reports, mut errors, mut changed) = (0, 0, 0);
    for round in 0..2000 {
        let mut bytes = core.clone();
        match round % 8 {
            // A cut anywhere, and more often in the headers and notes.
            0 => {
                let n = if rng.below(2) == 0 {
                    rng.below(notes_end)
                } else {
                    rng.below(bytes.len())
                };
                bytes.truncate(n);
            }
            // Bytes flipped in the program headers and notes.
            1 | 2 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(notes_end);
                    bytes[i] ^= 1 << rng.below(8);
                }
            }
            // Words of the interpreter's structures replaced by garbage,
            // zero, their neighbours' values, or a nearby address.
            3..=5 => {
                for _ in 0..1 + rng.below(4) {
                    let i = (hot[rng.below(hot.len())] + rng.below(512)) & !7;
                    if i + 8 > bytes.len() {
                        continue;
                    }
                    let old = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
                    let value = match rng.below(5) {
                        0 => rng.next(),
                        1 => 0,
                        2 => old.wrapping_add(8 * rng.below(64) as u64),
                        3 => old ^ (1 << rng.below(64)),
                        _ => u64::MAX,
                    };
                    bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
            // Words anywhere in memory replaced by garbage, or by pointers
            // into memory.
            6 => {
                for _ in 0..1 + rng.below(2000) {
                    let i = (notes_end + rng.below(bytes.len() - notes_end - 8)) & !7;
                    let value = match rng.below(3) {
                        0 => rng.next(),
                        1 => 0,
                        _ => {
                            let j = (notes_end + rng.below(bytes.len() - notes_end - 8)) & !7;
                            u64::from_le_bytes(bytes[j..j + 8].try_into().unwrap())
                        }
                    };
                    bytes[i..i + 8].copy_from_slice(&value.to_le_bytes());
                }
            }
            // Garbage after the headers: a note segment of random bytes.
            _ => {
                let from = 64 + rng.below(notes_end - 64);
                for b in &mut bytes[from..notes_end] {
                    *b = rng.next() as u8;
                }
            }
        }
        match read(bytes) {
            Ok(text) => {
                reports += 1;
                if text != report {
                    changed += 1;
                }
            }
            Err(e) => {
                assert!(!e.contains('\n') && !e.is_empty(), "{e:?}");
                errors += 1;
            }
        }
    }
    eprintln!(
        "2000 damaged cores: {reports} reports ({changed} unlike the intact one), {errors} errors"
    );
    assert!(changed > 0 && errors > 0);
}
