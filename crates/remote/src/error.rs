//! Why another process cannot be read: one line each, saying what to do.

use std::fmt;

/// What stands between us and the target's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// Yama's `kernel.yama.ptrace_scope` (its value) forbids it.
    Yama(u8),
    /// The target runs as another user (its uid; ours).
    OtherUser { target_uid: u32, our_uid: u32 },
    /// Same user, but the target is not dumpable (setuid, capabilities, or
    /// `prctl(PR_SET_DUMPABLE, 0)`): only CAP_SYS_PTRACE helps.
    NotDumpable,
    /// None of the above is visible (a security module, a seccomp filter,
    /// a user namespace): CAP_SYS_PTRACE is what the kernel asks for.
    NoCapSysPtrace,
    /// Another tracer (a debugger, strace, another `--pause` dump) holds
    /// the process: a process has one tracer at a time. Its pid and name.
    AlreadyTraced { tracer: i32, name: String },
}

/// Every way `lastwords dump PID` can fail before the walker starts.
#[derive(Debug)]
pub enum RemoteError {
    NoSuchProcess(i32),
    PermissionDenied {
        pid: i32,
        /// What we were doing ("read the memory of", "attach to").
        doing: &'static str,
        why: Denial,
    },
    /// No mapping holds a CPython interpreter.
    NotPython {
        pid: i32,
        exe: String,
    },
    /// A CPython lastwords cannot read.
    UnsupportedVersion {
        pid: i32,
        version: String,
        why: String,
    },
    /// The target exited (or exec'd) while we read it.
    Exited(i32),
    /// The target had exited before it was read and its parent has not
    /// reaped it: only its pid and name are left.
    Zombie(i32),
    /// What we found does not hold together (a wrong layout, a corrupt or
    /// half-initialised interpreter).
    Inconsistent {
        pid: i32,
        what: String,
    },
    /// Any other system error, with what we were doing.
    Os {
        pid: i32,
        doing: String,
        error: std::io::Error,
    },
    /// A file the process had mapped, needed to read it, cannot be used:
    /// it is not here, or it is another build (a core's files).
    FileUnavailable {
        pid: i32,
        /// As the process saw it.
        path: String,
        /// What is wrong with it ("is not here (...)", "is not the file
        /// the process had: ...").
        why: String,
    },
    /// A file that is not a core lastwords can read.
    BadCore {
        core: String,
        what: String,
    },
    /// A failure while reading the interpreter of a core: about the process
    /// the core was taken from.
    InCore {
        core: String,
        error: Box<RemoteError>,
    },
}

/// Every message is one line, whatever the names in it hold: file names
/// come from the target (or a core) and may hold newlines or escapes, which
/// are shown escaped.
impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.write_raw(&mut text)?;
        for c in text.chars() {
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

impl RemoteError {
    /// The message, names as they are.
    fn write_raw(&self, f: &mut impl fmt::Write) -> fmt::Result {
        use RemoteError::*;
        match self {
            NoSuchProcess(pid) => write!(f, "no process with pid {pid}"),
            PermissionDenied { pid, doing, why } => {
                write!(f, "permission denied to {doing} process {pid}: ")?;
                match why {
                    Denial::Yama(1) => write!(
                        f,
                        "kernel.yama.ptrace_scope is 1 (only a parent may trace its children); \
                         run lastwords as root or with CAP_SYS_PTRACE, or set it to 0 \
                         (sysctl kernel.yama.ptrace_scope=0)"
                    ),
                    Denial::Yama(2) => write!(
                        f,
                        "kernel.yama.ptrace_scope is 2 (admin only); run lastwords as root \
                         or with CAP_SYS_PTRACE"
                    ),
                    Denial::Yama(n) => write!(
                        f,
                        "kernel.yama.ptrace_scope is {n} (no process may be traced until reboot)"
                    ),
                    Denial::OtherUser {
                        target_uid,
                        our_uid,
                    } => write!(
                        f,
                        "it belongs to uid {target_uid} and you are uid {our_uid}; run lastwords \
                         as that user or as root (sudo)"
                    ),
                    Denial::NotDumpable => write!(
                        f,
                        "it is not dumpable (setuid, file capabilities or PR_SET_DUMPABLE); \
                         run lastwords as root or with CAP_SYS_PTRACE"
                    ),
                    Denial::AlreadyTraced { tracer, name } => write!(
                        f,
                        "it is already traced by process {tracer} ({name}), and a process \
                         has one tracer at a time; detach that one first, or dump without \
                         --pause and --native, which reads the process without stopping it"
                    ),
                    Denial::NoCapSysPtrace => write!(
                        f,
                        "the kernel requires CAP_SYS_PTRACE here (a container or a security \
                         module); run lastwords as root or with CAP_SYS_PTRACE \
                         (docker run --cap-add SYS_PTRACE)"
                    ),
                }
            }
            NotPython { pid, exe } => write!(
                f,
                "process {pid} ({exe}) is not a Python process: no CPython interpreter is mapped in it"
            ),
            UnsupportedVersion { pid, version, why } => write!(
                f,
                "process {pid} runs Python {version}, which lastwords cannot read: {why}"
            ),
            Exited(pid) => write!(f, "process {pid} exited while lastwords was reading it"),
            Zombie(pid) => write!(
                f,
                "process {pid} has exited (a zombie: its parent has not reaped it), \
                 nothing of it is left to read"
            ),
            Inconsistent { pid, what } => {
                write!(f, "the interpreter of process {pid} cannot be read: {what}")
            }
            Os { pid, doing, error } => write!(f, "cannot {doing} process {pid}: {error}"),
            FileUnavailable { pid, path, why } => write!(
                f,
                "{path}, which process {pid} had mapped, {why}; give the files with --root DIR \
                 (a directory that stands for /) or --executable PATH (the main program)"
            ),
            BadCore { core, what } => write!(f, "{core} is not a core lastwords can read: {what}"),
            InCore { core, error } => {
                write!(f, "core file {core}: ")?;
                error.write_raw(f)
            }
        }
    }
}

impl std::error::Error for RemoteError {}

/// The value of `kernel.yama.ptrace_scope`, if Yama is there.
fn yama_scope() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A field of `/proc/PID/status` (`Uid:`, `CapEff:`...), first value.
fn status_field(pid: &str, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_string)
}

/// Whether we have CAP_SYS_PTRACE (bit 19 of our effective set).
fn have_cap_sys_ptrace() -> bool {
    status_field("self", "CapEff:")
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << 19) != 0)
}

/// The state letter of thread `tid` of process `pid` (`R`, `S`, `D`, `Z`,
/// `t`...), from its `/proc` stat; None once it is gone.
pub fn thread_state(pid: i32, tid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")).ok()?;
    // The state is the field after the command name in parentheses.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// Whether thread `tid` of process `pid` runs (it exists and is not a
/// zombie).
pub fn thread_runs(pid: i32, tid: i32) -> bool {
    !matches!(thread_state(pid, tid), Some('Z' | 'X') | None)
}

/// The task through which the address space of process `pid` is read
/// (`/proc/TID/maps`, `/root`, `/exe`, `/cmdline` and `process_vm_readv`):
/// `pid` itself, or, once its main thread has exited and left the process
/// running (`pthread_exit` in the main thread), another thread that still
/// runs — the kernel hands out none of those for a zombie task. None when no
/// thread of `pid` runs.
pub fn reader_task(pid: i32) -> Option<i32> {
    if thread_runs(pid, pid) {
        return Some(pid);
    }
    let mut others: Vec<i32> = crate::discover::task_ids(pid)
        .into_iter()
        .filter_map(|tid| i32::try_from(tid).ok())
        .filter(|&tid| tid != pid)
        .collect();
    others.sort_unstable();
    others.into_iter().find(|&tid| thread_runs(pid, tid))
}

/// Whether `pid` is still there (as a process with a thread that runs, not
/// a zombie).
pub fn alive(pid: i32) -> bool {
    reader_task(pid).is_some()
}

/// What `classify` is told when attaching with ptrace failed.
pub const ATTACH: &str = "attach to";

/// Turn a system error met while `doing` something to `pid` into the
/// failure the user should see: a vanished process, a denial with its
/// reason, or the error itself.
pub fn classify(pid: i32, doing: &'static str, error: std::io::Error) -> RemoteError {
    let code = error.raw_os_error();
    if code == Some(libc::ESRCH) || !alive(pid) {
        return if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            RemoteError::Exited(pid)
        } else {
            RemoteError::NoSuchProcess(pid)
        };
    }
    if code == Some(libc::EPERM) || code == Some(libc::EACCES) {
        // PTRACE_SEIZE of a process that another tracer holds fails with
        // EPERM too; reading its memory does not.
        let tracer = status_field(&pid.to_string(), "TracerPid:")
            .and_then(|t| t.parse::<i32>().ok())
            .filter(|&t| t > 0 && doing == ATTACH);
        let why = match tracer {
            Some(tracer) => Denial::AlreadyTraced {
                tracer,
                name: std::fs::read_to_string(format!("/proc/{tracer}/comm"))
                    .map(|n| n.trim_end().to_string())
                    .unwrap_or_else(|_| "?".into()),
            },
            None => denial(pid),
        };
        return RemoteError::PermissionDenied { pid, doing, why };
    }
    RemoteError::Os {
        pid,
        doing: doing.to_string(),
        error,
    }
}

/// Why the kernel refuses us `pid`, as far as can be seen from here.
pub fn denial(pid: i32) -> Denial {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let our_uid = unsafe { libc::geteuid() };
    let cap = have_cap_sys_ptrace();
    let target_uid = status_field(&pid.to_string(), "Uid:").and_then(|u| u.parse::<u32>().ok());
    if let Some(target_uid) = target_uid
        && target_uid != our_uid
        && !cap
    {
        return Denial::OtherUser {
            target_uid,
            our_uid,
        };
    }
    // Yama: 1 lets only ancestors (and CAP_SYS_PTRACE) trace, 2 only
    // CAP_SYS_PTRACE, 3 nobody. lastwords is never the target's ancestor.
    match yama_scope() {
        Some(n @ (1 | 2)) if !cap => return Denial::Yama(n),
        Some(n) if n >= 3 => return Denial::Yama(n),
        _ => {}
    }
    if !cap {
        // Same user, no Yama restriction: the target is not dumpable
        // (its /proc files then belong to root).
        let owner = std::fs::metadata(format!("/proc/{pid}/mem"))
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        if owner == Some(0) && our_uid != 0 {
            return Denial::NotDumpable;
        }
    }
    Denial::NoCapSysPtrace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line() {
        let cases = [
            RemoteError::NoSuchProcess(1),
            RemoteError::PermissionDenied {
                pid: 1,
                doing: "read the memory of",
                why: Denial::Yama(1),
            },
            RemoteError::PermissionDenied {
                pid: 1,
                doing: "attach to",
                why: Denial::OtherUser {
                    target_uid: 0,
                    our_uid: 1000,
                },
            },
            RemoteError::PermissionDenied {
                pid: 1,
                doing: ATTACH,
                why: Denial::AlreadyTraced {
                    tracer: 2,
                    name: "gdb".into(),
                },
            },
            RemoteError::NotPython {
                pid: 1,
                exe: "/bin/sh".into(),
            },
            RemoteError::UnsupportedVersion {
                pid: 1,
                version: "3.8.18".into(),
                why: "lastwords reads 2.7 and 3.9-3.15".into(),
            },
            RemoteError::Exited(1),
            RemoteError::Zombie(1),
        ];
        for e in cases {
            let text = e.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains("1"), "{text}");
        }
        // Names from the target are escaped.
        let e = RemoteError::InCore {
            core: "a\nb".into(),
            error: Box::new(RemoteError::NotPython {
                pid: 1,
                exe: "/x\n\u{1b}[2Jy".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "core file a\\nb: process 1 (/x\\n\\u{1b}[2Jy) is not a Python process: no CPython interpreter is mapped in it"
        );
    }

    #[test]
    fn a_missing_process_is_named_so() {
        let e = classify(
            i32::MAX,
            "read the memory of",
            std::io::Error::from_raw_os_error(libc::ESRCH),
        );
        assert!(matches!(e, RemoteError::NoSuchProcess(_)), "{e}");
    }
}
