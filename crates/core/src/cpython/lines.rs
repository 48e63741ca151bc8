//! Line numbers from CPython's line tables, one decoder per format.
//!
//! Each decoder reads the table forwards, one byte at a time, from any byte
//! iterator (the walker feeds them from interpreter memory through a small
//! buffer), and reproduces `PyCode_Addr2Line` of its version, including its
//! answer for positions the table does not cover. Every decoder stops at the
//! end of its input, so a corrupt table can only give a wrong number, never a
//! loop or a fault. All functions here are async-signal-safe.

use super::layout::LineTable;

/// `PyCode_Addr2Line(code, addr)` for the given table format: the line of the
/// instruction at byte offset `addr`, or -1 when the table says "no line".
///
/// Async-signal-safe.
pub fn addr_to_line(
    format: LineTable,
    table: impl Iterator<Item = u8>,
    firstlineno: i32,
    addr: i64,
) -> i32 {
    if addr < 0 && !matches!(format, LineTable::Lnotab | LineTable::Lnotab27) {
        return firstlineno;
    }
    match format {
        LineTable::Lnotab27 => lnotab27(table, firstlineno, addr),
        LineTable::Lnotab => lnotab(table, firstlineno, addr),
        LineTable::Pep626 => pep626(table, firstlineno, addr),
        LineTable::Locations => locations(table, firstlineno, addr),
    }
}

/// 2.7 `co_lnotab`: pairs of (address increment, unsigned line increment).
/// Async-signal-safe.
fn lnotab27(mut table: impl Iterator<Item = u8>, firstlineno: i32, addr: i64) -> i32 {
    let mut line = firstlineno;
    let mut at: i64 = 0;
    while let (Some(addr_incr), Some(line_incr)) = (table.next(), table.next()) {
        at = at.saturating_add(i64::from(addr_incr));
        if at > addr {
            break;
        }
        line = line.wrapping_add(i32::from(line_incr));
    }
    line
}

/// 3.9 `co_lnotab`: pairs of (address increment, signed line increment).
/// Async-signal-safe.
fn lnotab(mut table: impl Iterator<Item = u8>, firstlineno: i32, addr: i64) -> i32 {
    let mut line = firstlineno;
    let mut at: i64 = 0;
    while let (Some(addr_incr), Some(line_incr)) = (table.next(), table.next()) {
        at = at.saturating_add(i64::from(addr_incr));
        if at > addr {
            break;
        }
        line = line.wrapping_add(line_incr as i8 as i32);
    }
    line
}

/// 3.10 PEP 626 `co_linetable`: pairs of (address delta, signed line delta);
/// a line delta of -128 means "no line" for that range.
/// Async-signal-safe.
fn pep626(mut table: impl Iterator<Item = u8>, firstlineno: i32, addr: i64) -> i32 {
    let mut computed = firstlineno;
    let mut end: i64 = 0;
    while let (Some(addr_delta), Some(line_delta)) = (table.next(), table.next()) {
        let start = end;
        end = end.saturating_add(i64::from(addr_delta));
        let line_delta = line_delta as i8;
        let line = if line_delta == -128 {
            -1
        } else {
            computed = computed.wrapping_add(line_delta as i32);
            computed
        };
        if start <= addr && addr < end {
            return line;
        }
    }
    -1
}

/// 3.11+ PEP 657 location table. Each entry starts with a byte whose top bit
/// is set: bits 3–6 are the form, bits 0–2 the length minus one (in code units).
/// Async-signal-safe.
fn locations(mut table: impl Iterator<Item = u8>, firstlineno: i32, addr: i64) -> i32 {
    let mut line = firstlineno;
    let mut end: i64 = 0;
    let mut pending: Option<u8> = None;
    loop {
        let first = match pending.take().or_else(|| table.next()) {
            Some(b) => b,
            None => return -1,
        };
        let code = (first >> 3) & 15;
        let start = end;
        // 1 to 8 code units of 2 bytes.
        end = end.saturating_add(i64::from(first & 7).wrapping_add(1).wrapping_mul(2));
        let entry_line = match code {
            // No location.
            15 => -1,
            // Long form: signed line delta, then end line, columns (varints).
            14 => {
                line = line.wrapping_add(read_svarint(&mut table));
                line
            }
            // No column: signed line delta only.
            13 => {
                line = line.wrapping_add(read_svarint(&mut table));
                line
            }
            // One-line forms: the delta is in the code, two column bytes follow.
            10..=12 => {
                line = line.wrapping_add(i32::from(code).wrapping_sub(10));
                line
            }
            // Short forms: same line, one column byte follows.
            _ => line,
        };
        if start <= addr && addr < end {
            return entry_line;
        }
        // Skip the rest of this entry: everything up to the next byte with
        // the top bit set.
        loop {
            match table.next() {
                Some(b) if b & 0x80 != 0 => {
                    pending = Some(b);
                    break;
                }
                Some(_) => continue,
                None => return -1,
            }
        }
    }
}

/// An unsigned varint of the location table: 6 bits a byte, bit 6 = more.
/// Async-signal-safe.
fn read_varint(table: &mut impl Iterator<Item = u8>) -> u32 {
    let mut value: u32 = 0;
    let mut shift = 0u32;
    for b in table.by_ref() {
        value |= ((b & 63) as u32).checked_shl(shift).unwrap_or(0);
        shift = shift.saturating_add(6);
        if b & 64 == 0 || shift > 30 {
            break;
        }
    }
    value
}

/// A signed varint: the low bit is the sign. Async-signal-safe.
fn read_svarint(table: &mut impl Iterator<Item = u8>) -> i32 {
    let u = read_varint(table);
    if u & 1 != 0 {
        // u >> 1 < 2^31: the negation cannot overflow.
        ((u >> 1) as i32).wrapping_neg()
    } else {
        (u >> 1) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2.7's lnotab: `def f():\n  x = 1\n\n  y = 2` has pairs for line 2
    /// at 0 and line 4 at 6; increments are unsigned.
    #[test]
    fn lnotab_27() {
        let at = |table: &[u8], first, addr| {
            addr_to_line(LineTable::Lnotab27, table.iter().copied(), first, addr)
        };
        let lnotab = [0u8, 1, 6, 2];
        assert_eq!(at(&lnotab, 1, 0), 2);
        assert_eq!(at(&lnotab, 1, 5), 2);
        assert_eq!(at(&lnotab, 1, 6), 4);
        assert_eq!(at(&lnotab, 1, -1), 1);
        // Unsigned: a line increment of 255 is +255, not -1.
        assert_eq!(at(&[0, 255], 10, 0), 265);
        assert_eq!(at(&[1], 10, 0), 10);
    }

    fn line(format: LineTable, table: &[u8], first: i32, addr: i64) -> i32 {
        addr_to_line(format, table.iter().copied(), first, addr)
    }

    #[test]
    fn lnotab_accumulates_until_past_the_address() {
        // addr 0..6 → line 10, 6..10 → 11, 10.. → 13
        let t = [6, 1, 4, 2];
        assert_eq!(line(LineTable::Lnotab, &t, 10, 0), 10);
        assert_eq!(line(LineTable::Lnotab, &t, 10, 6), 11);
        assert_eq!(line(LineTable::Lnotab, &t, 10, 9), 11);
        assert_eq!(line(LineTable::Lnotab, &t, 10, 40), 13);
        // Negative line increments are signed bytes.
        assert_eq!(line(LineTable::Lnotab, &[2, 0xff], 10, 4), 9);
    }

    #[test]
    fn pep626_ranges_and_no_line() {
        // 0..4 → first+1, 4..6 → no line, 6..10 → first+3
        let t = [4, 1, 2, 0x80, 4, 2];
        assert_eq!(line(LineTable::Pep626, &t, 1, 0), 2);
        assert_eq!(line(LineTable::Pep626, &t, 1, 5), -1);
        assert_eq!(line(LineTable::Pep626, &t, 1, 8), 4);
        assert_eq!(line(LineTable::Pep626, &t, 1, 10), -1);
        assert_eq!(line(LineTable::Pep626, &t, 1, -2), 1);
    }

    #[test]
    fn locations_forms() {
        // Entry 1: form 13 (no column), 1 unit, line delta +1 (svarint 2).
        // Entry 2: form 10 (one line, delta 0), 2 units, two column bytes.
        // Entry 3: form 11 (one line, delta +1), 1 unit, two column bytes.
        // Entry 4: form 15 (no location), 1 unit.
        // Entry 5: form 14 (long), 1 unit, delta -1 (svarint 3), end, cols.
        // Entry 6: short form 0, 1 unit, one column byte.
        let t = [
            0x80 | (13 << 3),
            2,
            0x80 | (10 << 3) | 1,
            4,
            9,
            0x80 | (11 << 3),
            0,
            3,
            0x80 | (15 << 3),
            0x80 | (14 << 3),
            3,
            0,
            1,
            1,
            0x80,
            5,
        ];
        let at = |addr| line(LineTable::Locations, &t, 100, addr);
        assert_eq!(at(0), 101);
        assert_eq!(at(2), 101);
        assert_eq!(at(4), 101);
        assert_eq!(at(6), 102);
        assert_eq!(at(8), -1);
        assert_eq!(at(10), 101);
        assert_eq!(at(12), 101);
        assert_eq!(at(14), -1);
        assert_eq!(at(-2), 100);
    }

    #[test]
    fn truncated_tables_never_loop() {
        assert_eq!(line(LineTable::Locations, &[0xf0 | 6, 0xff], 1, 100), -1);
        assert_eq!(line(LineTable::Locations, &[], 1, 0), -1);
        assert_eq!(line(LineTable::Pep626, &[3], 1, 0), -1);
        assert_eq!(line(LineTable::Lnotab, &[3], 1, 0), 1);
    }
}
