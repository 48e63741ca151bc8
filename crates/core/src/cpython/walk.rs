//! The walker: interpreter → thread states → frames → (file, function, line).
//!
//! It knows CPython's structures (through a [`Layout`]) and reads them only
//! through a [`Memory`]; it knows nothing of signals or output formats. Every
//! loop is bounded and every pointer is checked for its shape before use, so a
//! corrupt structure gives an error, never a hang. Everything here is
//! async-signal-safe: no allocation, no locks, no panics.

use core::cell::Cell;

use super::layout::{BytesStr, DictKeys, FramePath, InstrPosition, Layout};
use super::lines;
use crate::memory::{BadAddress, Memory};

/// `Py_TPFLAGS_UNICODE_SUBCLASS`.
const TPFLAGS_UNICODE_SUBCLASS: u64 = 1 << 28;

/// Pointers are 8-byte aligned in every structure the walker follows.
const POINTER_ALIGN: usize = 8;

/// The few type objects the walker compares against, captured once (with the
/// GIL) before any dump.
#[derive(Clone, Copy, Debug, Default)]
pub struct KnownTypes {
    pub unicode: usize,
    pub module: usize,
    /// `PyCode_Type`: a frame whose code pointer does not lead to a code
    /// object is reported as invalid instead of printing garbage.
    pub code: usize,
    /// 2.7's `PyString_Type` (0 from 3.0 on).
    pub bytes_str: usize,
}

/// What went wrong while walking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// An address could not be read.
    Unreadable(usize),
    /// A pointer that must be aligned, or a value that must be in a range, is not.
    Malformed(usize),
}

impl From<BadAddress> for WalkError {
    fn from(e: BadAddress) -> Self {
        WalkError::Unreadable(e.0)
    }
}

pub type WalkResult<T> = Result<T, WalkError>;

/// One Python frame, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The `co_filename` object (0 if NULL).
    pub filename: usize,
    /// The `co_name` object (0 if NULL).
    pub name: usize,
    /// The line, or a negative number when unknown.
    pub line: i32,
}

/// A `str` object, ready to be read code point by code point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Str {
    /// Number of code points.
    pub length: usize,
    /// Bytes per code point: 1, 2 or 4.
    pub kind: usize,
    /// Address of the first code point.
    pub data: usize,
}

/// Reads CPython's structures of one interpreter version from one memory.
pub struct Walker<'a, M: Memory> {
    pub mem: &'a M,
    pub layout: &'a Layout,
    pub types: KnownTypes,
    /// Lines already decoded in this walk, by (code object, instruction
    /// offset): deep recursion repeats the same few frames, and decoding a
    /// line table is the walker's most expensive step.
    lines: [Cell<(usize, i64, i32)>; LINE_CACHE],
    /// Bytes of a code object up to the end of the last field `frame` reads.
    code_head: usize,
}

/// Bytes of a code object that hold every field the walker reads, on every
/// version.
const CODE_HEAD: usize = 256;

/// Entries of the per-walk line cache (even: slots come in pairs).
const LINE_CACHE: usize = 64;

/// The even slot of the pair of slots for `key` (an object address, or one
/// mixed with more) in a per-walk table of `slots` (even) entries: a
/// multiplicative hash of the key without its low four bits (objects are
/// 16-byte aligned). Async-signal-safe.
pub(crate) fn pair_index(key: u64, slots: usize) -> usize {
    let mixed = (key >> 4).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // The high bits are the best mixed.
    let pairs = (slots / 2) as u64;
    let pair = (mixed >> 32).checked_rem(pairs).unwrap_or(0);
    usize::try_from(pair).unwrap_or(0).wrapping_mul(2)
}

/// An address that may be followed: aligned (NULL is allowed and returned as
/// 0). Async-signal-safe.
fn pointer(addr: usize) -> WalkResult<usize> {
    if !addr.is_multiple_of(POINTER_ALIGN) {
        Err(WalkError::Malformed(addr))
    } else {
        Ok(addr)
    }
}

/// `base + offset` for a field of a structure read from the target: an
/// overflow (a garbage pointer near the top of the address space) is an
/// error, never a panic. Async-signal-safe.
fn at(base: usize, offset: usize) -> WalkResult<usize> {
    base.checked_add(offset).ok_or(WalkError::Malformed(base))
}

impl<'a, M: Memory> Walker<'a, M> {
    /// Async-signal-safe.
    pub fn new(mem: &'a M, layout: &'a Layout, types: KnownTypes) -> Self {
        Walker {
            mem,
            layout,
            types,
            lines: [const { Cell::new((0, 0, 0)) }; LINE_CACHE],
            code_head: [
                (layout.code_filename, 8),
                (layout.ob_type, 8),
                (layout.code_name, 8),
                (layout.code_linetable, 8),
                (layout.code_firstlineno, 4),
            ]
            .iter()
            .map(|&(offset, width)| offset.saturating_add(width))
            .max()
            .unwrap_or(0),
        }
    }

    /// Read a pointer field and check its shape (NULL is allowed and returned
    /// as 0). Async-signal-safe.
    fn ptr_field(&self, base: usize, offset: usize) -> WalkResult<usize> {
        let value = self.mem.read_ptr(pointer(base)?, offset)?;
        pointer(value)
    }

    // ---- interpreter and threads -------------------------------------------

    /// The first thread state of an interpreter (the newest thread).
    /// Async-signal-safe.
    pub fn thread_head(&self, interp: usize) -> WalkResult<usize> {
        self.ptr_field(interp, self.layout.interp_threads_head)
    }

    /// The next (older) thread state, 0 at the end. Async-signal-safe.
    pub fn next_thread(&self, tstate: usize) -> WalkResult<usize> {
        self.ptr_field(tstate, self.layout.tstate_next)
    }

    /// The interpreter a thread state belongs to. Async-signal-safe.
    pub fn thread_interp(&self, tstate: usize) -> WalkResult<usize> {
        self.ptr_field(tstate, self.layout.tstate_interp)
    }

    /// `tstate->thread_id` (the pthread_t). Async-signal-safe.
    pub fn thread_id(&self, tstate: usize) -> WalkResult<u64> {
        let addr = at(pointer(tstate)?, self.layout.tstate_thread_id)?;
        Ok(self.mem.read::<u64>(addr)?)
    }

    /// The kernel thread id of a thread state, where the version has it.
    /// Async-signal-safe.
    pub fn native_thread_id(&self, tstate: usize) -> WalkResult<Option<u64>> {
        match self.layout.tstate_native_thread_id {
            Some(offset) => Ok(Some(self.mem.read::<u64>(at(pointer(tstate)?, offset)?)?)),
            None => Ok(None),
        }
    }

    /// Whether the interpreter's garbage collector is running.
    /// Async-signal-safe.
    pub fn gc_collecting(&self, interp: usize) -> WalkResult<bool> {
        let Some(offset) = self.layout.interp_gc_collecting else {
            return Ok(false);
        };
        let addr = at(pointer(interp)?, offset)?;
        Ok(self.mem.read::<i32>(addr)? != 0)
    }

    /// `sys.modules` of an interpreter (0 if unset). Async-signal-safe.
    pub fn modules_dict(&self, interp: usize) -> WalkResult<usize> {
        self.ptr_field(interp, self.layout.interp_modules)
    }

    // ---- frames ------------------------------------------------------------

    /// The innermost frame of a thread, 0 if it runs no Python code.
    /// Async-signal-safe.
    pub fn current_frame(&self, tstate: usize) -> WalkResult<usize> {
        match self.layout.tstate_frame {
            FramePath::Direct(offset) => self.ptr_field(tstate, offset),
            FramePath::ViaCFrame {
                cframe,
                current_frame,
            } => {
                let cf = self.ptr_field(tstate, cframe)?;
                if cf == 0 {
                    return Ok(0);
                }
                self.ptr_field(cf, current_frame)
            }
        }
    }

    /// The frame that called this one; 0 at the outermost frame.
    /// Async-signal-safe.
    pub fn previous_frame(&self, frame: usize) -> WalkResult<usize> {
        self.ptr_field(frame, self.layout.frame_previous)
    }

    /// Whether a frame is one the stdlib does not print: a C-stack shim
    /// (3.12, 3.13) or a frame owned by the interpreter (3.14+).
    /// Async-signal-safe.
    pub fn is_shim(&self, frame: usize) -> WalkResult<bool> {
        match (self.layout.frame_owner, self.layout.shim_owner) {
            (Some(owner), Some(shim)) => {
                Ok(self.mem.read::<u8>(at(pointer(frame)?, owner)?)? == shim)
            }
            _ => Ok(false),
        }
    }

    /// Whether a frame's code pointer leads to a code object: the check of
    /// [`Walker::frame`] without its reads of names and line numbers.
    /// Async-signal-safe.
    pub fn has_code(&self, frame: usize) -> WalkResult<bool> {
        let code = self.code_pointer(frame)?;
        if code == 0 {
            return Ok(false);
        }
        Ok(self.types.code == 0 || self.type_of(code)? == self.types.code)
    }

    /// A frame's code pointer, tag bits cleared. Inlined: `frame` is on
    /// every dump's hot path. Async-signal-safe.
    #[inline(always)]
    fn code_pointer(&self, frame: usize) -> WalkResult<usize> {
        let l = self.layout;
        pointer(self.mem.read_ptr(pointer(frame)?, l.frame_code)? & !l.code_tag_mask)
    }

    /// 3.12: whether a frame that is not marked a shim runs the interpreter
    /// trampoline, the code of the eval loop's entry frames: such a frame is
    /// an entry frame read before its owner byte was set. False on every
    /// other version. Async-signal-safe.
    pub fn is_unmarked_entry_frame(&self, frame: usize) -> WalkResult<bool> {
        const TRAMPOLINE: &[u8; 24] = b"<interpreter trampoline>";
        if (self.layout.major, self.layout.minor) != (3, 12) {
            return Ok(false);
        }
        let name = self.ptr_field(self.code_pointer(frame)?, self.layout.code_name)?;
        match self.str(name)? {
            Some(s) if s.kind == 1 && s.length == TRAMPOLINE.len() => {
                let mut bytes = [0u8; 24];
                self.mem.read_immutable(s.data, &mut bytes)?;
                Ok(&bytes == TRAMPOLINE)
            }
            _ => Ok(false),
        }
    }

    /// The thread's sentinel frame, the outermost of every stack it runs
    /// (3.15+; None before). Async-signal-safe.
    pub fn base_frame(&self, tstate: usize) -> WalkResult<Option<usize>> {
        match self.layout.tstate_base_frame {
            Some(offset) => self.ptr_field(tstate, offset).map(Some),
            None => Ok(None),
        }
    }

    /// Whether every thread's outermost frame is a shim (3.12+: the first
    /// call of the eval loop pushes one, with no frame before it), so that a
    /// chain that ends right after a real frame was read as it changed.
    /// Async-signal-safe.
    pub fn stack_base_is_shim(&self) -> bool {
        self.layout.frame_owner.is_some() && self.layout.shim_owner.is_some()
    }

    /// Whether the Python frame that runs after this one (its caller) is run
    /// by an older call of the C eval loop than this one: 3.11's `is_entry`;
    /// on 2.7-3.10 always (one eval call per frame); from 3.12 never here (a
    /// shim frame between the two marks it, see [`Walker::is_shim`]).
    /// Async-signal-safe.
    pub fn ends_eval_call(&self, frame: usize) -> WalkResult<bool> {
        match (self.layout.frame_is_entry, self.layout.shim_owner) {
            (Some(offset), _) => Ok(self.mem.read::<u8>(at(pointer(frame)?, offset)?)? != 0),
            (None, Some(_)) => Ok(false),
            (None, None) => Ok(true),
        }
    }

    /// Resolve a frame: its code's file name and function name, and the line
    /// being executed. Inlined: a result handed back through memory costs
    /// a store-forwarding stall when read as a whole. Async-signal-safe.
    #[inline(always)]
    pub fn frame(&self, frame: usize) -> WalkResult<Frame> {
        let l = self.layout;
        let frame = pointer(frame)?;
        let code = self.code_pointer(frame)?;
        if code == 0 {
            return Err(WalkError::Malformed(frame));
        }
        // One read for the code object's fields we need: they all sit in its
        // first CODE_HEAD bytes on every version. Read no further than the
        // last of them, so that the read stays inside the object.
        let need = self.code_head;
        if need > CODE_HEAD {
            return Err(WalkError::Malformed(code));
        }
        // In place where the reader allows it (plain loads: no copy to read
        // back), else copied.
        let copy;
        let head: &[u8] = match self.mem.direct(code, need) {
            Some(head) => head,
            None => {
                let mut buf = [0u8; CODE_HEAD];
                self.mem
                    .read_immutable(code, buf.get_mut(..need).unwrap_or(&mut []))?;
                copy = buf;
                copy.get(..need).unwrap_or(&[])
            }
        };
        let field = |offset: usize| -> usize {
            head.get(offset..offset.saturating_add(8))
                .and_then(|s| s.try_into().ok())
                .map(usize::from_ne_bytes)
                .unwrap_or(0)
        };
        if self.types.code != 0 && field(l.ob_type) != self.types.code {
            return Err(WalkError::Malformed(code));
        }
        let filename = field(l.code_filename);
        let name = field(l.code_name);
        let linetable = field(l.code_linetable);
        let firstlineno = head
            .get(l.code_firstlineno..l.code_firstlineno.saturating_add(4))
            .and_then(|s| s.try_into().ok())
            .map(i32::from_ne_bytes)
            .unwrap_or(0);
        let instr = at(frame, l.frame_instr)?;
        let addr: i64 = match l.instr_position {
            InstrPosition::LastiBytes => i64::from(self.mem.read::<i32>(instr)?),
            InstrPosition::LastiUnits => i64::from(self.mem.read::<i32>(instr)?).wrapping_mul(2),
            InstrPosition::Pointer { code_adaptive } => {
                let instr = self.mem.read::<usize>(instr)?;
                // A negative offset (an instruction pointer before the first
                // instruction) is what CPython passes to Addr2Line too.
                (instr as i64).wrapping_sub(at(code, code_adaptive)? as i64)
            }
        };
        Ok(Frame {
            filename,
            name,
            line: self.cached_line(code, addr, linetable, firstlineno),
        })
    }

    /// The line of instruction offset `addr` of `code`, from the per-walk
    /// cache or decoded (and cached). The cache is two-way: a pair of
    /// neighbouring slots per (code, offset), the older entry replaced.
    /// Async-signal-safe.
    #[inline]
    fn cached_line(&self, code: usize, addr: i64, linetable: usize, firstlineno: i32) -> i32 {
        // Two slots: an even index and the odd one after it.
        let first = pair_index((code as u64) ^ ((addr as u64) << 4), LINE_CACHE);
        let (Some(a), Some(b)) = (self.lines.get(first), self.lines.get(first | 1)) else {
            return self.line_for(linetable, firstlineno, addr);
        };
        for slot in [a, b] {
            if let (c, off, line) = slot.get()
                && c == code
                && off == addr
            {
                return line;
            }
        }
        let line = self.line_for(linetable, firstlineno, addr);
        // The newest entry goes first, the one it displaces second.
        b.set(a.get());
        a.set((code, addr, line));
        line
    }

    /// `PyCode_Addr2Line`: decode the line table (a bytes object) where it
    /// is if the reader allows, else read through a small window.
    /// Async-signal-safe.
    #[inline(never)]
    fn line_for(&self, table: usize, firstlineno: i32, addr: i64) -> i32 {
        let Ok(table) = pointer(table) else {
            return -1;
        };
        if table == 0 {
            return -1;
        }
        let (Ok(size_at), Ok(data)) = (
            at(table, self.layout.bytes_size),
            at(table, self.layout.bytes_data),
        ) else {
            return -1;
        };
        let len = match self
            .mem
            .read_immutable_value::<isize>(size_at)
            .map(usize::try_from)
        {
            // A line table is never larger than a few hundred kilobytes.
            Ok(Ok(n)) if n < (1 << 24) => n,
            _ => return -1,
        };
        let format = self.layout.line_table;
        match self.mem.direct(data, len) {
            Some(bytes) => lines::addr_to_line(format, bytes.iter().copied(), firstlineno, addr),
            None => {
                let bytes = ByteStream::new(self.mem, data, len);
                lines::addr_to_line(format, bytes, firstlineno, addr)
            }
        }
    }

    // ---- objects -----------------------------------------------------------

    /// The type object of an object. Async-signal-safe.
    pub fn type_of(&self, obj: usize) -> WalkResult<usize> {
        // An object's type never changes once it is made, in the objects
        // whose type the walker asks for (strings, modules).
        let value = self
            .mem
            .read_immutable_value::<usize>(at(pointer(obj)?, self.layout.ob_type)?)?;
        pointer(value)
    }

    /// The object as a string if it is a `str` (a `PyUnicode_Check`), or on
    /// 2.7 a byte string (`PyString_Check`, what 2.7's code objects hold),
    /// else None. Inlined, like `frame`. Async-signal-safe.
    #[inline(always)]
    pub fn str(&self, obj: usize) -> WalkResult<Option<Str>> {
        if obj == 0 {
            return Ok(None);
        }
        let ty = self.type_of(obj)?;
        let l = self.layout;
        if let Some(bytes_str) = l.bytes_str {
            if self.is_type(ty, self.types.bytes_str, bytes_str.subclass_flag)? {
                return self.bytes_str(obj, bytes_str).map(Some);
            }
            return Ok(None);
        }
        if !self.is_type(ty, self.types.unicode, TPFLAGS_UNICODE_SUBCLASS)? {
            return Ok(None);
        }
        let length = self
            .mem
            .read_immutable_value::<isize>(at(obj, l.unicode_length)?)?;
        let state = self
            .mem
            .read_immutable_value::<u32>(at(obj, l.unicode_state)?)?;
        let kind = ((state >> l.unicode_kind_shift) & 7) as usize;
        let compact = state & (1 << l.unicode_compact_bit) != 0;
        let ascii = state & (1 << l.unicode_ascii_bit) != 0;
        let Ok(length) = usize::try_from(length) else {
            return Err(WalkError::Malformed(obj));
        };
        if !matches!(kind, 1 | 2 | 4) {
            // kind 0 is a legacy not-ready string (≤3.11): nothing to print.
            return Err(WalkError::Malformed(obj));
        }
        let data = if compact {
            at(
                obj,
                if ascii {
                    l.unicode_ascii_size
                } else {
                    l.unicode_compact_size
                },
            )?
        } else {
            self.ptr_field(obj, l.unicode_data_any)?
        };
        if data == 0 {
            return Err(WalkError::Malformed(obj));
        }
        Ok(Some(Str { length, kind, data }))
    }

    /// Whether `ty` is `exact`, or a type whose `tp_flags` has `subclass_flag`
    /// (how CPython's `PyUnicode_Check` and `PyString_Check` decide).
    /// Async-signal-safe.
    fn is_type(&self, ty: usize, exact: usize, subclass_flag: u64) -> WalkResult<bool> {
        if ty == exact && exact != 0 {
            return Ok(true);
        }
        let flags = self
            .mem
            .read_immutable_value::<u64>(at(pointer(ty)?, self.layout.tp_flags)?)?;
        Ok(flags & subclass_flag != 0)
    }

    /// A 2.7 `PyStringObject`: `ob_size` bytes at `ob_sval`, one byte a
    /// code point. Async-signal-safe.
    fn bytes_str(&self, obj: usize, layout: BytesStr) -> WalkResult<Str> {
        let length = self
            .mem
            .read_immutable_value::<isize>(at(obj, layout.size)?)?;
        let length = usize::try_from(length).map_err(|_| WalkError::Malformed(obj))?;
        Ok(Str {
            length,
            kind: 1,
            data: at(obj, layout.data)?,
        })
    }

    /// The code points of a string, read through a small window.
    /// Async-signal-safe.
    pub fn chars(&self, s: Str) -> Chars<'a, M> {
        Chars {
            bytes: ByteStream::new(self.mem, s.data, s.length.saturating_mul(s.kind)),
            kind: s.kind,
        }
    }

    // ---- modules -------------------------------------------------------------

    /// Whether `obj` is an extension module the way `_PyModule_IsExtension`
    /// sees it: a module whose `PyModuleDef` has methods. Async-signal-safe.
    pub fn is_extension_module(&self, obj: usize) -> WalkResult<bool> {
        let mut ty = self.type_of(obj)?;
        // PyModule_Check accepts subclasses: follow tp_base a few steps.
        let mut is_module = false;
        for _ in 0..16 {
            if ty == 0 {
                break;
            }
            if ty == self.types.module {
                is_module = true;
                break;
            }
            ty = self.ptr_field(ty, self.layout.tp_base)?;
        }
        if !is_module {
            return Ok(false);
        }
        // 3.15: a module with an exec function is an extension; md_token is
        // a PyModuleDef only when md_token_is_def says so.
        if let Some(exec) = self.layout.module_exec
            && self.mem.read_ptr(obj, exec)? != 0
        {
            return Ok(true);
        }
        if let Some(is_def) = self.layout.module_token_is_def
            && self.mem.read::<u8>(at(obj, is_def)?)? == 0
        {
            return Ok(false);
        }
        let def = self.ptr_field(obj, self.layout.module_def)?;
        if def == 0 {
            return Ok(false);
        }
        Ok(self.mem.read_ptr(def, self.layout.moduledef_methods)? != 0)
    }

    /// Where the `PyModuleDef` of `obj` would be if it were a module, for a
    /// prefetch (0 when unreadable; not validated). Async-signal-safe.
    pub fn module_def_hint(&self, obj: usize) -> usize {
        self.mem.read_ptr(obj, self.layout.module_def).unwrap_or(0)
    }

    /// The (key, value) pairs of a dict, in order. Async-signal-safe.
    pub fn dict_items(&self, dict: usize) -> WalkResult<DictItems<'_, 'a, M>> {
        let l = self.layout;
        let keys = self.ptr_field(dict, l.dict_keys)?;
        let values = self.ptr_field(dict, l.dict_values)?;
        if keys == 0 || values != 0 {
            // Split tables hold instance attributes, never sys.modules.
            return Err(WalkError::Malformed(dict));
        }
        let (entries, count, entry_size, key_offset) = match l.dict_keys_format {
            DictKeys::Legacy => {
                let size = self.mem.read::<isize>(at(keys, 8)?)?;
                let nentries = self.mem.read::<isize>(at(keys, 32)?)?;
                let size = match usize::try_from(size) {
                    Ok(size) if size < (1 << 30) => size,
                    _ => return Err(WalkError::Malformed(keys)),
                };
                let width: usize = match size {
                    0..=0xff => 1,
                    0x100..=0xffff => 2,
                    0x1_0000..=0xffff_ffff => 4,
                    _ => 8,
                };
                // size < 2^30: the index table is at most 8 GiB.
                let entries = at(keys, 40)?
                    .checked_add(size.wrapping_mul(width))
                    .ok_or(WalkError::Malformed(keys))?;
                (entries, nentries, 24, 8)
            }
            DictKeys::Compact {
                log2_index_bytes,
                kind,
                nentries,
                indices,
            } => {
                let log2 = self.mem.read::<u8>(at(keys, log2_index_bytes)?)?;
                let kind = self.mem.read::<u8>(at(keys, kind)?)?;
                let n = self.mem.read::<isize>(at(keys, nentries)?)?;
                if log2 > 40 {
                    return Err(WalkError::Malformed(keys));
                }
                let (size, key_offset) = if kind == 0 { (24, 8) } else { (16, 0) };
                (at(at(keys, indices)?, 1usize << log2)?, n, size, key_offset)
            }
        };
        let count = match usize::try_from(count) {
            Ok(count) if count < (1 << 24) => count,
            _ => return Err(WalkError::Malformed(keys)),
        };
        Ok(DictItems {
            walker: self,
            entries,
            count,
            entry_size,
            key_offset,
            index: 0,
        })
    }
}

/// Iterator over the live entries of a dict's keys object.
pub struct DictItems<'w, 'a, M: Memory> {
    walker: &'w Walker<'a, M>,
    entries: usize,
    count: usize,
    entry_size: usize,
    key_offset: usize,
    index: usize,
}

impl<M: Memory> Iterator for DictItems<'_, '_, M> {
    type Item = WalkResult<(usize, usize)>;

    /// Async-signal-safe.
    fn next(&mut self) -> Option<Self::Item> {
        while self.index < self.count {
            // index < 2^24 and entry_size <= 24: no overflow in the product;
            // the sum is checked by the reads.
            let entry = self
                .entries
                .checked_add(self.index.wrapping_mul(self.entry_size))
                .unwrap_or(0);
            self.index = self.index.saturating_add(1);
            let mem = self.walker.mem;
            let pair = mem
                .read_ptr(entry, self.key_offset)
                .and_then(|k| Ok((k, mem.read_ptr(entry, self.key_offset.saturating_add(8))?)));
            match pair {
                Ok((_, 0)) | Ok((0, _)) => continue,
                Ok(kv) => return Some(Ok(kv)),
                Err(e) => {
                    self.index = self.count;
                    return Some(Err(e.into()));
                }
            }
        }
        None
    }
}

/// Bytes of interpreter memory, read through a 128-byte window.
pub struct ByteStream<'a, M: Memory> {
    mem: &'a M,
    next: usize,
    end: usize,
    window: [u8; 128],
    pos: usize,
    filled: usize,
    failed: bool,
}

impl<'a, M: Memory> ByteStream<'a, M> {
    /// Async-signal-safe.
    pub fn new(mem: &'a M, addr: usize, len: usize) -> Self {
        ByteStream {
            mem,
            next: addr,
            end: addr.saturating_add(len),
            window: [0; 128],
            pos: 0,
            filled: 0,
            failed: false,
        }
    }
}

impl<M: Memory> Iterator for ByteStream<'_, M> {
    type Item = u8;

    /// Async-signal-safe.
    fn next(&mut self) -> Option<u8> {
        if self.pos == self.filled {
            if self.failed || self.next >= self.end {
                return None;
            }
            // next < end here.
            let take = self.end.wrapping_sub(self.next).min(self.window.len());
            let (chunk, _) = self.window.split_at_mut(take);
            // Line tables and string data: immutable objects.
            if self.mem.read_immutable(self.next, chunk).is_err() {
                self.failed = true;
                return None;
            }
            self.next = self.next.saturating_add(take);
            self.pos = 0;
            self.filled = take;
        }
        let b = self.window.get(self.pos).copied();
        self.pos = self.pos.saturating_add(1);
        b
    }
}

/// The code points of a `str`, read from interpreter memory.
pub struct Chars<'a, M: Memory> {
    bytes: ByteStream<'a, M>,
    kind: usize,
}

impl<M: Memory> Iterator for Chars<'_, M> {
    type Item = u32;

    /// Async-signal-safe.
    fn next(&mut self) -> Option<u32> {
        let mut ch: u32 = 0;
        for shift in [0, 8, 16, 24].into_iter().take(self.kind) {
            ch |= u32::from(self.bytes.next()?) << shift;
        }
        Some(ch)
    }
}
