//! The `lastwords` command.
//!
//! ```text
//! lastwords [--file PATH] [--python PATH] run ARGS...   python ARGS..., with lastwords enabled
//! lastwords --version
//! ```
//!
//! Options of lastwords itself come before the subcommand: everything after
//! `run` belongs to Python. Exit status: that of the program for `run`; 2
//! for a usage error; 1 when the command itself fails, with one line on
//! stderr.

#![deny(unsafe_code)]

mod run;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "\
usage: lastwords [--file PATH] [--python PATH] run [PYTHON ARGS...]
       lastwords --version

Commands:
  run ARGS...     run `python ARGS...` with lastwords enabled: if the program
                  crashes, the traceback of every thread is written to stderr

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
