//! The fd writer: a fixed buffer on the stack, flushed with write(2).
//!
//! Everything in this module is async-signal-safe: no allocation, no locks, no
//! panics. The stdlib writes each piece of each line with its own write(2); this
//! writer gathers them and flushes either when the buffer is full (explicit
//! dumps: a handful of system calls for a whole dump) or at the end of every
//! line (`FlushPolicy::EachLine`, used on the fatal path so that whatever was
//! written before a second fault is already out).

#![allow(unsafe_code)]

/// When the writer hands its buffer to the kernel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FlushPolicy {
    /// Only when the buffer is full or on `flush()`: fewest system calls.
    WhenFull,
    /// After every newline: at most one write(2) per line, nothing lost if the
    /// process dies in the middle of the dump.
    EachLine,
}

/// Size of the buffer. Large enough for several frame lines (a frame line is at
/// most about 2 × 500 escaped code points × 10 bytes), small enough for an
/// alternate signal stack.
pub const BUFFER_SIZE: usize = 4096;

/// Where the bytes go. `FdSink` in production; tests collect into memory.
pub trait Sink {
    /// Write all of `bytes`, retrying on EINTR and partial writes; errors are
    /// ignored as the stdlib ignores them.
    ///
    /// Async-signal-safe.
    fn write_all(&mut self, bytes: &[u8]);
}

/// A raw file descriptor. Never closed by lastwords.
pub struct FdSink(pub i32);

impl Sink for FdSink {
    /// Async-signal-safe.
    fn write_all(&mut self, mut bytes: &[u8]) {
        // errno is saved and restored so that the interrupted code never sees
        // a change made by the dump.
        let saved = errno_get();
        // Bounded: every successful write consumes at least one byte, and a
        // stuck EINTR storm gives up after a generous number of retries.
        let mut eintr_budget = 1000u32;
        while !bytes.is_empty() {
            // SAFETY: the pointer and length come from a live slice.
            let n = unsafe { libc::write(self.0, bytes.as_ptr().cast(), bytes.len()) };
            if n > 0 {
                bytes = bytes.get(n as usize..).unwrap_or(&[]);
            } else if n < 0 && errno_get() == libc::EINTR && eintr_budget > 0 {
                eintr_budget = eintr_budget.saturating_sub(1);
            } else {
                break;
            }
        }
        errno_set(saved);
    }
}

/// A caller-provided memory buffer: a dump rendered while a lock is held and
/// written out after it is released. Bytes beyond the end are dropped and
/// counted in `overflowed`.
pub struct SliceSink<'a> {
    pub buf: &'a mut [u8],
    pub len: usize,
    pub overflowed: bool,
}

impl Sink for SliceSink<'_> {
    /// Async-signal-safe.
    fn write_all(&mut self, bytes: &[u8]) {
        let end = self.len.saturating_add(bytes.len());
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflowed = true,
        }
    }
}

/// Read errno. Async-signal-safe.
pub fn errno_get() -> i32 {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Set errno. Async-signal-safe.
pub fn errno_set(value: i32) {
    // SAFETY: as in errno_get.
    unsafe { *libc::__errno_location() = value };
}

/// The decimal digits of `value`, written at the end of `digits`.
/// Async-signal-safe.
pub fn format_decimal(mut value: u64, digits: &mut [u8; 20]) -> &[u8] {
    // u64::MAX has 20 digits: the loop ends with `value == 0` before
    // `start` can reach 0.
    let mut start = digits.len();
    while let Some(next) = start.checked_sub(1) {
        start = next;
        if let Some(d) = digits.get_mut(start) {
            *d = DECIMAL_DIGITS
                .get((value % 10) as usize)
                .copied()
                .unwrap_or(b'?');
        }
        value /= 10;
        if value == 0 {
            break;
        }
    }
    digits.get(start..).unwrap_or(&[])
}

const DECIMAL_DIGITS: &[u8; 10] = b"0123456789";

/// A buffered writer with the few formatting primitives a dump needs.
pub struct Writer<S: Sink> {
    sink: S,
    buf: [u8; BUFFER_SIZE],
    len: usize,
    policy: FlushPolicy,
}

impl<S: Sink> Writer<S> {
    /// Async-signal-safe.
    pub fn new(sink: S, policy: FlushPolicy) -> Self {
        Writer {
            sink,
            buf: [0; BUFFER_SIZE],
            len: 0,
            policy,
        }
    }

    /// The sink, for tests that collect the output.
    pub fn into_sink(mut self) -> S {
        self.flush();
        // Move the sink out without running Drop's flush twice.
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so reading the sink
        // out of it moves it exactly once.
        unsafe { core::ptr::read(&this.sink) }
    }

    /// Hand the buffered bytes to the sink. Async-signal-safe.
    pub fn flush(&mut self) {
        if self.len > 0 {
            let (done, _) = self.buf.split_at(self.len);
            self.sink.write_all(done);
            self.len = 0;
        }
    }

    /// Append raw bytes. Async-signal-safe.
    #[inline]
    pub fn bytes(&mut self, bytes: &[u8]) {
        // The usual case, inlined: the piece fits (for a constant piece, a
        // copy of known size, without a call).
        let end = self.len.saturating_add(bytes.len());
        if let Some(dst) = self.buf.get_mut(self.len..end) {
            dst.copy_from_slice(bytes);
            self.len = end;
        } else {
            self.bytes_spilling(bytes);
        }
    }

    /// Append bytes that do not fit in the buffer's free space.
    /// Async-signal-safe.
    #[inline(never)]
    fn bytes_spilling(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len >= BUFFER_SIZE {
                self.flush();
            }
            // `len < BUFFER_SIZE` here: `room` and `take` are at least 1.
            let room = BUFFER_SIZE.saturating_sub(self.len);
            let take = room.min(bytes.len());
            let (now, rest) = bytes.split_at(take);
            let end = self.len.saturating_add(take);
            if let Some(dst) = self.buf.get_mut(self.len..end) {
                dst.copy_from_slice(now);
            }
            self.len = end;
            bytes = rest;
        }
    }

    /// The free space at the end of the buffer, at least `n` bytes of it
    /// (flushing first if fewer are free), for a caller that fills it in
    /// place and then [`commit`](Self::commit)s what it wrote; None when `n`
    /// exceeds the buffer. Async-signal-safe.
    pub fn spare(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > BUFFER_SIZE {
            return None;
        }
        if BUFFER_SIZE.saturating_sub(self.len) < n {
            self.flush();
        }
        self.buf.get_mut(self.len..)
    }

    /// Count `n` bytes of the space handed out by [`spare`](Self::spare) as
    /// written (at most what is free). Async-signal-safe.
    pub fn commit(&mut self, n: usize) {
        self.len = self.len.saturating_add(n).min(BUFFER_SIZE);
    }

    /// Append a string. Async-signal-safe.
    #[inline]
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Append one byte. Async-signal-safe.
    #[inline]
    pub fn byte(&mut self, b: u8) {
        if self.len >= BUFFER_SIZE {
            self.flush();
        }
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len = self.len.saturating_add(1);
        }
    }

    /// End a line: a newline, then a flush if the policy asks for one.
    /// Async-signal-safe.
    pub fn end_line(&mut self) {
        self.byte(b'\n');
        if self.policy == FlushPolicy::EachLine {
            self.flush();
        }
    }

    /// Decimal, like `_Py_DumpDecimal`. Numbers of up to 8 digits (line
    /// numbers) are assembled in a register and stored with one write.
    /// Async-signal-safe.
    pub fn decimal(&mut self, value: u64) {
        if value >= 100_000_000 {
            let mut digits = [0u8; 20];
            self.bytes(format_decimal(value, &mut digits));
            return;
        }
        // The last digit in the first byte, shifted up as more come: the
        // first digit ends up in the lowest byte (the first in memory).
        let mut word: u64 = 0;
        let mut count: usize = 0;
        let mut rest = value;
        loop {
            word = word.wrapping_shl(8) | (rest % 10);
            count = count.saturating_add(1);
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        // Digits 0-9 OR 0x30 are b'0'-b'9'; the bytes past `count` are
        // written but not kept.
        let bytes = (word | 0x3030_3030_3030_3030).to_le_bytes();
        if let Some(dst) = self
            .spare(bytes.len())
            .and_then(|s| s.get_mut(..bytes.len()))
        {
            dst.copy_from_slice(&bytes);
            self.commit(count);
        }
    }

    /// Decimal, zero-padded to at least `width` digits (the `%02lu` and
    /// `%06u` of the watchdog's header). Async-signal-safe.
    pub fn decimal_padded(&mut self, value: u64, width: usize) {
        let mut buf = [0u8; 20];
        let digits = format_decimal(value, &mut buf);
        for _ in digits.len()..width {
            self.byte(b'0');
        }
        self.bytes(digits);
    }

    /// Lowercase hexadecimal, zero-padded to at least `width` digits, like
    /// `_Py_DumpHexadecimal`. Async-signal-safe.
    pub fn hex(&mut self, mut value: u64, width: usize) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        let width = width.min(out.len());
        let mut start = out.len();
        while let Some(next) = start.checked_sub(1) {
            start = next;
            if let Some(d) = out.get_mut(start) {
                *d = DIGITS.get((value & 15) as usize).copied().unwrap_or(b'?');
            }
            value >>= 4;
            if out.len().saturating_sub(start) >= width && value == 0 {
                break;
            }
        }
        let (_, used) = out.split_at(start);
        self.bytes(used);
    }

    /// One code point the way `_Py_DumpASCII` writes it: printable ASCII as
    /// is, everything else as `\xHH`, `\uHHHH` or `\UHHHHHHHH`.
    /// Async-signal-safe.
    pub fn escaped_char(&mut self, ch: u32) {
        if let Ok(printable @ 0x20..=0x7e) = u8::try_from(ch) {
            self.byte(printable);
        } else if ch <= 0xff {
            self.str("\\x");
            self.hex(ch as u64, 2);
        } else if ch <= 0xffff {
            self.str("\\u");
            self.hex(ch as u64, 4);
        } else {
            self.str("\\U");
            self.hex(ch as u64, 8);
        }
    }
}

impl<S: Sink> Drop for Writer<S> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A sink that keeps the bytes, for unit tests of the renderer (it allocates:
/// never for a signal path).
#[derive(Default)]
pub struct VecSink {
    pub bytes: Vec<u8>,
    pub writes: usize,
}

impl Sink for VecSink {
    fn write_all(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
        self.writes = self.writes.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(policy: FlushPolicy, f: impl FnOnce(&mut Writer<VecSink>)) -> (String, usize) {
        let mut w = Writer::new(VecSink::default(), policy);
        f(&mut w);
        let sink = w.into_sink();
        (String::from_utf8(sink.bytes).unwrap(), sink.writes)
    }

    #[test]
    fn numbers_match_the_stdlib_formatting() {
        let (s, _) = render(FlushPolicy::WhenFull, |w| {
            w.decimal(0);
            w.byte(b' ');
            w.decimal(1234567890123);
            w.byte(b' ');
            w.hex(0x7f12ab, 16);
            w.byte(b' ');
            w.hex(0xe9, 2);
            w.byte(b' ');
            w.hex(u64::MAX, 4);
            w.byte(b' ');
            w.decimal_padded(7, 2);
            w.byte(b' ');
            w.decimal_padded(123, 2);
            w.byte(b' ');
            w.decimal_padded(500, 6);
        });
        assert_eq!(
            s,
            "0 1234567890123 00000000007f12ab e9 ffffffffffffffff 07 123 000500"
        );
    }

    #[test]
    fn decimals_and_in_place_writes_spill_whole() {
        // Every power of ten and its neighbours, and u64::MAX, each starting
        // at every offset near the end of the buffer: a number is never cut
        // by a flush, and always equals Rust's formatting.
        let mut values = vec![0, u64::MAX];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1]);
            p = next;
        }
        for value in values {
            for fill in BUFFER_SIZE - 22..=BUFFER_SIZE {
                let (s, writes) = render(FlushPolicy::WhenFull, |w| {
                    w.bytes(&vec![b'.'; fill]);
                    w.decimal(value);
                });
                assert_eq!(s[fill..], value.to_string(), "{value} after {fill}");
                assert!(writes <= 2);
            }
        }
        // spare() hands out room for at least what is asked (after a flush
        // if needed), never more than the buffer; commit() keeps that much.
        let (s, writes) = render(FlushPolicy::WhenFull, |w| {
            w.bytes(&[b'a'; BUFFER_SIZE - 3]);
            let room = w.spare(5).unwrap();
            assert!(room.len() >= 5);
            room[..5].copy_from_slice(b"bcdef");
            w.commit(5);
            assert!(w.spare(BUFFER_SIZE).is_some());
            assert!(w.spare(BUFFER_SIZE + 1).is_none());
        });
        assert_eq!(s.len(), BUFFER_SIZE + 2);
        assert!(s.ends_with("abcdef"));
        assert_eq!(writes, 2);
    }

    #[test]
    fn escapes_like_py_dump_ascii() {
        let (s, _) = render(FlushPolicy::WhenFull, |w| {
            for ch in "a\\ é中\n\u{1F600}~\u{7f}".chars() {
                w.escaped_char(ch as u32);
            }
        });
        assert_eq!(s, "a\\ \\xe9\\u4e2d\\x0a\\U0001f600~\\x7f");
    }

    #[test]
    fn each_line_policy_writes_once_per_line() {
        let (s, writes) = render(FlushPolicy::EachLine, |w| {
            w.str("one");
            w.end_line();
            w.str("two");
            w.end_line();
        });
        assert_eq!(s, "one\ntwo\n");
        assert_eq!(writes, 2);
    }

    #[test]
    fn when_full_policy_batches_and_spills() {
        let (s, writes) = render(FlushPolicy::WhenFull, |w| {
            for _ in 0..(BUFFER_SIZE + 10) {
                w.byte(b'x');
            }
        });
        assert_eq!(s.len(), BUFFER_SIZE + 10);
        assert_eq!(writes, 2);
    }
}
