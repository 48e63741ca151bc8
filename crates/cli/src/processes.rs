//! Processes as /proc shows them: command lines, and the tree below a pid.

use std::collections::BTreeMap;

/// `/proc/PID/cmdline`, split at its NULs (empty for a kernel thread or a
/// process that is gone).
pub fn command_line(pid: i32) -> Vec<Vec<u8>> {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return Vec::new();
    };
    let raw = raw.strip_suffix(b"\0").unwrap_or(&raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// The name of a process without a command line (a kernel thread, a
/// zombie), as `ps` shows it: its `/proc/PID/comm` in brackets (`[?]` once
/// it is gone).
pub fn bracketed_name(pid: i32) -> String {
    let mut buf = [0u8; 100];
    let pid = u64::try_from(pid).unwrap_or(0);
    let name = lastwords_core::procfs::task_name(pid, pid, &mut buf).unwrap_or(b"?");
    format!("[{}]", String::from_utf8_lossy(name))
}

/// The parent of a process, from `/proc/PID/stat` (the field after the
/// command name, which may itself hold spaces and parentheses).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close.checked_add(1)?..)?).ok()?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` and every process below it, parents before their children, each
/// level in pid order.
pub fn tree(pid: i32) -> Vec<i32> {
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(parent) = parent_of(p) {
                children.entry(parent).or_default().push(p);
            }
        }
    }
    let mut order = Vec::new();
    let mut stack = vec![pid];
    // A process tree has no cycles, but /proc changes while it is read.
    while let Some(p) = stack.pop() {
        if order.contains(&p) || order.len() > 100_000 {
            continue;
        }
        order.push(p);
        if let Some(kids) = children.get(&p) {
            stack.extend(kids.iter().rev());
        }
    }
    order
}
