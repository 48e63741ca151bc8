//! DWARF call-frame information in `.eh_frame`: finding the FDE of a pc
//! through `.eh_frame_hdr`'s search table, and parsing CIEs and FDEs, all
//! through checked reads of the target's memory (the sections are mapped by
//! the loader; nothing is read from files and nothing is parsed ahead).
//!
//! Hand-written, not gimli's: gimli's readers either borrow a slice (plain
//! loads of the target's memory: a second fault in a signal handler, and no
//! use for another process) or, for a custom `Reader` over a [`Memory`],
//! need gimli's `read` feature, whose `Reader` API is built around owned
//! copies (`to_slice`, `to_string`); gimli also reads LEB128 a byte at a
//! time, which without the buffering of [`Cursor`] is one system call per
//! byte. The README's Architecture section has the whole evaluation.

use super::cursor::Cursor;
use crate::memory::Memory;

/// The largest CIE or FDE accepted (real ones are tens of bytes).
const MAX_ENTRY: u64 = 1 << 24;

/// A parsed CIE.
#[derive(Clone, Copy, Debug)]
pub struct Cie {
    pub code_align: u64,
    pub data_align: i64,
    /// The return address column.
    pub ra: u16,
    pub fde_enc: u8,
    pub has_z: bool,
    /// `S` augmentation: the frame is a signal trampoline.
    pub signal: bool,
    /// The initial instructions: `[instr, end)`.
    pub instr: usize,
    pub end: usize,
}

/// A parsed FDE.
#[derive(Clone, Copy, Debug)]
pub struct Fde {
    pub cie: Cie,
    pub pc_begin: u64,
    pub pc_end: u64,
    /// The instructions: `[instr, end)`.
    pub instr: usize,
    pub end: usize,
}

/// A CIE/FDE's length field: (body start, body end, 64-bit format).
/// Async-signal-safe.
fn entry_bounds(mem: &impl Memory, at: usize) -> Option<(usize, usize, bool)> {
    let len32 = mem.read::<u32>(at).ok()?;
    let (body, len, is64) = if len32 == 0xffff_ffff {
        (
            at.checked_add(12)?,
            mem.read::<u64>(at.checked_add(4)?).ok()?,
            true,
        )
    } else {
        (at.checked_add(4)?, u64::from(len32), false)
    };
    if len == 0 || len > MAX_ENTRY {
        return None;
    }
    Some((body, body.checked_add(usize::try_from(len).ok()?)?, is64))
}

/// Parse the CIE at `at`. Async-signal-safe.
pub fn parse_cie(mem: &impl Memory, at: usize) -> Option<Cie> {
    let (body, end, is64) = entry_bounds(mem, at)?;
    let mut c = Cursor::new(mem, body, end);
    let id = c.uint(if is64 { 8 } else { 4 })?;
    if id != 0 {
        return None;
    }
    let version = c.u8()?;
    if !matches!(version, 1 | 3 | 4) {
        return None;
    }
    let mut aug = [0u8; 8];
    let mut aug_len = 0usize;
    loop {
        let b = c.u8()?;
        if b == 0 {
            break;
        }
        *aug.get_mut(aug_len)? = b;
        aug_len = aug_len.checked_add(1)?;
    }
    let aug = aug.get(..aug_len)?;
    if version == 4 {
        c.skip(2)?; // address_size, segment_selector_size
    }
    let code_align = c.uleb()?;
    let data_align = c.sleb()?;
    let ra = if version == 1 {
        u64::from(c.u8()?)
    } else {
        c.uleb()?
    };
    let mut cie = Cie {
        code_align,
        data_align,
        ra: u16::try_from(ra).ok()?,
        fde_enc: 0,
        has_z: aug.first() == Some(&b'z'),
        signal: false,
        instr: 0,
        end,
    };
    if cie.has_z {
        let len = c.uleb()?;
        let data_end = c.pos.checked_add(usize::try_from(len).ok()?)?;
        for &letter in aug.iter().skip(1) {
            match letter {
                b'R' => cie.fde_enc = c.u8()?,
                b'L' => {
                    c.u8()?;
                }
                b'P' => {
                    let enc = c.u8()?;
                    c.encoded(enc & 0x7f, 0)?;
                }
                b'S' => cie.signal = true,
                _ => {}
            }
        }
        if data_end > end {
            return None;
        }
        c.pos = data_end;
    } else if aug.iter().any(|&b| b != b'S') {
        // "eh" and other pre-'z' augmentations: unknown layout.
        return None;
    } else {
        cie.signal = !aug.is_empty();
    }
    cie.instr = c.pos;
    Some(cie)
}

/// Parse the FDE at `at` and its CIE. Async-signal-safe.
pub fn parse_fde(mem: &impl Memory, at: usize) -> Option<Fde> {
    let (body, end, is64) = entry_bounds(mem, at)?;
    let mut c = Cursor::new(mem, body, end);
    let cie_ptr = c.uint(if is64 { 8 } else { 4 })?;
    if cie_ptr == 0 {
        return None;
    }
    let cie = parse_cie(mem, body.checked_sub(usize::try_from(cie_ptr).ok()?)?)?;
    let pc_begin = c.encoded(cie.fde_enc, 0)?;
    let pc_range = c.encoded(cie.fde_enc & 0x0f, 0)?;
    if cie.has_z {
        let len = c.uleb()?;
        c.skip(len)?;
    }
    Some(Fde {
        cie,
        pc_begin,
        pc_end: pc_begin.wrapping_add(pc_range),
        instr: c.pos,
        end,
    })
}

/// The FDE covering `pc`, by binary search in the `.eh_frame_hdr` at `hdr`
/// (`hdr_len` bytes). Async-signal-safe.
pub fn find_fde(mem: &impl Memory, hdr: usize, hdr_len: usize, pc: u64) -> Option<Fde> {
    let hdr_end = hdr.checked_add(hdr_len)?;
    let mut c = Cursor::new(mem, hdr, hdr_end);
    let version = c.u8()?;
    let ptr_enc = c.u8()?;
    let count_enc = c.u8()?;
    let table_enc = c.u8()?;
    if version != 1 || table_enc != 0x3b {
        // Only the datarel|sdata4 table every linker writes is searched.
        return None;
    }
    c.encoded(ptr_enc, hdr)?;
    let count = usize::try_from(c.encoded(count_enc, hdr)?).ok()?;
    let table = c.pos;
    if count == 0 || table.checked_add(count.checked_mul(8)?)? > hdr_end {
        return None;
    }
    let entry_at = |i: usize| -> Option<(u64, u64)> {
        let at = table.checked_add(i.checked_mul(8)?)?;
        let loc = mem.read::<i32>(at).ok()?;
        let fde = mem.read::<i32>(at.checked_add(4)?).ok()?;
        let base = hdr as u64;
        Some((
            base.wrapping_add(i64::from(loc).cast_unsigned()),
            base.wrapping_add(i64::from(fde).cast_unsigned()),
        ))
    };
    // The last entry whose initial location is <= pc (at most 64 probes).
    let (mut lo, mut hi) = (0usize, count);
    while lo < hi {
        let mid = lo.checked_add(hi.checked_sub(lo)? / 2)?;
        if entry_at(mid)?.0 <= pc {
            lo = mid.checked_add(1)?;
        } else {
            hi = mid;
        }
    }
    let (_, fde) = entry_at(lo.checked_sub(1)?)?;
    let fde = parse_fde(mem, usize::try_from(fde).ok()?)?;
    (fde.pc_begin <= pc && pc < fde.pc_end).then_some(fde)
}
