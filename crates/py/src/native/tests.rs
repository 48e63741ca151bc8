//! The in-process C stack: real unwinds of this test binary, naming, and the
//! stdlib's line format.

use super::*;
use crate::writer::{FlushPolicy, VecSink};
use core::sync::atomic::AtomicUsize;
use lastwords_core::unwind::dynsym::dynsym_lookup;
use lastwords_core::unwind::symbolise::{Name, NoFiles, Symbolised};
use lastwords_core::unwind::{Regs, arch};

/// The symbol names of `frames` (the first exact, the rest return
/// addresses), from the files, as the report names them.
fn names_of(frames: &[usize]) -> Vec<String> {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    let files = files::LocalFiles::new(&mem);
    let named = Symbolised::new(&objects, &files, frames);
    named
        .frames()
        .iter()
        .map(|f| match f.symbol.and_then(|(_, n)| named.name(n)) {
            Some(Name::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Name::Remote(at)) => remote_string(at),
            None => format!("?{:#x}", f.addr),
        })
        .collect()
}

fn remote_string(at: usize) -> String {
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    output::write_name(&LocalChecked::new(), &mut out, Name::Remote(at));
    String::from_utf8(out.into_sink().bytes).unwrap()
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

fn object_name(addr: usize) -> Option<String> {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    objects.find(addr).map(|o| remote_string(o.name))
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
    let first = object_name(frames[0]);
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

#[test]
fn objects_name_the_main_program_by_argv0_and_find_libc_and_the_vdso() {
    prepare().unwrap();
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    assert!(objects.len() > 2);
    let main = objects.find(names_of as *const () as usize).unwrap();
    assert!(main.is_main);
    let argv0 = std::env::args_os().next().unwrap();
    assert_eq!(
        remote_string(main.name).as_bytes(),
        argv0.as_encoded_bytes()
    );
    let libc_found = objects.find(libc::strlen as *const () as usize).unwrap();
    assert!(remote_string(libc_found.name).contains("libc.so"));
    assert!(libc_found.eh_frame_hdr != 0 && libc_found.bias != 0 && libc_found.dynamic != 0);
    // The vDSO has no file: named from its .dynsym in memory.
    // SAFETY: getauxval has no preconditions.
    let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as usize;
    if vdso != 0 {
        let object = objects.find(vdso).unwrap();
        assert_eq!(remote_string(object.name), "linux-vdso.so.1");
    }
    // Without a snapshot, lookups follow the list and agree.
    let unsnapshotted = Objects::unsnapshotted(&mem, process());
    assert_eq!(
        unsnapshotted.find(libc::strlen as *const () as usize),
        Some(libc_found)
    );
    // Without _r_debug from prepare(), DT_DEBUG finds the same list.
    let through_dynamic = Objects::snapshot(
        &mem,
        Process {
            r_debug: 0,
            ..process()
        },
    );
    assert_eq!(through_dynamic.len(), objects.len());
}

#[test]
fn dynsym_in_memory_agrees_with_dladdr() {
    prepare().unwrap();
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    let addr = libc::strlen as *const () as usize;
    let found = objects.find(addr).unwrap();
    // A plain export, and strlen's IFUNC-selected implementation.
    for f in [libc::qsort as *const () as usize, addr] {
        let ours = dynsym_lookup(&mem, found.dynamic, found.bias, f + 1)
            .map(|(start, sym)| (start, remote_string(sym)));
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
}

#[test]
fn static_functions_are_named_from_the_file_and_not_from_memory() {
    prepare().unwrap();
    let f = lastwords_known_function_inner as *const () as usize;
    let names = names_of(&[f + 1]);
    assert!(
        names[0].contains("lastwords_known_function_inner"),
        "{names:?}"
    );
    // From memory alone (no files), a static function has no name.
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    let named = Symbolised::new(&objects, &NoFiles, &[f + 1]);
    let symbol = named.frames()[0].symbol.and_then(|(_, n)| named.name(n));
    assert!(
        !matches!(symbol, Some(Name::Remote(at)) if remote_string(at).contains("lastwords_known_function_inner")),
        "{symbol:?}"
    );
}

#[test]
fn garbage_stacks_end_the_walk_without_faulting() {
    prepare().unwrap();
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    let files = files::LocalFiles::new(&mem);
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
        for r in 0..arch::NREGS as u16 {
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
        let n = lastwords_core::unwind::step::unwind(&mem, &objects, regs, &mut frames, 0);
        assert!(n <= MAX_FRAMES);
        // Whatever came out can be printed.
        let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        output::write_section(&objects, &files, &mut out, &frames[..n], true);
    }
}

fn line(addr: usize, object: Option<(&[u8], usize)>, symbol: Option<(usize, &[u8])>) -> String {
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    output::write_line(
        &LocalChecked::new(),
        &mut out,
        addr,
        object.map(|(n, b)| (Name::Bytes(n), b)),
        symbol.map(|(s, n)| (s, Some(Name::Bytes(n)))),
    );
    String::from_utf8(out.into_sink().bytes).unwrap()
}

#[test]
fn formats_like_the_stdlib() {
    let prog: &[u8] = b"python3.14";
    let lib: &[u8] = b"/usr/lib/x86_64-linux-gnu/libc.so.6";
    let base = 0x7f00_0000_0000usize;
    // In a symbol, exact pc.
    assert_eq!(
        line(
            0x49_004a,
            Some((prog, 0)),
            Some((0x49_0000, b"_PyEval_EvalFrameDefault"))
        ),
        "  Binary file \"python3.14\", at _PyEval_EvalFrameDefault+0x4a [0x49004a]\n"
    );
    // No symbol, bias 0: bare.
    assert_eq!(
        line(0x53_d28e, Some((prog, 0)), None),
        "  Binary file \"python3.14\" [0x53d28e]\n"
    );
    // No symbol, a bias: relative to it; and below it, negative.
    assert_eq!(
        line(base + 0x4_06b0, Some((lib, base)), None),
        "  Binary file \"/usr/lib/x86_64-linux-gnu/libc.so.6\", at +0x406b0 [0x7f00000406b0]\n"
    );
    assert_eq!(
        line(base + 0x10, Some((lib, base + 0x10_0000)), None),
        "  Binary file \"/usr/lib/x86_64-linux-gnu/libc.so.6\", at -0xffff0 [0x7f0000000010]\n"
    );
    // No object.
    assert_eq!(
        line(0x1234_5678, None, None),
        "  Binary file '<unknown>' [0x12345678]\n"
    );
}

#[test]
fn truncation_and_empty_stacks() {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, process());
    let render = |frames: &[usize]| {
        let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        output::write_section(&objects, &NoFiles, &mut out, frames, false);
        String::from_utf8(out.into_sink().bytes).unwrap()
    };
    let frames = [0x1000usize; 40];
    let got = render(&frames);
    assert_eq!(got.lines().count(), 1 + MAX_FRAMES + 1);
    assert!(got.ends_with("  <truncated rest of calls>\n"));
    assert!(!render(&frames[..MAX_FRAMES - 1]).contains("truncated"));
    assert_eq!(
        render(&[]),
        "Current thread's C stack trace (most recent call first):\n  <system returned no stack trace>\n"
    );
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

#[test]
fn a_fifo_in_place_of_a_file_is_refused_without_blocking() {
    let path = std::env::temp_dir().join(format!("lastwords-fifo-{}\0", std::process::id()));
    let c_path = path.as_os_str().as_encoded_bytes().to_vec();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr().cast(), 0o600) }, 0);
    // Without O_NONBLOCK, this open would wait for a writer forever.
    assert!(files::image_of(&c_path).is_none());
    // SAFETY: the same path.
    unsafe { libc::unlink(c_path.as_ptr().cast()) };
}
