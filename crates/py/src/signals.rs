//! What the fatal and user-signal handlers share: saved `sigaction`s, the
//! alternate signal stacks (the enabling thread's, and one per thread the
//! interpreter starts while enabled), and the guard that keeps two dumps from
//! running at once in one process.

#![allow(unsafe_code)]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::AtomicBool;

/// Set while a user-signal dump runs: a signal arriving during one (on
/// another thread) does not start a second one (the stdlib's `reentrant` flag).
pub static DUMPING: AtomicBool = AtomicBool::new(false);

/// The signature of an `SA_SIGINFO` handler.
pub type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// A `sigaction` saved by `install` and put back by `restore`.
pub struct SavedAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: a slot is written only by `install`, from code serialised by the
// binding layer's lock, before the handler that reads it is published (an
// atomic flag with Release/Acquire ordering in the caller).
unsafe impl Sync for SavedAction {}

impl SavedAction {
    pub const fn new() -> Self {
        SavedAction(UnsafeCell::new(MaybeUninit::zeroed()))
    }
}

impl Default for SavedAction {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty signal set. Async-signal-safe.
pub fn empty_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid value for sigemptyset to fill.
    let mut set: libc::sigset_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// A handler action with the given flags (`SA_SIGINFO` added) and an empty mask.
pub fn action(handler: Handler, flags: libc::c_int) -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid "default action, empty mask" value.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = flags | libc::SA_SIGINFO;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// Install `action` for `signum`, saving the previous action into `saved`
/// (when given). Async-signal-safe.
pub fn install(
    signum: libc::c_int,
    action: &libc::sigaction,
    saved: Option<&SavedAction>,
) -> std::io::Result<()> {
    let old = saved.map_or(core::ptr::null_mut(), |s| {
        s.0.get().cast::<libc::sigaction>()
    });
    // SAFETY: `action` is a valid sigaction; `old` is null or a slot that only
    // this (serialised) caller writes.
    if unsafe { libc::sigaction(signum, action, old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Put back the action saved for `signum`. Async-signal-safe.
pub fn restore(signum: libc::c_int, saved: &SavedAction) {
    // SAFETY: the slot was filled by `install` before any handler that calls
    // this could run.
    unsafe {
        libc::sigaction(
            signum,
            saved.0.get().cast::<libc::sigaction>(),
            core::ptr::null_mut(),
        )
    };
}

/// Run the action saved in `saved` for a signal that our handler `ours` is
/// handling: a function is called directly (with the siginfo and context when
/// it takes them); SIG_IGN does nothing; SIG_DFL is put back and the signal
/// raised again, then `ours` is reinstalled (SIG_DFL of most signals ends the
/// process there). A saved action that is `ours` itself (a register racing an
/// unregister) is not followed. Async-signal-safe.
pub fn call_previous(
    signum: libc::c_int,
    saved: &SavedAction,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    ours: Handler,
) {
    // SAFETY: the slot was filled by `install` before our handler was
    // published; reading a copy of it is a plain load.
    let previous: libc::sigaction = unsafe { saved.0.get().cast::<libc::sigaction>().read() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_IGN || handler == ours as usize {
        return;
    }
    if handler == libc::SIG_DFL {
        // The default action must happen now, as the stdlib's SA_NODEFER
        // handler lets it: terminate or dump core (the process ends here),
        // stop (raise returns once the process is continued) or ignore. The
        // signal is blocked while its handler runs, so it is unblocked for
        // the raise: a raise while blocked would stay pending, be delivered
        // to the reinstalled handler on return, and start the dump again,
        // for ever.
        restore(signum, saved);
        let mut only = empty_set();
        // SAFETY: `only` is a valid sigset_t; sigaddset, pthread_sigmask and
        // raise are async-signal-safe.
        unsafe {
            libc::sigaddset(&mut only, signum);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, core::ptr::null_mut());
            libc::raise(signum);
            // Blocked again before our handler is back: another instance of
            // the signal waits for this handler to return.
            libc::pthread_sigmask(libc::SIG_BLOCK, &only, core::ptr::null_mut());
        }
        let action = action(ours, libc::SA_RESTART | libc::SA_ONSTACK);
        let _ = install(signum, &action, None);
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action declared itself an SA_SIGINFO handler.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        f(signum, info, context);
    } else {
        // SAFETY: a plain sa_handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) =
            unsafe { core::mem::transmute::<usize, extern "C" fn(libc::c_int)>(handler) };
        f(signum);
    }
}

/// Bytes of alternate signal stack: the stdlib's `SIGSTKSZ * 2` is too tight
/// for a walker with its write buffer, so give it room.
const ALT_STACK_SIZE: usize = 256 * 1024;

/// A fresh, private mapping of ALT_STACK_SIZE bytes (committed lazily).
fn map_stack() -> std::io::Result<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p)
}

/// The calling thread's alternate stack, as sigaltstack reports it.
fn current_alt_stack() -> libc::stack_t {
    // SAFETY: zeroed stack_t is valid; sigaltstack only writes into it.
    let mut current: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: querying the current alternate stack into a valid struct.
    unsafe { libc::sigaltstack(core::ptr::null(), &mut current) };
    current
}

/// Make the ALT_STACK_SIZE bytes at `base` the calling thread's alternate
/// stack.
///
/// # Safety
/// `base` must be a mapping of ALT_STACK_SIZE bytes that stays mapped while
/// it is the thread's alternate stack.
unsafe fn set_alt_stack(base: *mut libc::c_void) -> std::io::Result<()> {
    let stack = libc::stack_t {
        ss_sp: base,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `stack` describes the caller's mapping (see # Safety).
    if unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Give the calling thread an alternate signal stack of its own, so that a
/// stack overflow can still be reported: `enable()` and `register()` call it
/// on the thread that calls them. One stack per thread, never shared: two
/// threads whose signals arrive at once would otherwise run their handlers on
/// the same memory, and the kernel's signal frame of one overwrites the
/// other's saved registers (which it restores on return). A thread that has
/// a large enough one already keeps it.
pub fn install_alt_stack() -> std::io::Result<()> {
    let current = current_alt_stack();
    let usable = current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= ALT_STACK_SIZE;
    if usable {
        return Ok(());
    }
    own_alt_stack()
}

/// An alternate signal stack owned by one thread, unmapped when it exits.
struct ThreadAltStack(usize);

impl ThreadAltStack {
    /// Free the memory of a stack that is no longer the thread's alternate
    /// stack.
    fn unmap(self) {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: the mapping is ours and no longer any thread's alternate
        // stack (the caller's invariant); nothing runs on it.
        unsafe { libc::munmap(this.0 as *mut libc::c_void, ALT_STACK_SIZE) };
    }
}

impl Drop for ThreadAltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: core::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: runs at thread exit, outside any signal handler of this
        // thread: the stack is disabled before it is unmapped.
        unsafe {
            libc::sigaltstack(&off, core::ptr::null_mut());
            libc::munmap(self.0 as *mut libc::c_void, ALT_STACK_SIZE);
        }
    }
}

std::thread_local! {
    static THREAD_ALT_STACK: core::cell::Cell<Option<ThreadAltStack>> = const { core::cell::Cell::new(None) };
}

/// Give a new thread of the interpreter its own alternate signal stack
/// (from the thread-start trampoline), so that a stack overflow there can be
/// reported too. Nothing happens if the thread already has one.
fn install_thread_alt_stack() -> std::io::Result<()> {
    if current_alt_stack().ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    own_alt_stack()
}

/// Map a stack for the calling thread and make it its alternate stack; it is
/// disabled and unmapped when the thread exits (a thread-local destructor).
fn own_alt_stack() -> std::io::Result<()> {
    let p = map_stack()?;
    // SAFETY: the mapping is owned by this thread until ThreadAltStack's Drop
    // disables it at thread exit.
    if let Err(err) = unsafe { set_alt_stack(p) } {
        // SAFETY: the mapping made above, not installed.
        unsafe { libc::munmap(p, ALT_STACK_SIZE) };
        return Err(err);
    }
    THREAD_ALT_STACK.with(|slot| {
        // A stack of ours this thread had before is not its alternate stack
        // any more (something replaced it, or it would still be usable):
        // free its memory without touching the one just installed.
        if let Some(old) = slot.replace(Some(ThreadAltStack(p as usize))) {
            old.unmap();
        }
    });
    Ok(())
}

// # Alternate stacks for the interpreter's new threads
//
// A stack overflow is reported only on a thread with an alternate signal
// stack, and a new thread has none. The interpreter starts every thread
// (`threading`, `_thread`, 3.13+ joinable threads) through
// `PyThread_start_new_thread` / `PyThread_start_joinable_thread`, which call
// `pthread_create` through a GOT slot of the ELF object that defines them
// (libpython, or the python executable when it is linked statically). While
// lastwords is enabled that slot holds `pthread_create_hook`, which starts the
// thread at `lastwords_thread_trampoline` instead of the interpreter's start
// routine: the trampoline gives the thread an alternate stack (unmapped by a
// thread-local destructor when the thread exits) and jumps to the real start
// routine, leaving no frame of its own on the thread's stack. Nothing visible
// to Python changes.
//
// The slot is written with one aligned compare-and-swap (a thread calling
// through it sees the old or the new value, both valid functions), only if it
// holds libc's `pthread_create` or, with lazy binding, a PLT entry of the
// object itself that has not been resolved yet; anything else (another tool's
// hook) is left alone. A slot under RELRO is made writable for the store and
// read-only again. `disable()` puts the original value back if the slot still
// holds the hook. x86_64 only (the trampoline is assembly); elsewhere new
// threads get no alternate stack.

#[cfg(target_arch = "x86_64")]
pub use thread_start::{hook_thread_starts, unhook_thread_starts};

/// Elsewhere new threads get no alternate stack.
#[cfg(not(target_arch = "x86_64"))]
pub fn hook_thread_starts() {}

#[cfg(not(target_arch = "x86_64"))]
pub fn unhook_thread_starts() {}

#[cfg(target_arch = "x86_64")]
mod thread_start {
    use super::install_thread_alt_stack;
    use crate::loaded::{self, LoadedObject};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// What the trampoline needs: the interpreter's start routine and its
    /// argument. Returned in two registers (rax:rdx) by `thread_prepare`.
    #[repr(C)]
    struct ThreadStart {
        start: usize,
        arg: usize,
    }

    /// Runs first on a new thread (called by the trampoline): give the thread its
    /// alternate stack and hand back the start routine to jump to.
    extern "C" fn thread_prepare(start: *mut ThreadStart) -> ThreadStart {
        // SAFETY: `start` was malloc'ed and filled by pthread_create_hook for
        // this thread only; it is read once and freed here.
        let start = unsafe {
            let copy = start.read();
            libc::free(start.cast());
            copy
        };
        // Without an alternate stack the thread is as the stdlib leaves it.
        let _ = install_thread_alt_stack();
        start
    }

    // The new thread's start routine: `thread_prepare(arg)`, then a tail jump to
    // the interpreter's start routine with its argument, so that no frame of
    // lastwords stays on the thread's stack (C stack traces, debuggers and
    // `pthread_exit`'s unwinding see the thread as the interpreter started it).
    // At entry rsp is 8 mod 16; the `sub` aligns the call.
    core::arch::global_asm!(
        ".pushsection .text.lastwords_thread_trampoline,\"ax\",@progbits",
        ".globl lastwords_thread_trampoline",
        ".hidden lastwords_thread_trampoline",
        ".type lastwords_thread_trampoline,@function",
        ".p2align 4",
        "lastwords_thread_trampoline:",
        ".cfi_startproc",
        "endbr64",
        "sub rsp, 8",
        ".cfi_adjust_cfa_offset 8",
        "call {prepare}",
        "add rsp, 8",
        ".cfi_adjust_cfa_offset -8",
        "mov rdi, rdx",
        "jmp rax",
        ".cfi_endproc",
        ".size lastwords_thread_trampoline, .-lastwords_thread_trampoline",
        ".popsection",
        prepare = sym thread_prepare,
    );

    unsafe extern "C" {
        /// The start routine given to the real `pthread_create` (see above).
        fn lastwords_thread_trampoline(start: *mut libc::c_void) -> *mut libc::c_void;
    }

    /// The `pthread_create` the hook calls (libc's, as the dynamic linker binds
    /// it); 0 until the first patch. Never cleared: a thread may still be inside
    /// the hook after `disable()` put the slot back.
    static REAL_PTHREAD_CREATE: AtomicUsize = AtomicUsize::new(0);

    type PthreadCreate = unsafe extern "C" fn(
        *mut libc::pthread_t,
        *const libc::pthread_attr_t,
        usize,
        *mut libc::c_void,
    ) -> libc::c_int;

    /// Stands in for `pthread_create` in the interpreter's GOT: the same call,
    /// with the thread started at the trampoline.
    unsafe extern "C" fn pthread_create_hook(
        thread: *mut libc::pthread_t,
        attr: *const libc::pthread_attr_t,
        start: usize,
        arg: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: stored (Release) before any slot pointed here; it is libc's
        // pthread_create, whose signature PthreadCreate spells out.
        let real: PthreadCreate = unsafe {
            core::mem::transmute::<usize, PthreadCreate>(
                REAL_PTHREAD_CREATE.load(Ordering::Acquire),
            )
        };
        // SAFETY: a plain allocation, checked below.
        let boxed =
            unsafe { libc::malloc(core::mem::size_of::<ThreadStart>()) }.cast::<ThreadStart>();
        if boxed.is_null() {
            // SAFETY: the caller's own arguments, passed through unchanged.
            return unsafe { real(thread, attr, start, arg) };
        }
        // SAFETY: `boxed` is a fresh allocation of the right size and alignment
        // (malloc aligns for any type).
        unsafe {
            boxed.write(ThreadStart {
                start,
                arg: arg as usize,
            })
        };
        let trampoline = lastwords_thread_trampoline as *const () as usize;
        // SAFETY: the caller's thread and attributes; the new thread owns
        // `boxed` and frees it in thread_prepare.
        let rc = unsafe { real(thread, attr, trampoline, boxed.cast()) };
        if rc != 0 {
            // SAFETY: no thread was started, so nobody else has `boxed`.
            unsafe { libc::free(boxed.cast()) };
        }
        rc
    }

    /// One GOT slot that was patched, and what it held before.
    #[derive(Clone, Copy)]
    struct PatchedSlot {
        addr: usize,
        original: usize,
        /// Page range to make writable for a store (empty: the slot is writable).
        relro_page: Option<usize>,
    }

    const MAX_SLOTS: usize = 4;

    /// The slots currently holding the hook (none while not enabled).
    static PATCHED: std::sync::Mutex<Vec<PatchedSlot>> = std::sync::Mutex::new(Vec::new());

    /// An ELF64 RELA relocation.
    #[repr(C)]
    struct Rela {
        offset: u64,
        info: u64,
        addend: i64,
    }

    const R_X86_64_GLOB_DAT: u32 = 6;
    const R_X86_64_JUMP_SLOT: u32 = 7;

    /// The GOT slots (addresses) of `object` that relocations of type GLOB_DAT
    /// or JUMP_SLOT bind to the symbol `name`: those of its PLT's table, or,
    /// where that has none, those of its other table.
    ///
    /// # Safety
    /// `object` must describe a loaded object (its dynamic section and the
    /// tables it points to are mapped and stay mapped).
    unsafe fn got_slots(object: &LoadedObject, name: &[u8]) -> Vec<usize> {
        let mut slots = Vec::new();
        // SAFETY: the caller's loaded object.
        let d = unsafe { loaded::dynamic(object) };
        if d.symtab == 0 || d.strtab == 0 || d.syment < core::mem::size_of::<loaded::Sym>() {
            return slots;
        }
        let relaent = if d.relaent == 0 {
            core::mem::size_of::<Rela>()
        } else {
            d.relaent
        };
        // The PLT's table first: a called function is bound there. The
        // larger table is read only when the PLT's has no slot for the name
        // (an object built with -fno-plt calls through GLOB_DAT slots
        // instead): libpython's holds some 36,000 entries (13,000 after the
        // relative ones at its start, which name no symbol and are skipped),
        // ~25 us of every first enable() to read, for a GLOB_DAT slot that
        // exists only where the object also takes the function's address,
        // which CPython does not do with pthread_create.
        let mut tables = Vec::with_capacity(2);
        if d.pltrel == loaded::PLTREL_RELA {
            tables.push((d.jmprel, d.pltrelsz, 0));
        }
        tables.push((d.rela, d.relasz, d.relacount));
        // The offset of `name` in the string table, once a symbol matched.
        let mut wanted_name: Option<usize> = None;
        for (table, size, skip) in tables {
            if !slots.is_empty() {
                break;
            }
            if table == 0 || relaent < core::mem::size_of::<Rela>() {
                continue;
            }
            // relaent >= size_of::<Rela>() > 0 (checked above).
            let count = size.checked_div(relaent).unwrap_or(0);
            for index in skip.min(count)..count {
                // SAFETY: inside the relocation table the dynamic section names.
                let r = unsafe {
                    (table as *const u8)
                        .add(index.wrapping_mul(relaent))
                        .cast::<Rela>()
                        .read_unaligned()
                };
                let kind = (r.info & 0xffff_ffff) as u32;
                if kind != R_X86_64_GLOB_DAT && kind != R_X86_64_JUMP_SLOT {
                    continue;
                }
                let Ok(sym_index) = usize::try_from(r.info >> 32) else {
                    continue;
                };
                let slot = object
                    .base
                    .wrapping_add(usize::try_from(r.offset).unwrap_or(0));
                // SAFETY: the relocation's symbol index is into the object's own
                // dynamic symbol table.
                let Some(sym) = (unsafe { loaded::symbol(&d, sym_index) }) else {
                    continue;
                };
                let offset = sym.name as usize;
                if let Some(known) = wanted_name {
                    if offset == known {
                        slots.push(slot);
                    }
                    continue;
                }
                // SAFETY: the object's own string table.
                if unsafe { loaded::name_is(&d, offset, name) } {
                    wanted_name = Some(offset);
                    slots.push(slot);
                }
            }
        }
        slots
    }

    /// Compare-and-swap the pointer at `slot`, making its page writable for the
    /// store if it lies in the object's read-only RELRO pages.
    ///
    /// # Safety
    /// `slot` must be an aligned, mapped GOT slot; `relro_page` the page that
    /// holds it when that page is read-only.
    unsafe fn swap_slot(
        slot: usize,
        relro_page: Option<usize>,
        expected: usize,
        new: usize,
    ) -> bool {
        let page = crate::memory::page_size();
        if let Some(start) = relro_page {
            // SAFETY: the object's own RELRO page, made writable for one store.
            if unsafe {
                libc::mprotect(
                    start as *mut libc::c_void,
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                )
            } != 0
            {
                return false;
            }
        }
        // SAFETY: an aligned pointer-sized slot, writable now; other threads
        // read it with plain loads, which see either value whole.
        let cell = unsafe { &*(slot as *const AtomicUsize) };
        let swapped = cell
            .compare_exchange(expected, new, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if let Some(start) = relro_page {
            // SAFETY: back to what ld.so made it.
            unsafe { libc::mprotect(start as *mut libc::c_void, page, libc::PROT_READ) };
        }
        swapped
    }

    /// Route the interpreter's thread starts through `pthread_create_hook`, so
    /// that every thread it starts from now on gets an alternate signal stack.
    /// Idempotent. Does nothing where the slots cannot be found or hold
    /// something other than libc's `pthread_create`.
    pub fn hook_thread_starts() {
        let mut patched = PATCHED.lock().unwrap_or_else(|e| e.into_inner());
        if !patched.is_empty() {
            return;
        }
        // SAFETY: a symbol lookup with a NUL-terminated name.
        let real = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"pthread_create".as_ptr()) } as usize;
        if real == 0 {
            return;
        }
        // The object that defines the interpreter's thread starts (libpython, or
        // the python executable).
        // SAFETY: a symbol lookup with a NUL-terminated name.
        let anchor =
            unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"PyThread_start_new_thread".as_ptr()) }
                as usize;
        if anchor == 0 {
            return;
        }
        let Some(object) = loaded::object_containing(anchor) else {
            return;
        };
        REAL_PTHREAD_CREATE.store(real, Ordering::Release);
        let hook = pthread_create_hook as *const () as usize;
        let page = crate::memory::page_size();
        // SAFETY: `object` is the loaded object that holds the interpreter.
        for addr in unsafe { got_slots(&object, b"pthread_create") }
            .into_iter()
            .take(MAX_SLOTS)
        {
            if !addr.is_multiple_of(core::mem::align_of::<usize>()) || !object.contains(addr) {
                continue;
            }
            // SAFETY: a mapped, aligned GOT slot of the object.
            let current = unsafe { (*(addr as *const AtomicUsize)).load(Ordering::Acquire) };
            // libc's function, or (lazy binding) the object's own PLT entry,
            // not resolved yet.
            if current != real && !object.contains(current) {
                continue;
            }
            let relro_page = (object.relro.0 <= addr && addr < object.relro.1)
                .then_some(addr & !page.wrapping_sub(1));
            // SAFETY: as above; the page is the slot's own.
            if unsafe { swap_slot(addr, relro_page, current, hook) } {
                patched.push(PatchedSlot {
                    addr,
                    original: current,
                    relro_page,
                });
            }
        }
    }

    /// Put back what `hook_thread_starts` replaced (where the slot still holds
    /// the hook). Threads started meanwhile keep their alternate stacks.
    pub fn unhook_thread_starts() {
        let mut patched = PATCHED.lock().unwrap_or_else(|e| e.into_inner());
        let hook = pthread_create_hook as *const () as usize;
        for slot in patched.drain(..) {
            // SAFETY: a slot patched by hook_thread_starts, still mapped (the
            // interpreter is never unloaded).
            unsafe { swap_slot(slot.addr, slot.relro_page, hook, slot.original) };
        }
    }
}
