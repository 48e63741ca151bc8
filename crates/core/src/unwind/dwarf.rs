//! DWARF call-frame information through gimli, read from the target's
//! memory: `.eh_frame_hdr`'s search table, the FDE and CIE, the CFA
//! instructions and DWARF expressions are gimli's; the bytes come from a
//! [`MemReader`], a gimli `Reader` over a [`Memory`], so that every read is
//! checked (another process, or this one from a signal handler, where a bad
//! pointer must not fault again) and nothing is read from files.
//!
//! Allocation-free: gimli's `UnwindContext` and `Evaluation` run on the
//! fixed-size storage below (gimli documents these methods as signal-safe
//! with such storage), and [`MemReader`] refuses the three `Reader` methods
//! that would hand out owned copies (`to_slice`, `to_string`,
//! `to_string_lossy`; the CFI paths never call them).

use core::fmt;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, Encoding, EvaluationResult, EvaluationStorage,
    Format, LittleEndian, Location, Pointer, Reader, ReaderOffsetId, Register, RegisterRule,
    UnwindContext, UnwindContextStorage, UnwindSection, UnwindTableRow, Value,
};

use super::regs::{Regs, arch};
use super::step::UnwindInfo;
use crate::memory::Memory;

/// Bytes read ahead by a [`MemReader`].
const AHEAD: usize = 32;
/// The longest `.eh_frame` assumed when its segment's end is unknown.
const MAX_EH_FRAME: usize = 1 << 26;
/// Bytes scanned for a NUL (augmentation strings are a few bytes).
const MAX_FIND: usize = 4096;
/// Operations one DWARF expression may run (branches can loop).
const MAX_OPS: u32 = 256;
/// Steps of a DWARF expression that need memory or registers.
const MAX_RESUMES: usize = 64;

/// A gimli `Reader` over `[pos, end)` of a [`Memory`], with a small
/// read-ahead buffer (gimli reads a byte at a time). Async-signal-safe.
pub struct MemReader<'m, M: Memory> {
    mem: &'m M,
    pos: usize,
    end: usize,
    buf: [u8; AHEAD],
    buf_at: usize,
    buf_len: usize,
}

impl<M: Memory> Clone for MemReader<'_, M> {
    fn clone(&self) -> Self {
        MemReader { ..*self }
    }
}

impl<M: Memory> fmt::Debug for MemReader<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemReader({:#x}..{:#x})", self.pos, self.end)
    }
}

impl<'m, M: Memory> MemReader<'m, M> {
    /// `len` bytes at `at`. Async-signal-safe.
    pub fn new(mem: &'m M, at: usize, len: usize) -> Option<Self> {
        Some(MemReader {
            mem,
            pos: at,
            end: at.checked_add(len)?,
            buf: [0; AHEAD],
            buf_at: 0,
            buf_len: 0,
        })
    }

    /// Async-signal-safe.
    fn eof(&self) -> gimli::Error {
        gimli::Error::UnexpectedEof(ReaderOffsetId(self.pos as u64))
    }

    /// The next `n` bytes, if the buffer holds them. Async-signal-safe.
    fn buffered(&self, n: usize) -> Option<&[u8]> {
        let from = self.pos.checked_sub(self.buf_at)?;
        let to = from.checked_add(n)?;
        if to > self.buf_len {
            return None;
        }
        self.buf.get(from..to)
    }

    /// Fill the read-ahead buffer from `pos`. Async-signal-safe.
    fn fill(&mut self) -> Option<()> {
        let want = self.end.checked_sub(self.pos)?.min(AHEAD);
        let dst = self.buf.get_mut(..want)?;
        let got = if self.mem.read_bytes(self.pos, dst).is_ok() {
            want
        } else {
            // The range may run into an unmapped page: read up to its end.
            let to_page = 4096usize.wrapping_sub(self.pos & 4095).min(want);
            if to_page == want {
                return None;
            }
            self.mem
                .read_bytes(self.pos, self.buf.get_mut(..to_page)?)
                .ok()?;
            to_page
        };
        self.buf_at = self.pos;
        self.buf_len = got;
        Some(())
    }
}

impl<M: Memory> Reader for MemReader<'_, M> {
    type Endian = LittleEndian;
    type Offset = usize;

    fn endian(&self) -> LittleEndian {
        LittleEndian
    }

    fn len(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn empty(&mut self) {
        self.pos = self.end;
    }

    fn truncate(&mut self, len: usize) -> gimli::Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.end = self.pos.checked_add(len).ok_or_else(|| self.eof())?;
        Ok(())
    }

    fn offset_from(&self, base: &Self) -> usize {
        self.pos.wrapping_sub(base.pos)
    }

    fn offset_id(&self) -> ReaderOffsetId {
        ReaderOffsetId(self.pos as u64)
    }

    fn lookup_offset_id(&self, id: ReaderOffsetId) -> Option<usize> {
        let id = usize::try_from(id.0).ok()?;
        (self.pos <= id && id < self.end).then(|| id.wrapping_sub(self.pos))
    }

    fn find(&self, byte: u8) -> gimli::Result<usize> {
        let mut probe = self.clone();
        for offset in 0..self.len().min(MAX_FIND) {
            let mut b = [0u8];
            probe.read_slice(&mut b)?;
            if b[0] == byte {
                return Ok(offset);
            }
        }
        Err(self.eof())
    }

    fn skip(&mut self, len: usize) -> gimli::Result<()> {
        if len > self.len() {
            return Err(self.eof());
        }
        self.pos = self.pos.checked_add(len).ok_or_else(|| self.eof())?;
        Ok(())
    }

    fn split(&mut self, len: usize) -> gimli::Result<Self> {
        if len > self.len() {
            return Err(self.eof());
        }
        let mut head = self.clone();
        head.end = self.pos.checked_add(len).ok_or_else(|| self.eof())?;
        self.skip(len)?;
        Ok(head)
    }

    fn to_slice(&self) -> gimli::Result<alloc::borrow::Cow<'_, [u8]>> {
        // An owned copy would allocate: never handed out.
        Err(gimli::Error::UnsupportedOffset)
    }

    fn to_string(&self) -> gimli::Result<alloc::borrow::Cow<'_, str>> {
        Err(gimli::Error::UnsupportedOffset)
    }

    fn to_string_lossy(&self) -> gimli::Result<alloc::borrow::Cow<'_, str>> {
        Err(gimli::Error::UnsupportedOffset)
    }

    fn read_slice(&mut self, dst: &mut [u8]) -> gimli::Result<()> {
        let n = dst.len();
        let new_pos = self.pos.checked_add(n).ok_or_else(|| self.eof())?;
        if new_pos > self.end {
            return Err(self.eof());
        }
        if n > AHEAD {
            self.mem.read_bytes(self.pos, dst).map_err(|_| self.eof())?;
            self.pos = new_pos;
            return Ok(());
        }
        if self.buffered(n).is_none() {
            self.fill().ok_or_else(|| self.eof())?;
        }
        let src = self.buffered(n).ok_or_else(|| self.eof())?;
        dst.copy_from_slice(src);
        self.pos = new_pos;
        Ok(())
    }
}

extern crate alloc;

/// Fixed-size storage for gimli's unwind context: 32 register rules per
/// row (more than the registers tracked), 4 remembered states.
pub struct FrameStorage;

impl UnwindContextStorage<usize> for FrameStorage {
    type Rules = [(Register, RegisterRule<usize>); 32];
    type Stack = [UnwindTableRow<usize, Self>; 5];
}

/// Fixed-size storage for gimli's expression evaluation.
pub struct ExprStorage;

impl<'m, M: Memory> EvaluationStorage<MemReader<'m, M>> for ExprStorage {
    type Stack = [Value; 16];
    type ExpressionStack = [(MemReader<'m, M>, MemReader<'m, M>); 2];
    type Result = [gimli::Piece<MemReader<'m, M>>; 1];
}

/// One step with CFI: the caller's registers and whether this frame is a
/// signal trampoline (its caller's pc is then exact, not a return address).
/// Async-signal-safe.
pub fn step_cfi<M: Memory>(
    mem: &M,
    info: &UnwindInfo,
    regs: &Regs,
    lookup: u64,
) -> Option<(Regs, bool)> {
    step_cfi_cached(mem, info, regs, lookup, None)
}

/// [`step_cfi`], with the rows already found kept in `cache` (when given).
/// Async-signal-safe without a cache only: the cache allocates.
pub fn step_cfi_cached<M: Memory>(
    mem: &M,
    info: &UnwindInfo,
    regs: &Regs,
    lookup: u64,
    cache: Option<&mut RowCache>,
) -> Option<(Regs, bool)> {
    with_row(mem, info, lookup, cache, |eh_frame, row, ra, signal| {
        let next = apply(mem, eh_frame, row, ra, regs)?;
        Some((next, signal))
    })
}

/// The CFI rows a walk found, by the range of code each covers: the threads
/// of one process share most of their code, and a row found once serves
/// every pc of its range (as many as [`MAX_ROWS`]). For dumps of another
/// process: not async-signal-safe (it allocates).
#[derive(Default)]
pub struct RowCache {
    rows: Vec<CachedRow>,
}

/// Rows a [`RowCache`] keeps.
pub const MAX_ROWS: usize = 4096;

struct CachedRow {
    info: UnwindInfo,
    eh_frame_at: u64,
    eh_frame_len: usize,
    row: UnwindTableRow<usize, FrameStorage>,
    ra: Register,
    signal: bool,
}

impl RowCache {
    pub fn new() -> Self {
        RowCache::default()
    }

    /// The row covering `lookup` in the object of `info`.
    fn find(&self, info: &UnwindInfo, lookup: u64) -> Option<&CachedRow> {
        self.rows.iter().find(|r| {
            r.info == *info && r.row.start_address() <= lookup && lookup < r.row.end_address()
        })
    }
}

/// Whether the CFI of `lookup` says that its frame is the outermost one (its
/// return address is undefined, as in `_start` and `clone`): where a walk
/// that cannot step further ended normally. Async-signal-safe.
pub fn is_outermost<M: Memory>(mem: &M, info: &UnwindInfo, lookup: u64) -> bool {
    with_row(mem, info, lookup, None, |_, row, ra, _| {
        matches!(row.register(ra), Some(RegisterRule::Undefined)).then_some(())
    })
    .is_some()
}

/// Find the CFI row of `lookup` (in `cache`, or in the tables, then kept
/// there) and hand it to `f`, with the return address register and whether
/// the FDE is a signal trampoline. Async-signal-safe without a cache.
fn with_row<'m, M: Memory, T>(
    mem: &'m M,
    info: &UnwindInfo,
    lookup: u64,
    cache: Option<&mut RowCache>,
    f: impl FnOnce(
        &EhFrame<MemReader<'m, M>>,
        &UnwindTableRow<usize, FrameStorage>,
        Register,
        bool,
    ) -> Option<T>,
) -> Option<T> {
    if info.eh_frame_hdr == 0 {
        return None;
    }
    if let Some(hit) = cache.as_ref().and_then(|c| c.find(info, lookup)) {
        let at = usize::try_from(hit.eh_frame_at).ok()?;
        let mut eh_frame = EhFrame::from(MemReader::new(mem, at, hit.eh_frame_len)?);
        eh_frame.set_address_size(8);
        #[cfg(target_arch = "aarch64")]
        eh_frame.set_vendor(gimli::Vendor::AArch64);
        return f(&eh_frame, &hit.row, hit.ra, hit.signal);
    }
    let bases = BaseAddresses::default().set_eh_frame_hdr(info.eh_frame_hdr as u64);
    let hdr = EhFrameHdr::from(MemReader::new(
        mem,
        info.eh_frame_hdr,
        info.eh_frame_hdr_len,
    )?);
    let parsed = hdr.parse(&bases, 8).ok()?;
    let eh_frame_at = match parsed.eh_frame_ptr() {
        Pointer::Direct(a) => a,
        Pointer::Indirect(a) => mem.read::<u64>(usize::try_from(a).ok()?).ok()?,
    };
    let at = usize::try_from(eh_frame_at).ok()?;
    let len = match info.eh_frame_end.checked_sub(at) {
        Some(len) if len > 0 => len,
        _ => MAX_EH_FRAME,
    };
    let mut eh_frame = EhFrame::from(MemReader::new(mem, at, len)?);
    eh_frame.set_address_size(8);
    #[cfg(target_arch = "aarch64")]
    eh_frame.set_vendor(gimli::Vendor::AArch64);
    let bases = bases.set_eh_frame(eh_frame_at);
    let table = parsed.table()?;
    let fde = table
        .fde_for_address(&eh_frame, &bases, lookup, EhFrame::cie_from_offset)
        .ok()?;
    let mut ctx = UnwindContext::<usize, FrameStorage>::new_in();
    let row = fde
        .unwind_info_for_address(&eh_frame, &bases, &mut ctx, lookup)
        .ok()?;
    let ra = fde.cie().return_address_register();
    let signal = fde.is_signal_trampoline();
    if let Some(cache) = cache
        && cache.rows.len() < MAX_ROWS
    {
        cache.rows.push(CachedRow {
            info: *info,
            eh_frame_at,
            eh_frame_len: len,
            row: row.clone(),
            ra,
            signal,
        });
    }
    f(&eh_frame, row, ra, signal)
}

/// The caller's registers from a CFI row. None at the outermost frame
/// (return address undefined) or when the return address cannot be read.
/// Async-signal-safe.
fn apply<'m, M: Memory>(
    mem: &'m M,
    eh_frame: &EhFrame<MemReader<'m, M>>,
    row: &UnwindTableRow<usize, FrameStorage>,
    ra: Register,
    regs: &Regs,
) -> Option<Regs> {
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            regs.get(register.0)?.wrapping_add(offset.cast_unsigned())
        }
        CfaRule::Expression(expr) => evaluate(mem, eh_frame, expr, regs, None)?,
    };
    let read = |a: u64| mem.read::<u64>(usize::try_from(a).ok()?).ok();
    let mut next = Regs::empty();
    let mut sp_rule = false;
    for r in 0..arch::NREGS {
        let Ok(r) = u16::try_from(r) else {
            break;
        };
        let rule = row.register(Register(r));
        sp_rule |= r == arch::SP && rule.is_some();
        let value = match rule {
            None | Some(RegisterRule::SameValue) => regs.get(r),
            Some(RegisterRule::Undefined | RegisterRule::Architectural) => None,
            Some(RegisterRule::Offset(off)) => read(cfa.wrapping_add(off.cast_unsigned())),
            Some(RegisterRule::ValOffset(off)) => Some(cfa.wrapping_add(off.cast_unsigned())),
            Some(RegisterRule::Register(from)) => regs.get(from.0),
            Some(RegisterRule::Expression(e)) => {
                evaluate(mem, eh_frame, &e, regs, Some(cfa)).and_then(read)
            }
            Some(RegisterRule::ValExpression(e)) => evaluate(mem, eh_frame, &e, regs, Some(cfa)),
            Some(RegisterRule::Constant(v)) => Some(v),
        };
        if let Some(v) = value {
            next.set(r, v);
        }
    }
    // The caller's stack pointer is the CFA unless a rule says otherwise.
    if !sp_rule {
        next.set(arch::SP, cfa);
    }
    let mut pc = next.get(ra.0)?;
    #[cfg(target_arch = "aarch64")]
    if matches!(row.register(gimli::AArch64::RA_SIGN_STATE), Some(RegisterRule::Constant(v)) if v & 1 != 0)
    {
        // Pointer authentication: drop the signature bits.
        pc &= (1u64 << 48).wrapping_sub(1);
    }
    #[cfg(not(target_arch = "aarch64"))]
    let _ = &mut pc;
    next.pc = pc;
    Some(next)
}

/// Evaluate a DWARF expression of a CFI rule; `cfa` is pushed first for
/// register rules. Async-signal-safe.
fn evaluate<'m, M: Memory>(
    mem: &'m M,
    eh_frame: &EhFrame<MemReader<'m, M>>,
    expr: &gimli::UnwindExpression<usize>,
    regs: &Regs,
    cfa: Option<u64>,
) -> Option<u64> {
    let bytecode = expr.get(eh_frame).ok()?;
    let encoding = Encoding {
        address_size: 8,
        format: Format::Dwarf32,
        version: 4,
    };
    let mut eval = gimli::Evaluation::<_, ExprStorage>::new_in(bytecode.0, encoding);
    eval.set_max_iterations(MAX_OPS);
    if let Some(cfa) = cfa {
        eval.set_initial_value(cfa);
    }
    let mut state = eval.evaluate().ok()?;
    for _ in 0..MAX_RESUMES {
        state = match state {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let a = usize::try_from(address).ok()?;
                let v = match size {
                    1 => u64::from(mem.read::<u8>(a).ok()?),
                    2 => u64::from(mem.read::<u16>(a).ok()?),
                    4 => u64::from(mem.read::<u32>(a).ok()?),
                    8 => mem.read::<u64>(a).ok()?,
                    _ => return None,
                };
                eval.resume_with_memory(Value::Generic(v)).ok()?
            }
            EvaluationResult::RequiresRegister { register, .. } => eval
                .resume_with_register(Value::Generic(regs.get(register.0)?))
                .ok()?,
            _ => return None,
        };
    }
    if !matches!(state, EvaluationResult::Complete) {
        return None;
    }
    match eval.as_result().first()?.location {
        Location::Address { address } => Some(address),
        Location::Value {
            value: Value::Generic(v),
        } => Some(v),
        _ => None,
    }
}
