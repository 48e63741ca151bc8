//! The `lastwords` command.
//!
//! ```text
//! lastwords [--file PATH] [--python PATH] run ARGS...   python ARGS..., with lastwords enabled
//! lastwords dump [--json] [--pause] [--native] [--subprocesses] [--all] [--stdlib-format] [--repeat N] PID
//! lastwords dump [--json] [--native] [--all] [--stdlib-format] --core CORE [--executable PATH] [--root DIR]
//! lastwords --version
//! ```
//!
//! Options of lastwords itself come before the subcommand: everything after
//! `run` belongs to Python. Exit status: that of the program for `run`; 0
//! for a dump; 2 for a usage error; 1 when the command itself fails, with
//! one line on stderr.

#![deny(unsafe_code)]
// The entry is `main` below, not Rust's runtime start: see there. (Unit
// tests keep the test harness's.)
#![cfg_attr(not(test), no_main)]

mod dump;
mod native;
mod processes;
mod run;

use std::ffi::OsString;
use std::sync::atomic::AtomicU8;

/// The command's exit status (see the module docs).
type ExitStatus = i32;

const USAGE: &str = "\
usage: lastwords [--file PATH] [--python PATH] run [PYTHON ARGS...]
       lastwords dump [--json] [--pause] [--native] [--subprocesses] [--all] [--stdlib-format] PID
       lastwords dump [--json] [--native] [--all] [--stdlib-format] --core CORE [--executable PATH] [--root DIR]
       lastwords --version

Commands:
  run ARGS...     run `python ARGS...` with lastwords enabled: if the program
                  crashes, the traceback of every thread is written to stderr
  dump PID        print the Python stack of every thread of process PID (any
                  CPython 2.7 or 3.9-3.15, which need not have imported
                  lastwords), without stopping it
  dump --core CORE
                  the same from a core file (the kernel's, gcore's, or
                  systemd-coredump's compressed one)

Options of dump:
  --json          one JSON document (schema/report.schema.json)
  --pause         stop the process's threads while they are read (ptrace), for
                  a consistent snapshot; says how long they were stopped
  --native        each thread's native (C) frames too, merged with its Python
                  frames (which replace the interpreter's eval-loop frames),
                  one per line: `Binary file \"LIBRARY\", at FUNCTION+0xOFF
                  [0xPC]` (`at +0xOFF` where no symbol covers the address);
                  implies --pause for a process (registers come from ptrace)
  --subprocesses  also every Python process below PID, each under its pid and
                  command line
  --all           lift the limits (100 threads, 100 frames, 256 native frames,
                  500 characters)
  --stdlib-format the stdlib's text only: no process header, no thread names
                  before 3.14, no GIL marker
  --repeat N      (benchmarks) read the process N times, print the last report
                  and, on stderr, the time a walk took
  --executable PATH
                  (with --core) the main program, where the path the core
                  names does not lead to it
  --root DIR      (with --core) look for the files the core names under DIR,
                  as if it were / (a core from a container, a chroot or
                  another machine)

Options (before the command):
  --file PATH     append crash reports to PATH instead of stderr
  --python PATH   the interpreter to run (default: the one lastwords is
                  installed in; also LASTWORDS_PYTHON)
  -h, --help      show this help
  --version       show the version";

fn usage_error(message: &str) -> ExitStatus {
    eprintln!("lastwords: {message}\n{USAGE}");
    2
}

/// The process's entry, in place of Rust's runtime start, which before the
/// program's main reads `/proc/self/maps` (glibc's `pthread_getattr_np`, to
/// find the main thread's stack for a stack-overflow message) and sets up
/// SIGSEGV/SIGBUS handlers with an alternate stack: 0.1-0.15 ms of every
/// command (a `lastwords dump --native` takes ~3 ms). What of it the command
/// needs is done here: descriptors 0-2 open, SIGPIPE ignored (a closed pipe
/// is an error the command reports). A stack overflow is a plain SIGSEGV.
/// `std::env::args_os` needs no runtime start: glibc passes the arguments to
/// std's initialiser. `std::process::exit` flushes stdout, as returning
/// from a Rust main does.
#[cfg(not(test))]
#[allow(unsafe_code)]
// SAFETY: the C entry glibc's start code calls once; the program defines no
// other `main` (no Rust `fn main` under `no_main`).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    standard_descriptors_open();
    // SAFETY: setting a signal's disposition to SIG_IGN; nothing else runs yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    std::process::exit(command())
}

/// The standard descriptors (bit `fd`) that were closed at start and hold
/// /dev/null since: `run` closes them again before it execs Python, which
/// must find them as the user left them.
static OPENED_STANDARD: AtomicU8 = AtomicU8::new(0);

/// Where descriptor 0, 1 or 2 is closed, open /dev/null in its place, so
/// that a file the command opens for writing (a symbol index) never takes
/// its number and receives the report (what Rust's runtime start does).
#[cfg(not(test))]
#[allow(unsafe_code)]
fn standard_descriptors_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes the three pollfd of a live array.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; open returns the lowest free
            // descriptor, which is this one (the lower ones are open).
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == pfd.fd {
                OPENED_STANDARD.fetch_or(1 << pfd.fd, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// The command line's work; its exit status.
#[cfg_attr(test, allow(dead_code))]
fn command() -> ExitStatus {
    let mut args = std::env::args_os().skip(1);
    let mut options = run::RunOptions {
        file: None,
        python: None,
    };
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return 0;
            }
            Some("--version") => {
                println!("lastwords {}", env!("CARGO_PKG_VERSION"));
                return 0;
            }
            Some("--file") => match args.next() {
                Some(v) => options.file = Some(v),
                None => return usage_error("--file needs a path"),
            },
            Some("--python") => match args.next() {
                Some(v) => options.python = Some(v),
                None => return usage_error("--python needs a path"),
            },
            Some("dump") => return dump_command(args.collect()),
            Some("run") => {
                let rest: Vec<OsString> = args.collect();
                eprintln!("lastwords: {}", run::exec_python(&options, &rest));
                return 1;
            }
            _ => {
                return usage_error(&format!("unknown command or option {arg:?}"));
            }
        }
    }
    usage_error("a command is required")
}

/// `lastwords dump ...`.
fn dump_command(args: Vec<OsString>) -> ExitStatus {
    let mut options = dump::DumpOptions {
        pid: 0,
        json: false,
        pause: false,
        subprocesses: false,
        limits: lastwords_core::report::Limits::STDLIB,
        stdlib_format: false,
        repeat: 1,
        walk_only: false,
        core: None,
        executable: None,
        root: None,
        native: false,
    };
    let mut pid = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--repeat") => match args.next().and_then(|n| n.to_str()?.parse().ok()) {
                Some(n) if n >= 1 => options.repeat = n,
                _ => return usage_error("--repeat needs a count of at least 1"),
            },
            Some("--json") => options.json = true,
            Some("--pause") => options.pause = true,
            Some("--native") => options.native = true,
            Some("--subprocesses") => options.subprocesses = true,
            Some("--all") => options.limits = lastwords_core::report::Limits::LIFTED,
            Some("--stdlib-format") => options.stdlib_format = true,
            Some(flag @ ("--core" | "--executable" | "--root")) => {
                let Some(value) = args.next().filter(|v| !v.is_empty()) else {
                    return usage_error(&format!("{flag} needs a path"));
                };
                let value = Some(std::path::PathBuf::from(value));
                match flag {
                    "--core" => options.core = value,
                    "--executable" => options.executable = value,
                    _ => options.root = value,
                }
            }
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return 0;
            }
            Some(text) if pid.is_none() && !text.starts_with('-') => match text.parse::<i32>() {
                Ok(p) if p > 0 => pid = Some(p),
                _ => return usage_error(&format!("not a process id: {text:?}")),
            },
            _ => return usage_error(&format!("unknown option of dump: {arg:?}")),
        }
    }
    if options.core.is_some() {
        if pid.is_some() {
            return usage_error("dump takes a process id or --core CORE, not both");
        }
        if options.pause || options.subprocesses {
            return usage_error("--pause and --subprocesses are for a process, not a core");
        }
    } else if options.executable.is_some() || options.root.is_some() {
        return usage_error("--executable and --root go with --core CORE");
    }
    let pid = match pid {
        Some(pid) => pid,
        None if options.core.is_some() => 0,
        None => return usage_error("dump needs a process id"),
    };
    options.pid = pid;
    match dump::run(&options) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("lastwords: {message}");
            1
        }
    }
}
