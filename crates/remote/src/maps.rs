//! `/proc/PID/maps`: what another process has mapped, and from which files.
//!
//! The text comes from the kernel but describes a process we do not trust
//! (its file names are chosen by it), so the parser is written for hostile
//! input: bounded in size and in line count, every number parsed with checked
//! arithmetic, a malformed line skipped rather than trusted, and no panics.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// At most this many bytes of a maps file are read (a process at the
/// default `vm.max_map_count` of 65530 has about 6 MiB of them).
pub const MAX_MAPS_BYTES: u64 = 64 << 20;
/// At most this many mappings are kept.
pub const MAX_MAPPINGS: usize = 1 << 20;

/// One line of `/proc/PID/maps`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub start: usize,
    pub end: usize,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
    /// `p` (private) rather than `s` (shared).
    pub private: bool,
    /// Offset of the mapping in its file.
    pub offset: u64,
    /// The device as the kernel prints it (major, minor).
    pub dev: (u32, u32),
    pub inode: u64,
    /// The path or pseudo-name (`[heap]`, `[vdso]`, `[anon:...]`) as
    /// printed, without the ` (deleted)` suffix; empty for anonymous memory.
    pub name: Vec<u8>,
    /// The kernel marked the file `(deleted)`: it was unlinked or replaced
    /// since it was mapped.
    pub deleted: bool,
}

impl Mapping {
    /// The file behind the mapping, as a path in the target's mount
    /// namespace, if it is a file (not anonymous or a pseudo-name).
    pub fn path(&self) -> Option<&Path> {
        if self.name.first() == Some(&b'/') && self.inode != 0 {
            Some(Path::new(OsStr::from_bytes(&self.name)))
        } else {
            None
        }
    }

    /// The last component of the file name (empty if none).
    pub fn file_name(&self) -> &[u8] {
        match self.name.iter().rposition(|&b| b == b'/') {
            Some(i) => self.name.get(i.saturating_add(1)..).unwrap_or(&[]),
            None => &self.name,
        }
    }

    /// Whether `addr..addr+len` lies inside this mapping.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        match addr.checked_add(len) {
            Some(end) => addr >= self.start && end <= self.end,
            None => false,
        }
    }

    /// Whether two mappings come from the same file.
    pub fn same_file(&self, other: &Mapping) -> bool {
        self.inode != 0 && self.inode == other.inode && self.dev == other.dev
    }
}

/// Read and parse `/proc/PID/maps`.
pub fn read(pid: i32) -> Result<Vec<Mapping>, std::io::Error> {
    let file = std::fs::File::open(format!("/proc/{pid}/maps"))?;
    let mut text = Vec::with_capacity(64 << 10);
    file.take(MAX_MAPS_BYTES).read_to_end(&mut text)?;
    Ok(parse(&text))
}

/// Parse the text of a maps file. Malformed lines are skipped; at most
/// [`MAX_MAPPINGS`] mappings are returned. Never panics.
pub fn parse(text: &[u8]) -> Vec<Mapping> {
    text.split(|&b| b == b'\n')
        .filter_map(parse_line)
        .take(MAX_MAPPINGS)
        .collect()
}

/// Split off the next field (up to a space), skipping leading spaces.
fn field(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = rest.iter().position(|&b| b != b' ')?;
    let rest = rest.get(start..)?;
    match rest.iter().position(|&b| b == b' ') {
        Some(end) => Some((rest.get(..end)?, rest.get(end..)?)),
        None => Some((rest, &[])),
    }
}

/// A hexadecimal number of at most 16 digits.
fn hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        acc.checked_mul(16)?.checked_add(u64::from(v))
    })
}

/// A decimal number that fits in a u64.
fn dec(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = char::from(d).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u64::from(v))
    })
}

fn split2(s: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == sep)?;
    Some((s.get(..i)?, s.get(i.checked_add(1)?..)?))
}

fn parse_line(line: &[u8]) -> Option<Mapping> {
    let (range, rest) = field(line)?;
    let (perms, rest) = field(rest)?;
    let (offset, rest) = field(rest)?;
    let (dev, rest) = field(rest)?;
    let (inode, rest) = field(rest)?;
    let (start, end) = split2(range, b'-')?;
    let start = usize::try_from(hex(start)?).ok()?;
    let end = usize::try_from(hex(end)?).ok()?;
    if end <= start {
        return None;
    }
    let [r, w, x, p] = <[u8; 4]>::try_from(perms).ok()?;
    let (major, minor) = split2(dev, b':')?;
    let dev = (
        u32::try_from(hex(major)?).ok()?,
        u32::try_from(hex(minor)?).ok()?,
    );
    // The name starts after the padding that follows the inode.
    let name = match rest.iter().position(|&b| b != b' ') {
        Some(i) => rest.get(i..)?,
        None => &[],
    };
    const DELETED: &[u8] = b" (deleted)";
    let (name, deleted) = match name.strip_suffix(DELETED) {
        Some(n) => (n, true),
        None => (name, false),
    };
    Some(Mapping {
        start,
        end,
        read: r == b'r',
        write: w == b'w',
        exec: x == b'x',
        private: p == b'p',
        offset: hex(offset)?,
        dev,
        inode: dec(inode)?,
        name: name.to_vec(),
        deleted,
    })
}

/// This process's mapping of libc: a real, loaded ELF file for the tests
/// of the modules that read one.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn own_libc() -> Mapping {
    read(std::process::id() as i32)
        .unwrap()
        .into_iter()
        .find(|m| m.file_name().starts_with(b"libc.so"))
        .unwrap()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234567                    /usr/bin/python3.11
7f3a1c000000-7f3a1c021000 rw-p 00000000 00:00 0 
7f3a1e200000-7f3a1e2d0000 r-xp 000d0000 fd:01 7654321                    /root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0
7f3a1e300000-7f3a1e301000 rw-p 00000000 00:05 99                         /tmp/a dir/with spaces (deleted)
7ffc1b1f0000-7ffc1b211000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn parses_the_usual_lines() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 6);
        assert_eq!(m[0].start, 0x55d0c0a00000);
        assert_eq!(m[0].end, 0x55d0c0a01000);
        assert!(m[0].read && !m[0].write && !m[0].exec && m[0].private);
        assert_eq!(m[0].dev, (0xfd, 1));
        assert_eq!(m[0].inode, 1234567);
        assert_eq!(m[0].path(), Some(Path::new("/usr/bin/python3.11")));
        assert_eq!(m[1].name, b"");
        assert_eq!(m[1].path(), None);
        assert_eq!(m[2].offset, 0xd0000);
        assert_eq!(m[2].file_name(), b"libpython3.11.so.1.0");
        assert!(m[3].deleted);
        assert_eq!(m[3].name, b"/tmp/a dir/with spaces");
        assert_eq!(m[4].name, b"[stack]");
        assert_eq!(m[4].path(), None);
        assert_eq!(m[5].start, 0xffffffffff600000);
        assert!(m[2].contains(0x7f3a1e200000, 0xd0000));
        assert!(!m[2].contains(0x7f3a1e200000, 0xd0001));
        assert!(!m[2].contains(usize::MAX, 2));
    }

    #[test]
    fn hostile_lines_are_skipped() {
        let cases: &[&[u8]] = &[
            b"",
            b"\n\n\n",
            b"zzzz-1000 r--p 0 0:0 0",
            b"1000-0fff r--p 00000000 00:00 0",
            b"1000-1000 r--p 00000000 00:00 0",
            b"1000 r--p 00000000 00:00 0",
            b"1000-2000 r--p 00000000 00:00",
            b"1000-2000 rw 00000000 00:00 0",
            b"1000-2000 r--p 00000000 0000 0",
            b"1000-2000 r--p 00000000 00:00 -1",
            b"1000-2000 r--p 00000000 00:00 99999999999999999999999",
            b"10000000000000000-2000 r--p 00000000 00:00 0",
            b"1000-20000000000000000 r--p 00000000 00:00 0",
            b"1000-2000 r--p 100000000000000000 00:00 0",
            b"1000-2000 r--p 0 fffffffff:0 0",
            b"\xff\xfe-\x00 \x01",
            b"-",
            b"1000-",
            b"-2000 r--p 0 0:0 0",
        ];
        for case in cases {
            assert_eq!(parse(case), vec![], "{:?}", String::from_utf8_lossy(case));
        }
        // A good line survives among bad ones.
        let mut text = Vec::new();
        for case in cases {
            text.extend_from_slice(case);
            text.push(b'\n');
        }
        text.extend_from_slice(b"1000-2000 r-xp 00001000 08:02 42 /lib/x.so\n");
        let m = parse(&text);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].offset, 0x1000);
    }

    #[test]
    fn truncated_input_never_panics() {
        for n in 0..=SAMPLE.len() {
            let m = parse(&SAMPLE[..n]);
            assert!(m.len() <= 6);
        }
        // Arbitrary bytes: no panic, bounded output.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        let mut junk = Vec::new();
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(b"0123456789abcdef-: \nrwxp/"[(x % 25) as usize]);
        }
        let _ = parse(&junk);
    }

    #[test]
    fn reads_our_own_maps() {
        let m = read(std::process::id() as i32).unwrap();
        let here = parses_the_usual_lines as *const () as usize;
        assert!(m.iter().any(|m| m.exec && m.contains(here, 1)));
    }
}
