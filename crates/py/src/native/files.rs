//! This process's object files, opened from the signal handler: the path
//! the loader recorded (`l_name`), `/proc/self/exe` for the main program,
//! and detached debug files by build ID. `open`, `close` and what
//! [`Image::load`] does are system calls without locks; paths are built in
//! stack buffers.

use crate::memory::Memory;
use lastwords_core::unwind::image::Image;
use lastwords_core::unwind::objects::Found;
use lastwords_core::unwind::symbolise::Files;

/// Where detached debug information lives, by build ID (Debian's
/// `-dbg`/`-dbgsym` packages, Fedora's `-debuginfo`).
const DEBUG_ROOT: &[u8] = b"/usr/lib/debug/.build-id/";

/// The longest path opened.
const PATH_MAX: usize = 4096;

/// The files of this process, names read through `mem`.
pub struct LocalFiles<'m, M: Memory> {
    mem: &'m M,
}

impl<'m, M: Memory> LocalFiles<'m, M> {
    /// Async-signal-safe.
    pub fn new(mem: &'m M) -> Self {
        LocalFiles { mem }
    }
}

/// Open `path` (NUL-terminated) read-only and image it. Async-signal-safe.
pub(crate) fn image_of(path: &[u8]) -> Option<Image> {
    if path.last() != Some(&0) {
        return None;
    }
    // O_NONBLOCK: a path that is now a FIFO must not block the report in
    // open() (Image::load then refuses anything but a regular file).
    let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
    // SAFETY: `path` is NUL-terminated (checked above) and lives for the call.
    let fd = unsafe { libc::open(path.as_ptr().cast(), flags) };
    if fd < 0 {
        return None;
    }
    let image = Image::load(fd).ok();
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    image
}

impl<M: Memory> Files for LocalFiles<'_, M> {
    fn object(&self, found: &Found) -> Option<Image> {
        if found.is_main {
            return image_of(b"/proc/self/exe\0");
        }
        // The loader's path, up to its NUL, never crossing into a page that
        // may be unmapped.
        let mut path = [0u8; PATH_MAX];
        let mut len = 0usize;
        let mut at = found.name;
        while len < PATH_MAX {
            let to_page = 4096usize
                .wrapping_sub(at & 4095)
                .min(PATH_MAX.saturating_sub(len));
            let dst = path.get_mut(len..len.saturating_add(to_page))?;
            self.mem.read_bytes(at, dst).ok()?;
            if let Some(end) = dst.iter().position(|&b| b == 0) {
                len = len.saturating_add(end);
                break;
            }
            len = len.saturating_add(to_page);
            at = at.checked_add(to_page)?;
        }
        // Only absolute paths: "linux-vdso.so.1" and other names without a
        // file are not looked up in the current directory.
        if len >= PATH_MAX || path.first() != Some(&b'/') {
            return None;
        }
        image_of(path.get(..len.checked_add(1)?)?)
    }

    fn debug(&self, build_id: &[u8]) -> Option<Image> {
        // /usr/lib/debug/.build-id/xx/yyyy....debug
        let (first, rest) = build_id.split_first()?;
        if rest.is_empty() || build_id.len() > 64 {
            return None;
        }
        let mut path = [0u8; 256];
        let mut len = 0usize;
        let mut push = |bytes: &[u8]| -> Option<()> {
            let end = len.checked_add(bytes.len())?;
            path.get_mut(len..end)?.copy_from_slice(bytes);
            len = end;
            Some(())
        };
        let hex = |b: u8| {
            let digit = |d: u8| if d < 10 { b'0' + d } else { b'a' + (d - 10) };
            [digit(b >> 4), digit(b & 0xf)]
        };
        push(DEBUG_ROOT)?;
        push(&hex(*first))?;
        push(b"/")?;
        for &b in rest {
            push(&hex(b))?;
        }
        push(b".debug\0")?;
        image_of(path.get(..len)?)
    }
}
