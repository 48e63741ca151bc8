//! An image of an ELF file made for symbolisation: an anonymous, private
//! mapping of the file's size in which only the parts needed are filled in
//! with `pread(2)`: the file header, program and section headers, symbol
//! tables with their string tables, and notes. The rest stays zero pages
//! that cost nothing.
//!
//! Why not mmap the file: a file mapping faults (SIGBUS) when the file
//! shrinks under it, and a report must not fault; why not the heap: a
//! signal handler cannot allocate. `mmap(MAP_ANONYMOUS)`, `pread`, `fstat`
//! and `munmap` are plain system calls (no lock in the C library), so
//! [`Image::load`] is async-signal-safe, and the `object` crate then parses
//! the image as it would the whole file, without allocating.

#![allow(unsafe_code)]

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, SectionHeader};

type Header = elf::FileHeader64<LE>;

/// Why an image could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// `fstat` failed, or the file is not a regular file.
    Stat,
    /// The file is larger than [`MAX_FILE`].
    TooLarge,
    /// The anonymous mapping could not be made.
    Map,
    /// Not a little-endian ELF64 file, or its headers are out of bounds.
    NotElf,
}

/// The largest file imaged (address space only: untouched pages are free).
pub const MAX_FILE: u64 = 1 << 32;
/// The most bytes read into one image: symbol tables past this budget are
/// left out (the object is then named from `.dynsym` in memory).
pub const MAX_READ: u64 = 256 << 20;

/// A sparse image of an ELF file. Unmapped when dropped.
pub struct Image {
    ptr: *mut u8,
    len: usize,
    /// Whether some section was left out (over [`MAX_READ`] or unreadable).
    pub incomplete: bool,
}

impl Image {
    /// Image the ELF file open on `fd` (which stays the caller's).
    /// Async-signal-safe.
    pub fn load(fd: i32) -> Result<Image, ImageError> {
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: fstat writes into `st`, a live local.
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(ImageError::Stat);
        }
        let size = u64::try_from(st.st_size).map_err(|_| ImageError::Stat)?;
        if size > MAX_FILE {
            return Err(ImageError::TooLarge);
        }
        if size < 64 {
            return Err(ImageError::NotElf);
        }
        let len = usize::try_from(size).map_err(|_| ImageError::TooLarge)?;
        // SAFETY: a fresh anonymous private mapping; no existing memory is
        // touched. The result is checked against MAP_FAILED.
        let ptr = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ImageError::Map);
        }
        let mut image = Image {
            ptr: ptr.cast(),
            len,
            incomplete: false,
        };
        image.fill(fd)?;
        Ok(image)
    }

    /// The image's bytes. Async-signal-safe.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes until drop.
        unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Async-signal-safe.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in bytes(), and writable; `&mut self` makes it unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// Read `[offset, offset + len)` of the file into the same place of the
    /// image; false if out of the file's bounds. A short read leaves zeros.
    /// Async-signal-safe.
    fn read(&mut self, fd: i32, offset: u64, len: u64) -> bool {
        let (Ok(start), Ok(n)) = (usize::try_from(offset), usize::try_from(len)) else {
            return false;
        };
        let Some(dst) = start
            .checked_add(n)
            .and_then(|end| self.bytes_mut().get_mut(start..end))
        else {
            return false;
        };
        let mut done = 0usize;
        while let Some(rest) = dst.get_mut(done..) {
            if rest.is_empty() {
                break;
            }
            let Some(at) = start.checked_add(done).and_then(|a| i64::try_from(a).ok()) else {
                break;
            };
            // SAFETY: `rest` is writable memory of the image, `rest.len()`
            // bytes long.
            let got = unsafe { libc::pread(fd, rest.as_mut_ptr().cast(), rest.len(), at) };
            match usize::try_from(got) {
                Ok(0) => break,
                Ok(got) => done = done.saturating_add(got),
                Err(_) if crate::writer::errno_get() == libc::EINTR => {}
                Err(_) => break,
            }
        }
        true
    }

    /// Fill in the headers and the sections symbolisation reads.
    /// Async-signal-safe.
    fn fill(&mut self, fd: i32) -> Result<(), ImageError> {
        self.read(fd, 0, 64);
        let header = Header::parse(self.bytes()).map_err(|_| ImageError::NotElf)?;
        let endian = header.endian().map_err(|_| ImageError::NotElf)?;
        let (phoff, phnum) = (header.e_phoff(endian), u64::from(header.e_phnum(endian)));
        let shoff = header.e_shoff(endian);
        if shoff == 0 {
            return Err(ImageError::NotElf);
        }
        // Section 0 first: it holds the real counts when they overflow.
        if !self.read(fd, shoff, 64) {
            return Err(ImageError::NotElf);
        }
        let header = Header::parse(self.bytes()).map_err(|_| ImageError::NotElf)?;
        let shnum = u64::from(
            header
                .shnum(endian, self.bytes())
                .map_err(|_| ImageError::NotElf)?,
        );
        let phnum = if phnum == u64::from(elf::PN_XNUM) {
            u64::from(
                header
                    .phnum(endian, self.bytes())
                    .map_err(|_| ImageError::NotElf)?,
            )
        } else {
            phnum
        };
        if !self.read(fd, phoff, phnum.saturating_mul(56))
            || !self.read(fd, shoff, shnum.saturating_mul(64))
        {
            return Err(ImageError::NotElf);
        }
        let header = Header::parse(self.bytes()).map_err(|_| ImageError::NotElf)?;
        let count = header
            .section_headers(endian, self.bytes())
            .map_err(|_| ImageError::NotElf)?
            .len();
        let mut budget = MAX_READ;
        for index in 0..count {
            let Some((kind, range, link)) = self.section(index) else {
                continue;
            };
            let wanted = [elf::SHT_SYMTAB, elf::SHT_DYNSYM, elf::SHT_NOTE].contains(&kind);
            if !wanted {
                continue;
            }
            let mut ranges = [Some(range), None];
            if kind != elf::SHT_NOTE {
                // The string table of a symbol table.
                ranges[1] = usize::try_from(link)
                    .ok()
                    .and_then(|l| self.section(l))
                    .map(|s| s.1);
            }
            let total = ranges
                .iter()
                .flatten()
                .fold(0u64, |t, r| t.saturating_add(r.1));
            if total > budget {
                self.incomplete = true;
                continue;
            }
            budget = budget.saturating_sub(total);
            for (offset, len) in ranges.into_iter().flatten() {
                if !self.read(fd, offset, len) {
                    self.incomplete = true;
                }
            }
        }
        Ok(())
    }

    /// Type, file range and link of section `index`, from the image.
    /// Async-signal-safe.
    fn section(&self, index: usize) -> Option<(elf::SectionType, (u64, u64), u32)> {
        let header = Header::parse(self.bytes()).ok()?;
        let endian = header.endian().ok()?;
        let sections = header.section_headers(endian, self.bytes()).ok()?;
        let s = sections.get(index)?;
        Some((s.sh_type(endian), s.file_range(endian)?, s.sh_link(endian)))
    }
}

impl Drop for Image {
    /// Async-signal-safe (one `munmap`).
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` is the mapping made in load(); nothing borrows
        // it past the image (bytes() borrows self).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
