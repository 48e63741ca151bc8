//! Sequential reads of `[pos, end)` through a [`Memory`], a small buffer at a
//! time: the byte source of the CFI parser and the expression evaluator.

use crate::memory::Memory;

/// Bytes read ahead per system call.
const BUFFER: usize = 128;

/// A checked, buffered cursor. Every method returns None past `end` or on an
/// unreadable address, and is async-signal-safe.
pub struct Cursor<'m, M: Memory> {
    pub mem: &'m M,
    pub pos: usize,
    pub end: usize,
    buf: [u8; BUFFER],
    buf_at: usize,
    buf_len: usize,
}

impl<'m, M: Memory> Cursor<'m, M> {
    /// Async-signal-safe.
    pub fn new(mem: &'m M, pos: usize, end: usize) -> Self {
        Cursor {
            mem,
            pos,
            end,
            buf: [0; BUFFER],
            buf_at: 0,
            buf_len: 0,
        }
    }

    /// Read ahead from `pos`. Async-signal-safe.
    fn fill(&mut self) -> Option<()> {
        let want = self.end.checked_sub(self.pos)?.min(BUFFER);
        if want == 0 {
            return None;
        }
        let ok = self
            .buf
            .get_mut(..want)
            .is_some_and(|dst| self.mem.read_bytes(self.pos, dst).is_ok());
        self.buf_len = if ok {
            want
        } else {
            // The range may run into an unmapped page: read up to its end.
            let to_page = 4096usize.wrapping_sub(self.pos & 4095);
            let shorter = want.min(to_page);
            if shorter == want {
                return None;
            }
            let dst = self.buf.get_mut(..shorter)?;
            self.mem.read_bytes(self.pos, dst).ok()?;
            shorter
        };
        self.buf_at = self.pos;
        Some(())
    }

    /// One byte. Async-signal-safe.
    pub fn u8(&mut self) -> Option<u8> {
        if self.pos >= self.end {
            return None;
        }
        let in_buf = self.pos.wrapping_sub(self.buf_at);
        if self.pos < self.buf_at || in_buf >= self.buf_len {
            self.fill()?;
        }
        let b = *self.buf.get(self.pos.checked_sub(self.buf_at)?)?;
        self.pos = self.pos.checked_add(1)?;
        Some(b)
    }

    /// Little-endian unsigned of `n` (at most 8) bytes. Async-signal-safe.
    pub fn uint(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..n.min(8) {
            v |= u64::from(self.u8()?)
                .checked_shl(i.checked_mul(8)?)
                .unwrap_or(0);
        }
        Some(v)
    }

    /// Little-endian signed of `n` bytes, sign-extended. Async-signal-safe.
    pub fn sint(&mut self, n: u32) -> Option<i64> {
        let v = self.uint(n)?;
        let unused = 64u32.checked_sub(n.min(8).checked_mul(8)?)?;
        // Shift the sign bit to the top, then back (arithmetic shift).
        Some(
            (v.checked_shl(unused).unwrap_or(0).cast_signed())
                .checked_shr(unused)
                .unwrap_or(0),
        )
    }

    /// Unsigned LEB128. Async-signal-safe.
    pub fn uleb(&mut self) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            }
            shift = shift.saturating_add(7);
            if b & 0x80 == 0 {
                return Some(v);
            }
            if shift > 70 {
                return None;
            }
        }
    }

    /// Signed LEB128. Async-signal-safe.
    pub fn sleb(&mut self) -> Option<i64> {
        let mut v = 0i64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= i64::from(b & 0x7f).checked_shl(shift).unwrap_or(0);
            }
            shift = shift.saturating_add(7);
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= (-1i64).checked_shl(shift).unwrap_or(0);
                }
                return Some(v);
            }
            if shift > 70 {
                return None;
            }
        }
    }

    /// Skip `n` bytes. Async-signal-safe.
    pub fn skip(&mut self, n: u64) -> Option<()> {
        let to = self.pos.checked_add(usize::try_from(n).ok()?)?;
        if to > self.end {
            return None;
        }
        self.pos = to;
        Some(())
    }

    /// A pointer in one of the `DW_EH_PE_*` encodings; `data_base` is the
    /// base of `DW_EH_PE_datarel`. Async-signal-safe.
    pub fn encoded(&mut self, enc: u8, data_base: usize) -> Option<u64> {
        if enc == 0xff {
            return None;
        }
        let field_at = self.pos as u64;
        let raw = match enc & 0x0f {
            0x00 | 0x04 | 0x0c => self.uint(8)?,
            0x01 => self.uleb()?,
            0x02 => self.uint(2)?,
            0x03 => self.uint(4)?,
            0x09 => self.sleb()?.cast_unsigned(),
            0x0a => self.sint(2)?.cast_unsigned(),
            0x0b => self.sint(4)?.cast_unsigned(),
            _ => return None,
        };
        let value = match enc & 0x70 {
            0x00 => raw,
            0x10 => field_at.wrapping_add(raw),
            0x30 => (data_base as u64).wrapping_add(raw),
            _ => return None,
        };
        if enc & 0x80 != 0 {
            self.mem.read::<u64>(usize::try_from(value).ok()?).ok()
        } else {
            Some(value)
        }
    }
}
