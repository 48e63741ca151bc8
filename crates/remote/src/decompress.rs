//! Compressed cores, as systemd-coredump stores them
//! (`/var/lib/systemd/coredump/core.NAME.UID.BOOT.PID.TIME.zst`, or `.lz4`,
//! `.xz` depending on its build): recognised by their magic numbers, not by
//! their names, and decompressed in memory by pure-Rust decoders (ruzstd,
//! lz4_flex, lzma-rs).
//!
//! The input is hostile: the output is bounded ([`MAX_CORE`]), so that a
//! small file that claims to hold terabytes ends in an error, not in an
//! exhausted machine.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{Read, Write};

/// The largest core lastwords decompresses (in memory).
pub const MAX_CORE: u64 = 16 << 30;

/// A compression format of systemd-coredump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Zstd,
    Lz4,
    Xz,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Lz4 => "lz4",
            Format::Xz => "xz",
        }
    }
}

/// The format of `data`, from its first bytes; None for anything else
/// (an uncompressed core starts with `\x7fELF`).
pub fn format_of(data: &[u8]) -> Option<Format> {
    match data.get(..6)? {
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Format::Zstd),
        [0x04, 0x22, 0x4d, 0x18, ..] => Some(Format::Lz4),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00] => Some(Format::Xz),
        _ => None,
    }
}

/// A writer that refuses to grow past a limit.
struct Bounded {
    out: Vec<u8>,
    limit: u64,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let len = u64::try_from(self.out.len()).unwrap_or(u64::MAX);
        let add = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        if len.saturating_add(add) > self.limit {
            return Err(std::io::Error::other(too_large(self.limit)));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_large(limit: u64) -> String {
    format!(
        "it holds more than {:.1} GiB, more than lastwords decompresses in memory here; \
         decompress it yourself and pass the result",
        limit as f64 / f64::from(1u32 << 30)
    )
}

/// Copy all of `reader` into `out`, up to its limit.
fn drain(mut reader: impl Read, out: &mut Bounded) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(buf.get(..n).unwrap_or(&[]))?;
    }
}

/// Decompress all of `data` (one or more concatenated frames or streams),
/// into at most [`MAX_CORE`] bytes and half the memory the machine has
/// available: a file that claims more ends in an error, not in the
/// out-of-memory killer.
pub fn decompress(format: Format, data: &[u8]) -> Result<Vec<u8>, String> {
    let limit = match memory_available() {
        Some(available) => MAX_CORE.min(available / 2),
        None => MAX_CORE,
    };
    decompress_bounded(format, data, limit)
}

/// `MemAvailable` of /proc/meminfo, in bytes.
fn memory_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// [`decompress`] with a limit on the output.
pub fn decompress_bounded(format: Format, data: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Bounded {
        out: Vec::new(),
        limit,
    };
    let mut input = data;
    // Concatenated frames (zstd, lz4) or streams (xz) follow each other;
    // bounded by the input, since each one consumes some of it.
    while !input.is_empty() {
        let before = input.len();
        match format {
            Format::Zstd => {
                let decoder = ruzstd::decoding::StreamingDecoder::new(&mut input)
                    .map_err(|e| e.to_string())?;
                drain(decoder, &mut out).map_err(|e| e.to_string())?;
            }
            Format::Lz4 => {
                let decoder = lz4_flex::frame::FrameDecoder::new(&mut input);
                drain(decoder, &mut out).map_err(|e| e.to_string())?;
            }
            Format::Xz => {
                let mut reader = std::io::BufReader::new(&mut input);
                lzma_rs::xz_decompress(&mut reader, &mut out).map_err(|e| match e {
                    lzma_rs::error::Error::IoError(e) => e.to_string(),
                    other => other.to_string(),
                })?;
                // The BufReader may have read past the stream's end: xz
                // files are one stream in practice, so what is left is
                // padding.
                break;
            }
        }
        if input.len() >= before {
            break;
        }
        // Trailing zero padding (allowed between xz streams, common after
        // a frame written in blocks) ends the input.
        if input.iter().all(|&b| b == 0) {
            break;
        }
        if format_of(input).is_none() && !input.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            // zstd skippable frames and other trailing bytes are ignored.
            break;
        }
    }
    Ok(out.out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn compress(tool: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take()?;
        let input = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().ok()?;
        writer.join().ok()?.ok()?;
        out.status.success().then_some(out.stdout)
    }

    fn sample() -> Vec<u8> {
        let mut data = b"\x7fELF".to_vec();
        for i in 0..300_000u32 {
            data.extend(i.to_le_bytes());
        }
        data
    }

    /// Each format round-trips through the system's own compressor (the
    /// tools systemd-coredump's formats come from).
    #[test]
    fn decompresses_what_the_tools_write() {
        let data = sample();
        let mut tried = 0;
        for (tool, args, format) in [
            ("zstd", &["-q", "-c"][..], Format::Zstd),
            ("lz4", &["-q", "-c"][..], Format::Lz4),
            ("xz", &["-q", "-c"][..], Format::Xz),
        ] {
            let Some(packed) = compress(tool, args, &data) else {
                eprintln!("{tool} is not installed: not tested");
                continue;
            };
            tried += 1;
            assert_eq!(format_of(&packed), Some(format), "{tool}");
            assert_eq!(decompress(format, &packed).unwrap(), data, "{tool}");
            // Two frames in a row.
            let mut twice = packed.clone();
            twice.extend(&packed);
            if format != Format::Xz {
                let mut both = data.clone();
                both.extend(&data);
                assert_eq!(decompress(format, &twice).unwrap(), both, "{tool}");
            }
            // Over the limit: an error, not an allocation.
            let e = decompress_bounded(format, &packed, 1000).unwrap_err();
            assert!(e.contains("more than"), "{tool}: {e}");
            // Truncated and corrupted: an error or a shorter output, never a
            // panic.
            for n in [0, 5, 13, packed.len() / 2, packed.len() - 1] {
                let _ = decompress(format, &packed[..n]);
            }
            let mut x: u64 = 0x9e3779b97f4a7c15;
            for _ in 0..200 {
                let mut bad = packed.clone();
                for _ in 0..4 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let i = (x as usize) % bad.len();
                    bad[i] ^= (x >> 32) as u8 | 1;
                }
                let _ = decompress_bounded(format, &bad, 1 << 24);
            }
        }
        assert!(tried > 0, "no compressor to test with");
        assert_eq!(format_of(b"\x7fELF\x02\x01"), None);
        assert_eq!(format_of(b"\x28\xb5"), None);
    }
}
