//! Recognising CPython's own `Py_FatalError()` on the stack.
//!
//! `Py_FatalError()` prints its own report (message, runtime state, every
//! thread, extension modules) and then calls `abort()`. The stdlib avoids a
//! second report by disabling its own handler first; it cannot disable ours.
//! So when SIGABRT arrives, lastwords looks at the stack of the aborting thread:
//! if a return address into one of CPython's fatal-error entry points is there,
//! the report was already written and lastwords stays silent.
//!
//! The entry points never return, so their return addresses on a stack are
//! never stale: one is found only while a fatal error is in progress.

#![allow(unsafe_code)]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::memory::Memory;

/// `[start, end)` of each exported fatal-error entry point, found at enable time.
static RANGES: [(AtomicUsize, AtomicUsize); 3] = [
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
    (AtomicUsize::new(0), AtomicUsize::new(0)),
];

/// How far above the stack pointer to look: `fatal_error()` and `abort()`
/// use a few hundred bytes of stack; 16 KiB leaves room to spare.
const SCAN_BYTES: usize = 16 * 1024;

/// glibc's `RTLD_DL_SYMENT`: make dladdr1 return the ELF symbol.
const RTLD_DL_SYMENT: libc::c_int = 1;

/// The size of the symbol `name` found at `addr`: from the GNU hash table
/// of the object that holds it, else (no such table, or the name leads
/// elsewhere) from dladdr1, which scans the object's symbols one by one.
fn symbol_size(addr: usize, name: &core::ffi::CStr) -> usize {
    if let Some(object) = crate::loaded::object_containing(addr) {
        // SAFETY: the object dl_iterate_phdr listed as holding `addr`.
        let sym = unsafe { crate::loaded::defined_symbol(&object, name.to_bytes()) };
        if let Some(sym) = sym
            && usize::try_from(sym.value).is_ok_and(|v| object.base.wrapping_add(v) == addr)
        {
            return usize::try_from(sym.size).unwrap_or(0);
        }
    }
    // SAFETY: zeroed Dl_info is a valid out-parameter.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    let mut sym: *mut libc::c_void = core::ptr::null_mut();
    // SAFETY: `addr` is a symbol address; `info` and `sym` are valid
    // out-pointers; with RTLD_DL_SYMENT `sym` receives an Elf64_Sym pointer.
    let found = unsafe {
        libc::dladdr1(
            addr as *const libc::c_void,
            &mut info,
            &mut sym,
            RTLD_DL_SYMENT,
        )
    };
    if found != 0 && !sym.is_null() {
        // SAFETY: when dladdr1 succeeds and sets it, `sym` points at the
        // symbol table entry of the loaded object, which stays mapped.
        usize::try_from(unsafe { (*sym.cast::<crate::loaded::Sym>()).size }).unwrap_or(0)
    } else {
        0
    }
}

/// Find the entry points' address ranges. Called with the GIL, before any
/// handler may need them.
pub fn prepare() {
    let names = [
        c"_Py_FatalErrorFunc",
        c"Py_FatalError",
        c"_Py_FatalErrorFormat",
    ];
    for (name, (start, end)) in names.iter().zip(RANGES.iter()) {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
        let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if addr.is_null() {
            continue;
        }
        let size = symbol_size(addr as usize, name);
        let size = if size == 0 { 256 } else { size };
        start.store(addr as usize, Ordering::Release);
        end.store((addr as usize).saturating_add(size), Ordering::Release);
    }
}

/// Whether any word in the `SCAN_BYTES` above `sp` is a return address into
/// a fatal-error entry point. Async-signal-safe.
pub fn in_progress(mem: &impl Memory, sp: usize) -> bool {
    let is_entry_return = |word: usize| {
        RANGES.iter().any(|(start, end)| {
            let (s, e) = (start.load(Ordering::Acquire), end.load(Ordering::Acquire));
            s != 0 && s < word && word <= e
        })
    };
    let mut chunk = [0usize; 64];
    let mut at = sp & !7;
    let stop = at.saturating_add(SCAN_BYTES);
    while at < stop {
        // SAFETY: the array is plain usizes; viewing it as bytes is sound.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(chunk.as_mut_ptr().cast::<u8>(), size_of_val(&chunk))
        };
        if mem.read_bytes(at, bytes).is_err() {
            // The chunk runs past the top of the stack's mapping (a thread's
            // stack can end a few hundred bytes above the faulting frame):
            // read what is left word by word, up to the first unreadable one.
            while let Ok(word) = mem.read::<usize>(at) {
                if is_entry_return(word) {
                    return true;
                }
                at = at.saturating_add(8);
            }
            return false;
        }
        if chunk.iter().any(|&word| is_entry_return(word)) {
            return true;
        }
        at = at.saturating_add(size_of_val(&chunk));
    }
    false
}

/// The stack pointer at the moment the signal arrived. Async-signal-safe.
pub fn interrupted_sp(context: *mut libc::c_void) -> Option<usize> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers.
        let gregs = unsafe { &(*uc).uc_mcontext.gregs };
        gregs
            .get(libc::REG_RSP as usize)
            .and_then(|&sp| usize::try_from(sp).ok())
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: as above.
        Some(unsafe { (*uc).uc_mcontext.sp } as usize)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = uc;
        None
    }
}
