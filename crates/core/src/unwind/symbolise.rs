//! The frames of a stack, named: for each object that holds frames, its
//! file's `.dynsym` and `.symtab` (or a detached debug file's `.symtab`,
//! matched by build ID) when the file can be read and is the one that was
//! loaded; else `dladdr`'s lookup on `.dynsym` in memory. One object's
//! frames are named together, in one scan of each of its tables.

use super::dynsym::dynsym_lookup;
use super::image::Image;
use super::objects::{self, Found, Objects, Phdr, for_each_phdr};
use super::symbols::{ElfImage, Pass, Query, Table};
use crate::memory::Memory;

/// The most frames named at once (the stdlib prints 32).
pub const MAX_FRAMES: usize = 64;
/// Program headers compared between a file and its loaded object.
const MAX_LOADS: usize = 16;

/// How files are opened, for the process being read.
pub trait Files {
    /// The file of a loaded object, imaged. Async-signal-safe.
    fn object(&self, found: &Found) -> Option<Image>;
    /// The detached debug file with this build ID, imaged.
    /// Async-signal-safe.
    fn debug(&self, build_id: &[u8]) -> Option<Image>;
}

/// Files of no process: every object is named from memory.
pub struct NoFiles;

impl Files for NoFiles {
    fn object(&self, _found: &Found) -> Option<Image> {
        None
    }
    fn debug(&self, _build_id: &[u8]) -> Option<Image> {
        None
    }
}

/// Where a name's bytes are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NameRef {
    #[default]
    None,
    /// In image `image` of the [`Symbolised`], at `[off, off + len)`.
    Image {
        image: usize,
        off: usize,
        len: usize,
    },
    /// A NUL-terminated string in the target's memory.
    Remote(usize),
}

/// A name, ready to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name<'a> {
    Bytes(&'a [u8]),
    /// A NUL-terminated string in the target's memory.
    Remote(usize),
}

/// One frame, named.
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame {
    pub addr: usize,
    /// The address looked up (a return address one byte back).
    pub lookup: usize,
    pub object: Option<Found>,
    /// The runtime address of the symbol containing `lookup`, and its name.
    pub symbol: Option<(usize, NameRef)>,
}

/// The frames of a stack, named, with the images their names point into.
pub struct Symbolised {
    frames: [Frame; MAX_FRAMES],
    len: usize,
    images: [Option<Image>; MAX_FRAMES],
}

impl Symbolised {
    /// Name `addrs` (the first exact, the others return addresses).
    /// Async-signal-safe.
    pub fn new<M: Memory, F: Files>(objects: &Objects<'_, M>, files: &F, addrs: &[usize]) -> Self {
        let mut s = Symbolised {
            frames: [Frame::default(); MAX_FRAMES],
            len: 0,
            images: [const { None }; MAX_FRAMES],
        };
        for (i, (slot, &addr)) in s.frames.iter_mut().zip(addrs).enumerate() {
            let lookup = if i == 0 { addr } else { addr.wrapping_sub(1) };
            *slot = Frame {
                addr,
                lookup,
                object: objects.find(lookup),
                symbol: None,
            };
            s.len = s.len.saturating_add(1);
        }
        let mut next_image = 0usize;
        for i in 0..s.len {
            let Some(found) = s.frames.get(i).and_then(|f| f.object) else {
                continue;
            };
            // The first frame of each object names all of that object's.
            let seen = s
                .frames
                .get(..i)
                .is_some_and(|before| before.iter().any(|f| f.object == Some(found)));
            if seen {
                continue;
            }
            let used = s.name_from_files(objects.mem(), files, &found, &mut next_image);
            if !used {
                s.name_from_memory(objects.mem(), &found);
            }
        }
        s
    }

    /// The named frames. Async-signal-safe.
    pub fn frames(&self) -> &[Frame] {
        self.frames.get(..self.len).unwrap_or(&[])
    }

    /// The bytes of a name. Async-signal-safe.
    pub fn name(&self, r: NameRef) -> Option<Name<'_>> {
        match r {
            NameRef::None => None,
            NameRef::Remote(at) => Some(Name::Remote(at)),
            NameRef::Image { image, off, len } => {
                let image = self.images.get(image)?.as_ref()?;
                Some(Name::Bytes(image.bytes().get(off..off.checked_add(len)?)?))
            }
        }
    }

    /// Name the frames of `found` from `.dynsym` in memory.
    /// Async-signal-safe.
    fn name_from_memory<M: Memory>(&mut self, mem: &M, found: &Found) {
        for frame in self.frames.iter_mut().take(self.len) {
            if frame.object != Some(*found) || found.dynamic == 0 {
                continue;
            }
            frame.symbol = dynsym_lookup(mem, found.dynamic, found.bias, frame.lookup)
                .map(|(start, name)| (start, NameRef::Remote(name)));
        }
    }

    /// Name the frames of `found` from its file (and debug file). Returns
    /// false when the file cannot be used. Async-signal-safe.
    fn name_from_files<M: Memory, F: Files>(
        &mut self,
        mem: &M,
        files: &F,
        found: &Found,
        next_image: &mut usize,
    ) -> bool {
        let Some(image) = files.object(found) else {
            return false;
        };
        // What the loaded object looks like: its PT_LOADs and build ID.
        let mut loads = [Phdr::default(); MAX_LOADS];
        let mut nloads = 0usize;
        let mut exec = [(0u64, 0u64); MAX_LOADS];
        let mut nexec = 0usize;
        for_each_phdr(mem, found.phdr, found.phnum, |p| {
            if p.is_load() {
                if let Some(slot) = loads.get_mut(nloads) {
                    *slot = *p;
                    nloads = nloads.saturating_add(1);
                }
                if p.is_exec()
                    && let Some(slot) = exec.get_mut(nexec)
                {
                    *slot = (p.vaddr, p.vaddr.saturating_add(p.memsz));
                    nexec = nexec.saturating_add(1);
                }
            }
            true
        });
        let mut id_buf = [0u8; 64];
        let id_len = objects::build_id(mem, found, &mut id_buf);
        let loaded_id = id_len.and_then(|n| id_buf.get(..n));
        let exec = exec.get(..nexec).unwrap_or(&[]);
        let loads = loads.get(..nloads).unwrap_or(&[]);

        // The images live in self.images, so that names can point into them.
        let Some(file_slot) = self.claim(next_image) else {
            return false;
        };
        let file_ok =
            ElfImage::parse(image.bytes()).is_some_and(|elf| same_object(&elf, loads, loaded_id));
        if !file_ok {
            return false;
        }
        if let Some(slot) = self.images.get_mut(file_slot) {
            *slot = Some(image);
        }
        // A stripped file: its .symtab may be in a debug file.
        let needs_debug = self
            .image(file_slot)
            .and_then(ElfImage::parse)
            .is_some_and(|elf| !elf.has_symtab());
        let mut debug_slot = None;
        if needs_debug
            && let Some(id) = loaded_id
            && let Some(debug) = files.debug(id)
            && ElfImage::parse(debug.bytes()).is_some_and(|d| d.build_id() == Some(id))
            && let Some(slot) = self.claim(next_image)
        {
            if let Some(place) = self.images.get_mut(slot) {
                *place = Some(debug);
            }
            debug_slot = Some(slot);
        }

        let mut queries = [Query::new(0, 0); MAX_FRAMES];
        let mut n = 0usize;
        let bias = found.bias as u64;
        for (i, frame) in self.frames.iter().enumerate().take(self.len) {
            if frame.object == Some(*found)
                && let Some(q) = queries.get_mut(n)
            {
                *q = Query::new((frame.lookup as u64).wrapping_sub(bias), i);
                n = n.saturating_add(1);
            }
        }
        let Some(queries) = queries.get_mut(..n) else {
            return false;
        };
        let file = self.image(file_slot).and_then(ElfImage::parse);
        let debug = debug_slot
            .and_then(|s| self.image(s))
            .and_then(ElfImage::parse);
        let tables = [
            (file.as_ref(), Table::Dynsym),
            (file.as_ref(), Table::Symtab),
            (debug.as_ref(), Table::Symtab),
        ];
        for pass in [Pass::Start, Pass::Name] {
            for (elf, table) in tables {
                if let Some(elf) = elf {
                    elf.lookup(table, exec, queries, pass);
                }
            }
        }
        // Where each name lies in its image.
        let bases = [file_slot, debug_slot.unwrap_or(usize::MAX)];
        let mut results = [(usize::MAX, None); MAX_FRAMES];
        for (slot, q) in results.iter_mut().zip(queries.iter()) {
            let named = q.start.zip(q.name).and_then(|(start, (name, _))| {
                let at = name.as_ptr() as usize;
                bases.iter().find_map(|&b| {
                    let bytes = self.image(b)?;
                    let off = at.checked_sub(bytes.as_ptr() as usize)?;
                    (off < bytes.len()).then_some((
                        usize::try_from(start).ok()?.wrapping_add(found.bias),
                        NameRef::Image {
                            image: b,
                            off,
                            len: name.len(),
                        },
                    ))
                })
            });
            *slot = (q.frame, named);
        }
        for (frame, named) in results {
            if let Some(f) = self.frames.get_mut(frame) {
                f.symbol = named;
            }
        }
        true
    }

    /// The next free image slot. Async-signal-safe.
    fn claim(&self, next: &mut usize) -> Option<usize> {
        let slot = *next;
        (slot < MAX_FRAMES).then(|| {
            *next = slot.saturating_add(1);
            slot
        })
    }

    /// The bytes of image `slot`. Async-signal-safe.
    fn image(&self, slot: usize) -> Option<&[u8]> {
        self.images.get(slot)?.as_ref().map(Image::bytes)
    }
}

/// Whether an ELF image is the file a loaded object came from: the same
/// `PT_LOAD` headers, and the same build ID where the object has one.
/// Async-signal-safe.
pub fn same_object(elf: &ElfImage<'_>, loads: &[Phdr], loaded_id: Option<&[u8]>) -> bool {
    let mut i = 0usize;
    let mut same = true;
    elf.for_each_load(|(offset, vaddr, filesz, memsz)| {
        same = loads.get(i).is_some_and(|p| {
            (p.offset, p.vaddr, p.filesz, p.memsz) == (offset, vaddr, filesz, memsz)
        });
        i = i.saturating_add(1);
        same
    });
    if !same || i != loads.len() || loads.is_empty() {
        return false;
    }
    match loaded_id {
        Some(id) => elf.build_id() == Some(id),
        None => true,
    }
}
