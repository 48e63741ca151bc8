//! From CFI to registers: executing call-frame instructions into a row,
//! evaluating the DWARF expressions some rules hold, and applying a row to
//! recover the caller's registers.

use super::cfi::{Cie, Fde};
use super::cursor::Cursor;
use super::regs::{Regs, arch, arch::NREGS};
use crate::memory::Memory;

/// How to recover one register of the caller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rule {
    Same,
    Undefined,
    /// Saved at CFA + n.
    Offset(i64),
    /// Is CFA + n.
    ValOffset(i64),
    /// Is in another register.
    Register(u16),
    /// Saved at the address a DWARF expression computes (block address, length).
    Expr(usize, usize),
    /// Is the value a DWARF expression computes.
    ValExpr(usize, usize),
}

/// How to compute the canonical frame address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CfaRule {
    Unset,
    RegOffset(u16, i64),
    Expr(usize, usize),
}

/// One row of the CFI table.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub cfa: CfaRule,
    pub regs: [Rule; NREGS],
    /// aarch64: the return address is signed (pointer authentication).
    pub ra_signed: bool,
}

impl Row {
    /// Async-signal-safe.
    pub fn new() -> Self {
        Row {
            cfa: CfaRule::Unset,
            regs: [Rule::Same; NREGS],
            ra_signed: false,
        }
    }

    /// Async-signal-safe.
    fn set(&mut self, r: u64, rule: Rule) {
        if let Some(slot) = usize::try_from(r).ok().and_then(|r| self.regs.get_mut(r)) {
            *slot = rule;
        }
    }
}

impl Default for Row {
    fn default() -> Self {
        Row::new()
    }
}

/// Depth of `DW_CFA_remember_state`.
const STATE_STACK: usize = 8;

/// The most instructions one FDE or CIE may run (real ones: tens).
const MAX_INSTRUCTIONS: usize = 1 << 20;

/// An operand read as a signed value: LEB128 values are read unsigned and
/// reinterpreted, as DWARF's factored offsets are. Async-signal-safe.
fn signed(v: u64) -> i64 {
    v.cast_signed()
}

/// Run CFA instructions `[from, to)` starting at code address `loc`, up to
/// (and including) the row for `target`. `initial` is the CIE's row, for
/// `DW_CFA_restore`. Async-signal-safe.
pub fn execute(
    mem: &impl Memory,
    cie: &Cie,
    (from, to): (usize, usize),
    mut loc: u64,
    target: u64,
    row: &mut Row,
    initial: Option<&Row>,
) -> Option<()> {
    let mut c = Cursor::new(mem, from, to);
    let mut stack = [Row::new(); STATE_STACK];
    let mut depth = 0usize;
    let restore = |r: u64| {
        initial
            .and_then(|i| i.regs.get(usize::try_from(r).ok()?).copied())
            .unwrap_or(Rule::Same)
    };
    let align = cie.data_align;
    for _ in 0..MAX_INSTRUCTIONS {
        if c.pos >= to {
            return Some(());
        }
        let op = c.u8()?;
        let advance = match op >> 6 {
            1 => Some(u64::from(op & 0x3f)),
            2 => {
                let off = signed(c.uleb()?);
                row.set(u64::from(op & 0x3f), Rule::Offset(off.wrapping_mul(align)));
                None
            }
            3 => {
                let r = u64::from(op & 0x3f);
                row.set(r, restore(r));
                None
            }
            _ => match op {
                0x00 => None,
                0x01 => {
                    loc = c.encoded(cie.fde_enc, 0)?;
                    if loc > target {
                        return Some(());
                    }
                    None
                }
                0x02 => Some(c.uint(1)?),
                0x03 => Some(c.uint(2)?),
                0x04 => Some(c.uint(4)?),
                0x05 => {
                    let r = c.uleb()?;
                    let off = signed(c.uleb()?);
                    row.set(r, Rule::Offset(off.wrapping_mul(align)));
                    None
                }
                0x06 => {
                    let r = c.uleb()?;
                    row.set(r, restore(r));
                    None
                }
                0x07 => {
                    row.set(c.uleb()?, Rule::Undefined);
                    None
                }
                0x08 => {
                    row.set(c.uleb()?, Rule::Same);
                    None
                }
                0x09 => {
                    let r = c.uleb()?;
                    let from = u16::try_from(c.uleb()?).ok()?;
                    row.set(r, Rule::Register(from));
                    None
                }
                0x0a => {
                    *stack.get_mut(depth)? = *row;
                    depth = depth.checked_add(1)?;
                    None
                }
                0x0b => {
                    depth = depth.checked_sub(1)?;
                    // The whole row, the CFA and (aarch64) the return
                    // address signing state included, as libgcc does.
                    *row = *stack.get(depth)?;
                    None
                }
                0x0c => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    row.cfa = CfaRule::RegOffset(r, signed(c.uleb()?));
                    None
                }
                0x0d => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    let off = match row.cfa {
                        CfaRule::RegOffset(_, off) => off,
                        _ => 0,
                    };
                    row.cfa = CfaRule::RegOffset(r, off);
                    None
                }
                0x0e => {
                    let off = signed(c.uleb()?);
                    if let CfaRule::RegOffset(r, _) = row.cfa {
                        row.cfa = CfaRule::RegOffset(r, off);
                    }
                    None
                }
                0x0f => {
                    let len = c.uleb()?;
                    row.cfa = CfaRule::Expr(c.pos, usize::try_from(len).ok()?);
                    c.skip(len)?;
                    None
                }
                0x10 | 0x16 => {
                    let r = c.uleb()?;
                    let len = c.uleb()?;
                    let at = (c.pos, usize::try_from(len).ok()?);
                    let rule = if op == 0x10 {
                        Rule::Expr(at.0, at.1)
                    } else {
                        Rule::ValExpr(at.0, at.1)
                    };
                    row.set(r, rule);
                    c.skip(len)?;
                    None
                }
                0x11 => {
                    let r = c.uleb()?;
                    let off = c.sleb()?;
                    row.set(r, Rule::Offset(off.wrapping_mul(align)));
                    None
                }
                0x12 => {
                    let r = u16::try_from(c.uleb()?).ok()?;
                    row.cfa = CfaRule::RegOffset(r, c.sleb()?.wrapping_mul(align));
                    None
                }
                0x13 => {
                    let off = c.sleb()?.wrapping_mul(align);
                    if let CfaRule::RegOffset(r, _) = row.cfa {
                        row.cfa = CfaRule::RegOffset(r, off);
                    }
                    None
                }
                0x14 => {
                    let r = c.uleb()?;
                    let off = signed(c.uleb()?);
                    row.set(r, Rule::ValOffset(off.wrapping_mul(align)));
                    None
                }
                0x15 => {
                    let r = c.uleb()?;
                    let off = c.sleb()?;
                    row.set(r, Rule::ValOffset(off.wrapping_mul(align)));
                    None
                }
                // DW_CFA_AARCH64_negate_ra_state (DW_CFA_GNU_window_save).
                0x2d => {
                    row.ra_signed = !row.ra_signed;
                    None
                }
                // DW_CFA_GNU_args_size.
                0x2e => {
                    c.uleb()?;
                    None
                }
                // DW_CFA_GNU_negative_offset_extended.
                0x2f => {
                    let r = c.uleb()?;
                    let off = signed(c.uleb()?);
                    row.set(r, Rule::Offset(off.wrapping_neg().wrapping_mul(align)));
                    None
                }
                _ => return None,
            },
        };
        if let Some(delta) = advance {
            loc = loc.wrapping_add(delta.wrapping_mul(cie.code_align));
            if loc > target {
                return Some(());
            }
        }
    }
    // Too many instructions: a corrupt table (unless they were all run).
    (c.pos >= to).then_some(())
}

/// The row of `fde` for `pc`: the CIE's initial instructions, then the
/// FDE's up to `pc`. Async-signal-safe.
pub fn row_for(mem: &impl Memory, fde: &Fde, pc: u64) -> Option<Row> {
    let mut row = Row::new();
    let cie = &fde.cie;
    execute(
        mem,
        cie,
        (cie.instr, cie.end),
        fde.pc_begin,
        u64::MAX,
        &mut row,
        None,
    )?;
    let initial = row;
    execute(
        mem,
        cie,
        (fde.instr, fde.end),
        fde.pc_begin,
        pc,
        &mut row,
        Some(&initial),
    )?;
    Some(row)
}

/// The most operations one expression may run (branches can loop).
const MAX_OPS: usize = 256;

/// Evaluate a DWARF expression (the subset compilers and glibc emit in CFI).
/// `cfa` is pushed first for register rules. Async-signal-safe.
pub fn evaluate(
    mem: &impl Memory,
    (at, len): (usize, usize),
    regs: &Regs,
    cfa: Option<u64>,
) -> Option<u64> {
    let end = at.checked_add(len)?;
    let mut c = Cursor::new(mem, at, end);
    let mut stack = [0u64; 16];
    let mut sp = 0usize;
    macro_rules! push {
        ($v:expr) => {{
            let v = $v;
            *stack.get_mut(sp)? = v;
            sp = sp.checked_add(1)?;
        }};
    }
    macro_rules! pop {
        () => {{
            sp = sp.checked_sub(1)?;
            *stack.get(sp)?
        }};
    }
    if let Some(cfa) = cfa {
        push!(cfa);
    }
    let addr = |v: u64| usize::try_from(v).ok();
    for _ in 0..MAX_OPS {
        if c.pos >= end {
            return if sp > 0 { Some(pop!()) } else { None };
        }
        let op = c.u8()?;
        match op {
            0x03 => push!(c.uint(8)?),
            0x06 => {
                let a = pop!();
                push!(mem.read::<u64>(addr(a)?).ok()?)
            }
            0x08 => push!(c.uint(1)?),
            0x09 => push!(c.sint(1)?.cast_unsigned()),
            0x0a => push!(c.uint(2)?),
            0x0b => push!(c.sint(2)?.cast_unsigned()),
            0x0c => push!(c.uint(4)?),
            0x0d => push!(c.sint(4)?.cast_unsigned()),
            0x0e | 0x0f => push!(c.uint(8)?),
            0x10 => push!(c.uleb()?),
            0x11 => push!(c.sleb()?.cast_unsigned()),
            0x12 => {
                let a = pop!();
                push!(a);
                push!(a)
            }
            0x13 => {
                let _ = pop!();
            }
            0x14 => {
                let b = pop!();
                let a = pop!();
                push!(a);
                push!(b);
                push!(a)
            }
            0x16 => {
                let b = pop!();
                let a = pop!();
                push!(b);
                push!(a)
            }
            0x1f => {
                let a = pop!();
                push!(a.wrapping_neg())
            }
            0x1a..=0x1e | 0x21 | 0x22 | 0x24..=0x27 | 0x29..=0x2e => {
                let b = pop!();
                let a = pop!();
                let (sa, sb) = (a.cast_signed(), b.cast_signed());
                let shift = u32::try_from(b).unwrap_or(u32::MAX);
                push!(match op {
                    0x1a => a & b,
                    0x1b => sa.checked_div(sb)?.cast_unsigned(),
                    0x1c => a.wrapping_sub(b),
                    0x1d => a.checked_rem(b)?,
                    0x1e => a.wrapping_mul(b),
                    0x21 => a | b,
                    0x22 => a.wrapping_add(b),
                    0x24 => a.checked_shl(shift).unwrap_or(0),
                    0x25 => a.checked_shr(shift).unwrap_or(0),
                    0x26 => sa
                        .checked_shr(shift)
                        .unwrap_or(if sa < 0 { -1 } else { 0 })
                        .cast_unsigned(),
                    0x27 => a ^ b,
                    0x29 => u64::from(sa == sb),
                    0x2a => u64::from(sa >= sb),
                    0x2b => u64::from(sa > sb),
                    0x2c => u64::from(sa <= sb),
                    0x2d => u64::from(sa < sb),
                    _ => u64::from(sa != sb),
                })
            }
            0x20 => {
                let a = pop!();
                push!(!a)
            }
            0x23 => {
                let a = pop!();
                push!(a.wrapping_add(c.uleb()?))
            }
            0x28 | 0x2f => {
                let off = isize::try_from(c.sint(2)?).ok()?;
                let taken = if op == 0x2f { true } else { pop!() != 0 };
                if taken {
                    let to = c.pos.checked_add_signed(off)?;
                    if to < at || to > end {
                        return None;
                    }
                    c.pos = to;
                }
            }
            0x30..=0x4f => push!(u64::from(op.wrapping_sub(0x30))),
            0x70..=0x8f => {
                let off = c.sleb()?;
                push!(
                    regs.get(u16::from(op.wrapping_sub(0x70)))?
                        .wrapping_add(off.cast_unsigned())
                )
            }
            0x92 => {
                let r = u16::try_from(c.uleb()?).ok()?;
                let off = c.sleb()?;
                push!(regs.get(r)?.wrapping_add(off.cast_unsigned()))
            }
            0x94 => {
                let size = c.u8()?;
                let a = addr(pop!())?;
                let v = match size {
                    1 => u64::from(mem.read::<u8>(a).ok()?),
                    2 => u64::from(mem.read::<u16>(a).ok()?),
                    4 => u64::from(mem.read::<u32>(a).ok()?),
                    8 => mem.read::<u64>(a).ok()?,
                    _ => return None,
                };
                push!(v)
            }
            0x96 => {}
            _ => return None,
        }
    }
    None
}

/// The caller's registers from a CFI row. Returns None at the outermost frame
/// (return address undefined) or when the return address cannot be read.
/// Async-signal-safe.
pub fn apply(mem: &impl Memory, row: &Row, ra: u16, regs: &Regs) -> Option<Regs> {
    let cfa = match row.cfa {
        CfaRule::RegOffset(r, off) => regs.get(r)?.wrapping_add(off.cast_unsigned()),
        CfaRule::Expr(at, len) => evaluate(mem, (at, len), regs, None)?,
        CfaRule::Unset => return None,
    };
    let read = |a: u64| mem.read::<u64>(usize::try_from(a).ok()?).ok();
    let mut next = Regs::empty();
    for (r, rule) in (0u16..).zip(row.regs.iter()) {
        let value = match *rule {
            Rule::Same => regs.get(r),
            Rule::Undefined => None,
            Rule::Offset(off) => read(cfa.wrapping_add(off.cast_unsigned())),
            Rule::ValOffset(off) => Some(cfa.wrapping_add(off.cast_unsigned())),
            Rule::Register(from) => regs.get(from),
            Rule::Expr(at, len) => evaluate(mem, (at, len), regs, Some(cfa)).and_then(read),
            Rule::ValExpr(at, len) => evaluate(mem, (at, len), regs, Some(cfa)),
        };
        if let Some(v) = value {
            next.set(r, v);
        }
    }
    // The caller's stack pointer is the CFA unless a rule says otherwise.
    if row.regs.get(usize::from(arch::SP)) == Some(&Rule::Same) {
        next.set(arch::SP, cfa);
    }
    let mut pc = next.get(ra)?;
    if row.ra_signed {
        // aarch64 pointer authentication: drop the signature bits.
        pc &= (1u64 << 48).wrapping_sub(1);
    }
    next.pc = pc;
    Some(next)
}
