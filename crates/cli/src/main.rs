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

mod dump;
mod native;
mod processes;
mod run;

use std::ffi::OsString;
use std::process::ExitCode;

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

fn usage_error(message: &str) -> ExitCode {
    eprintln!("lastwords: {message}\n{USAGE}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut options = run::RunOptions {
        file: None,
        python: None,
    };
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--version") => {
                println!("lastwords {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
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
                return ExitCode::from(1);
            }
            _ => {
                return usage_error(&format!("unknown command or option {arg:?}"));
            }
        }
    }
    usage_error("a command is required")
}

/// `lastwords dump ...`.
fn dump_command(args: Vec<OsString>) -> ExitCode {
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
                return ExitCode::SUCCESS;
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
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lastwords: {message}");
            ExitCode::from(1)
        }
    }
}
