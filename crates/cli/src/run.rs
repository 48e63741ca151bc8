//! `lastwords run ARGS...`: `python ARGS...` with lastwords enabled.
//!
//! Nothing of lastwords stands between the program and Python: the command
//! replaces itself (`execv`) with the interpreter that lastwords is installed
//! in, passing every argument after `run` unchanged, so that `-m`, `-c`,
//! `-X`, a missing script, `sys.argv`, `sys.path[0]` and the exit status are
//! exactly Python's. lastwords is switched on through the environment, which
//! children inherit: `LASTWORDS=1` (stand in for `faulthandler`, through the
//! wheel's `lastwords.pth`), `LASTWORDS_ENABLE=1` (enable it at start-up) and,
//! with `--file`, `LASTWORDS_FILE` (append reports to that file).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// What `lastwords [options] run` was asked for.
pub struct RunOptions {
    /// `--file PATH`: reports go there (appended) instead of stderr.
    pub file: Option<OsString>,
    /// `--python PATH`: the interpreter to run (default: see [`find_python`]).
    pub python: Option<OsString>,
}

/// Replace this process with Python running `args`; returns only on failure,
/// with the message to print.
pub fn exec_python(options: &RunOptions, args: &[OsString]) -> String {
    let python = match &options.python {
        Some(p) => PathBuf::from(p),
        None => match find_python() {
            Some(p) => p,
            None => {
                return "cannot find the Python that lastwords is installed in; \
                        give it with --python PATH or LASTWORDS_PYTHON"
                    .into();
            }
        },
    };
    let mut command = std::process::Command::new(&python);
    command
        .args(args)
        .env("LASTWORDS", "1")
        .env("LASTWORDS_ENABLE", "1");
    match &options.file {
        Some(file) => {
            // Relative to where the user typed it, not to wherever the
            // program may chdir before it crashes.
            let absolute = std::path::absolute(Path::new(file)).unwrap_or_else(|_| file.into());
            command.env("LASTWORDS_FILE", absolute);
        }
        None => {
            command.env_remove("LASTWORDS_FILE");
        }
    }
    // Python finds descriptors 0-2 as the user left them: the ones this
    // command found closed (and filled with /dev/null) are closed again.
    let opened = crate::OPENED_STANDARD.load(std::sync::atomic::Ordering::Relaxed);
    for fd in 0..3 {
        if opened & (1 << fd) != 0 {
            // SAFETY: closing a descriptor this process opened and no Rust
            // object owns (main's /dev/null).
            #[allow(unsafe_code)]
            unsafe {
                libc::close(fd)
            };
        }
    }
    let err = command.exec();
    format!("cannot run {}: {err}", python.display())
}

/// The interpreter lastwords is installed in: `$LASTWORDS_PYTHON`; else, for
/// a command in a virtual environment, its `bin/python`; for one in
/// `PREFIX/bin` (a system or `--user` install), the `pythonX.Y` whose
/// `PREFIX/lib/pythonX.Y/site-packages` holds lastwords, looked up next to
/// the command and then on `PATH`; else `python3` on `PATH`.
pub fn find_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LASTWORDS_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let exe = std::fs::read_link("/proc/self/exe").ok();
    let bin = exe.as_deref().and_then(Path::parent);
    if let Some(bin) = bin {
        // A virtual environment: its bin/python, which is what
        // `sys.executable` names there.
        let venv_python = bin.join("python");
        if bin.parent().is_some_and(|p| p.join("pyvenv.cfg").exists())
            && is_executable(&venv_python)
        {
            return Some(venv_python);
        }
        for version in installed_versions(bin) {
            let name = format!("python{version}");
            let beside = bin.join(&name);
            if is_executable(&beside) {
                return Some(beside);
            }
            if let Some(found) = on_path(OsStr::new(&name)) {
                return Some(found);
            }
        }
    }
    on_path(OsStr::new("python3"))
}

/// The `X.Y` of each `PREFIX/lib/pythonX.Y/site-packages/lastwords` next to
/// the command's `bin` directory.
fn installed_versions(bin: &Path) -> Vec<String> {
    let Some(lib) = bin.parent().map(|p| p.join("lib")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Vec::new();
    };
    let mut versions: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name();
            let version = name.as_bytes().strip_prefix(b"python")?;
            let has_lastwords = e.path().join("site-packages/lastwords").is_dir();
            has_lastwords.then(|| String::from_utf8_lossy(version).into_owned())
        })
        .collect();
    versions.sort();
    versions
}

fn is_executable(path: &Path) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access() reads a NUL-terminated path and has no other
    // preconditions.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } == 0;
    ok && path.is_file()
}

fn on_path(name: &OsStr) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}
