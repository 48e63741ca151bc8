//! The objects this process has loaded, as `dl_iterate_phdr` lists them:
//! which one holds an address, what its dynamic section says, and a symbol's
//! table entry found by name through its GNU hash table (`dladdr1` scans
//! every symbol of the object for the same answer: 40 us of each first
//! `enable()` on a python whose executable exports the whole C API).
//!
//! Read at `enable()` time, with the GIL held, never in a signal handler. The
//! objects are the loader's own, mapped while loaded; the interpreter and
//! libc, the only ones asked about, are never unloaded.

#![allow(unsafe_code)]

const DT_NULL: i64 = 0;
const DT_PLTRELSZ: i64 = 2;
const DT_STRTAB: i64 = 5;
const DT_SYMTAB: i64 = 6;
const DT_RELA: i64 = 7;
const DT_RELASZ: i64 = 8;
const DT_RELAENT: i64 = 9;
const DT_STRSZ: i64 = 10;
const DT_SYMENT: i64 = 11;
const DT_PLTREL: i64 = 20;
const DT_JMPREL: i64 = 23;
/// The number of R_X86_64_RELATIVE entries at the start of DT_RELA
/// (`-z combreloc`, the linkers' default): none of them names a symbol.
const DT_RELACOUNT: i64 = 0x6fff_fff9;
const DT_GNU_HASH: i64 = 0x6fff_fef5;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_GNU_RELRO: u32 = 0x6474_e552;
const MAX_LOADS: usize = 8;
/// Dynamic section entries looked at, at most.
const MAX_DYNAMIC: usize = 4096;
/// Symbols of one hash chain compared, at most.
const MAX_CHAIN: usize = 1 << 20;

/// What `dl_iterate_phdr` says about the object that contains an address.
#[derive(Default)]
pub struct LoadedObject {
    anchor: usize,
    found: bool,
    pub base: usize,
    pub dynamic: usize,
    /// The read-only part of the RELRO segment, as ld.so protects it (whole
    /// pages from its start, its end rounded down).
    pub relro: (usize, usize),
    loads: [(usize, usize); MAX_LOADS],
}

impl LoadedObject {
    /// Whether one of the object's loaded segments holds `addr`.
    pub fn contains(&self, addr: usize) -> bool {
        self.loads
            .iter()
            .any(|&(start, end)| start <= addr && addr < end)
    }
}

/// The loaded object whose segments hold `addr`.
pub fn object_containing(addr: usize) -> Option<LoadedObject> {
    let mut object = LoadedObject {
        anchor: addr,
        ..LoadedObject::default()
    };
    // SAFETY: find_object only writes into `object`, which outlives the call.
    unsafe { libc::dl_iterate_phdr(Some(find_object), (&raw mut object).cast()) };
    object.found.then_some(object)
}

/// `dl_iterate_phdr` callback: record the object whose segments hold
/// `anchor`; stop there.
unsafe extern "C" fn find_object(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the LoadedObject passed to dl_iterate_phdr, used by
    // this call only; `info` and its program headers are valid for the
    // callback.
    let (object, info) = unsafe { (&mut *data.cast::<LoadedObject>(), &*info) };
    let base = usize::try_from(info.dlpi_addr).unwrap_or(0);
    if info.dlpi_phdr.is_null() {
        return 0;
    }
    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
    let headers =
        unsafe { core::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
    let mut loads = [(0, 0); MAX_LOADS];
    let mut count = 0;
    let (mut dynamic, mut relro) = (0, (0, 0));
    let page = crate::memory::page_size();
    for h in headers {
        let start = base.wrapping_add(usize::try_from(h.p_vaddr).unwrap_or(0));
        let end = start.wrapping_add(usize::try_from(h.p_memsz).unwrap_or(0));
        let page_mask = !page.wrapping_sub(1);
        match h.p_type {
            PT_LOAD => {
                if let Some(slot) = loads.get_mut(count) {
                    *slot = (start, end);
                    count = count.saturating_add(1);
                }
            }
            PT_DYNAMIC => dynamic = start,
            PT_GNU_RELRO => relro = (start & page_mask, end & page_mask),
            _ => {}
        }
    }
    if !loads
        .get(..count)
        .unwrap_or(&[])
        .iter()
        .any(|&(start, end)| start <= object.anchor && object.anchor < end)
    {
        return 0;
    }
    object.found = true;
    object.base = base;
    object.dynamic = dynamic;
    object.relro = relro;
    object.loads = loads;
    1
}

/// An ELF64 dynamic section entry.
#[repr(C)]
#[derive(Clone, Copy)]
struct Dyn {
    tag: i64,
    val: u64,
}

/// An ELF64 symbol.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Sym {
    pub name: u32,
    pub info: u8,
    pub other: u8,
    pub shndx: u16,
    pub value: u64,
    pub size: u64,
}

/// The tables an object's dynamic section points to (absolute addresses; 0
/// where absent).
#[derive(Default)]
pub struct Dynamic {
    pub symtab: usize,
    pub strtab: usize,
    pub strsz: usize,
    pub syment: usize,
    pub rela: usize,
    pub relasz: usize,
    pub relaent: usize,
    pub jmprel: usize,
    pub pltrelsz: usize,
    pub pltrel: i64,
    pub relacount: usize,
    pub gnu_hash: usize,
}

/// `Dynamic::pltrel` when the PLT's relocations are RELA ones.
pub const PLTREL_RELA: i64 = DT_RELA;

/// Read `object`'s dynamic section.
///
/// # Safety
/// `object` must describe a loaded object (its dynamic section is mapped
/// and ends with DT_NULL).
pub unsafe fn dynamic(object: &LoadedObject) -> Dynamic {
    let mut d = Dynamic::default();
    if object.dynamic == 0 {
        return d;
    }
    // glibc rewrites the table addresses of the dynamic section to absolute
    // ones; other loaders leave them relative to the load base.
    let absolute = |v: u64| {
        let v = usize::try_from(v).unwrap_or(0);
        if v < object.base {
            object.base.wrapping_add(v)
        } else {
            v
        }
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(0);
    let mut entry = object.dynamic as *const Dyn;
    for _ in 0..MAX_DYNAMIC {
        // SAFETY: the dynamic section is mapped and ends with DT_NULL, which
        // stops the loop before the pointer leaves it.
        let e = unsafe { entry.read() };
        match e.tag {
            DT_NULL => break,
            DT_SYMTAB => d.symtab = absolute(e.val),
            DT_STRTAB => d.strtab = absolute(e.val),
            DT_STRSZ => d.strsz = size(e.val),
            DT_SYMENT => d.syment = size(e.val),
            DT_RELA => d.rela = absolute(e.val),
            DT_RELASZ => d.relasz = size(e.val),
            DT_RELAENT => d.relaent = size(e.val),
            DT_JMPREL => d.jmprel = absolute(e.val),
            DT_PLTRELSZ => d.pltrelsz = size(e.val),
            DT_PLTREL => d.pltrel = e.val as i64,
            DT_RELACOUNT => d.relacount = size(e.val),
            DT_GNU_HASH => d.gnu_hash = absolute(e.val),
            _ => {}
        }
        // SAFETY: still inside the dynamic section (not at DT_NULL yet).
        entry = unsafe { entry.add(1) };
    }
    d
}

/// The symbol at index `index` of the dynamic symbol table.
///
/// # Safety
/// `d` must be the dynamic section of a loaded object and `index` an index
/// into its symbol table.
pub unsafe fn symbol(d: &Dynamic, index: usize) -> Option<Sym> {
    let at = index.checked_mul(d.syment)?;
    // SAFETY: inside the object's symbol table (the caller's index).
    Some(unsafe {
        (d.symtab as *const u8)
            .add(at)
            .cast::<Sym>()
            .read_unaligned()
    })
}

/// Whether the string at `offset` of the string table is `name`.
///
/// # Safety
/// `d` must be the dynamic section of a loaded object.
pub unsafe fn name_is(d: &Dynamic, offset: usize, name: &[u8]) -> bool {
    let wanted = name.len().saturating_add(1);
    if offset
        .checked_add(wanted)
        .is_none_or(|end| d.strsz != 0 && end > d.strsz)
    {
        return false;
    }
    // SAFETY: a string of the string table, which is at least offset +
    // name.len() + 1 bytes long (checked above).
    let found = unsafe { core::slice::from_raw_parts((d.strtab as *const u8).add(offset), wanted) };
    found.strip_suffix(&[0]) == Some(name)
}

/// The symbol `name` that `object` defines, through its GNU hash table
/// (None without one).
///
/// # Safety
/// `object` must describe a loaded object.
pub unsafe fn defined_symbol(object: &LoadedObject, name: &[u8]) -> Option<Sym> {
    // SAFETY: the caller's object.
    let d = unsafe { dynamic(object) };
    if d.gnu_hash == 0 || d.symtab == 0 || d.strtab == 0 || d.syment < size_of::<Sym>() {
        return None;
    }
    let hash = name.iter().fold(5381u32, |h, &c| {
        h.wrapping_mul(33).wrapping_add(u32::from(c))
    });
    let table = d.gnu_hash as *const u32;
    // SAFETY: the GNU hash table starts with four words: nbuckets,
    // symoffset, bloom_size, bloom_shift.
    let [nbuckets, symoffset, bloom_size, _] = unsafe { table.cast::<[u32; 4]>().read() };
    if nbuckets == 0 {
        return None;
    }
    // The buckets follow the bloom filter (bloom_size 64-bit words).
    let buckets_at = 16usize.checked_add(usize::try_from(bloom_size).ok()?.checked_mul(8)?)?;
    let buckets = d.gnu_hash.checked_add(buckets_at)? as *const u32;
    let chains = (buckets as usize).checked_add(usize::try_from(nbuckets).ok()?.checked_mul(4)?)?
        as *const u32;
    // SAFETY: the bucket index is below nbuckets.
    let mut index = unsafe { buckets.add((hash % nbuckets) as usize).read() } as usize;
    let symoffset = symoffset as usize;
    if index < symoffset {
        return None;
    }
    for _ in 0..MAX_CHAIN {
        // SAFETY: a chain entry of a symbol at or above symoffset; the
        // chain of a bucket ends with an entry whose low bit is set.
        let chain = unsafe { chains.add(index.checked_sub(symoffset)?).read() };
        if chain | 1 == hash | 1 {
            // SAFETY: the chain's index is a symbol of the table.
            let sym = unsafe { symbol(&d, index) }?;
            // SAFETY: the object's own string table.
            if unsafe { name_is(&d, sym.name as usize, name) } {
                return Some(sym);
            }
        }
        if chain & 1 != 0 {
            return None;
        }
        index = index.checked_add(1)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libc's own functions, found by name as dlsym finds them, with the
    /// size of their symbol.
    #[test]
    fn defined_symbols_are_found_by_name_with_their_size() {
        for name in [c"write", c"dl_iterate_phdr", c"sysconf"] {
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name.
            let addr = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
            assert_ne!(addr, 0, "{name:?}");
            let object = object_containing(addr).expect("libc is loaded");
            // SAFETY: a loaded object.
            let sym = unsafe { defined_symbol(&object, name.to_bytes()) }.expect("found");
            assert_eq!(
                object.base.wrapping_add(sym.value as usize),
                addr,
                "{name:?}"
            );
            assert!(sym.size > 0, "{name:?}");
            // The size dladdr1 gives (which scans the whole table).
            // SAFETY: zeroed Dl_info is a valid out-parameter.
            let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
            let mut entry: *mut libc::c_void = core::ptr::null_mut();
            // SAFETY: a symbol's address and valid out-pointers; with
            // RTLD_DL_SYMENT (1) `entry` receives its symbol table entry.
            let found = unsafe { libc::dladdr1(addr as *const _, &mut info, &mut entry, 1) };
            assert!(found != 0 && !entry.is_null(), "{name:?}");
            // SAFETY: dladdr1 pointed it at the object's symbol table.
            assert_eq!(unsafe { (*entry.cast::<Sym>()).size }, sym.size, "{name:?}");
            // SAFETY: as above.
            assert!(unsafe { defined_symbol(&object, b"lastwords_no_such_symbol") }.is_none());
        }
    }
}
