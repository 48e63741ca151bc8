//! Naming addresses from an ELF file's symbol tables, parsed with the
//! `object` crate over an [`Image`](super::image::Image) (or any byte slice
//! of a whole file). Allocation-free: the tables are scanned in place, once
//! per object for all of its frames, instead of being loaded and sorted.
//!
//! The choice follows `dladdr`'s, extended to `.symtab`: the symbol with the
//! highest start among those containing the address (a zero-size symbol
//! contains only its own address); at equal starts, `.dynsym` first (what
//! `dladdr` prints), then global, weak and local `.symtab` entries, then
//! table order. Only functions (and untyped symbols) defined in executable
//! segments count.

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader, SectionTable, Sym, SymbolTable};

type Header = elf::FileHeader64<LE>;

/// Symbols scanned per table, at most.
const MAX_SYMBOLS: usize = 1 << 24;
/// Notes looked at per section, at most.
const MAX_NOTES: usize = 64;

/// A parsed ELF image.
pub struct ElfImage<'d> {
    data: &'d [u8],
    header: &'d Header,
    sections: SectionTable<'d, Header, &'d [u8]>,
}

/// Which symbol table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Dynsym,
    Symtab,
}

/// One address to name, and what was found for it.
#[derive(Clone, Copy, Debug)]
pub struct Query<'d> {
    /// The address as a file address (runtime address minus load bias).
    pub vaddr: u64,
    /// Which frame asked (the caller's index).
    pub frame: usize,
    /// The start of the chosen symbol.
    pub start: Option<u64>,
    /// Its name, and the rank it was chosen by.
    pub name: Option<(&'d [u8], (u8, u64))>,
}

impl<'d> Query<'d> {
    /// Async-signal-safe.
    pub const fn new(vaddr: u64, frame: usize) -> Self {
        Query {
            vaddr,
            frame,
            start: None,
            name: None,
        }
    }
}

/// Which pass of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// Find the highest start containing each address.
    Start,
    /// Find the preferred name at that start.
    Name,
    /// Both at once: the highest start, and at that start the preferred
    /// name, in one scan of each table (the same choice as the two passes;
    /// a name is kept until a higher start displaces it).
    Both,
}

impl<'d> ElfImage<'d> {
    /// Parse the headers. Async-signal-safe.
    pub fn parse(data: &'d [u8]) -> Option<Self> {
        let header = Header::parse(data).ok()?;
        let endian = header.endian().ok()?;
        if endian != LE {
            return None;
        }
        let sections = header.sections(LE, data).ok()?;
        Some(ElfImage {
            data,
            header,
            sections,
        })
    }

    /// The `PT_LOAD` headers: `(offset, vaddr, filesz, memsz)` in order,
    /// passed to `f` until it returns false. Async-signal-safe.
    pub fn for_each_load(&self, mut f: impl FnMut((u64, u64, u64, u64)) -> bool) {
        let Ok(phdrs) = self.header.program_headers(LE, self.data) else {
            return;
        };
        for p in phdrs.iter().filter(|p| p.p_type(LE) == elf::PT_LOAD) {
            if !f((p.p_offset(LE), p.p_vaddr(LE), p.p_filesz(LE), p.p_memsz(LE))) {
                return;
            }
        }
    }

    /// The GNU build ID, from the `SHT_NOTE` sections. Async-signal-safe.
    pub fn build_id(&self) -> Option<&'d [u8]> {
        for s in self.sections.iter() {
            let Ok(Some(mut notes)) = s.notes(LE, self.data) else {
                continue;
            };
            for _ in 0..MAX_NOTES {
                let Ok(Some(note)) = notes.next() else {
                    break;
                };
                if note.name() == b"GNU" && note.n_type(LE) == elf::NT_GNU_BUILD_ID {
                    return Some(note.desc());
                }
            }
        }
        None
    }

    /// Whether the file has a `.symtab` (else its static functions are in
    /// a detached debug file, if anywhere). Async-signal-safe.
    pub fn has_symtab(&self) -> bool {
        self.sections
            .iter()
            .any(|s| s.sh_type(LE) == elf::SHT_SYMTAB && s.sh_size(LE) > 0)
    }

    /// One pass of a lookup over one table. `queries` are sorted by vaddr
    /// here; `exec` are the executable segments' `[start, end)` file
    /// addresses. Returns false when the table is missing or unreadable.
    /// Async-signal-safe.
    pub fn lookup(
        &self,
        table: Table,
        exec: &[(u64, u64)],
        queries: &mut [Query<'d>],
        pass: Pass,
    ) -> bool {
        sort(queries);
        let Some(symbols) = self.symbol_table(table) else {
            return false;
        };
        if symbols.is_empty() {
            return false;
        }
        let strings = symbols.strings();
        for (index, sym) in (0u64..).zip(symbols.symbols().iter().take(MAX_SYMBOLS)) {
            let Some((start, size)) = candidate(sym, exec) else {
                continue;
            };
            // The queries this symbol contains: from the first at or above
            // its start.
            let from = queries.partition_point(|q| q.vaddr < start);
            let mut named: Option<&'d [u8]> = None;
            for q in queries.iter_mut().skip(from) {
                let inside = if size == 0 {
                    q.vaddr == start
                } else {
                    q.vaddr.wrapping_sub(start) < size
                };
                if !inside {
                    break;
                }
                let name = match named {
                    Some(n) => n,
                    None => {
                        let Some(n) = printable_name(sym, strings) else {
                            break;
                        };
                        named = Some(n);
                        n
                    }
                };
                if pass == Pass::Start {
                    if q.start.is_none_or(|s| s < start) {
                        q.start = Some(start);
                    }
                    continue;
                }
                if pass == Pass::Both && q.start.is_none_or(|s| s < start) {
                    q.start = Some(start);
                    q.name = None;
                }
                if q.start != Some(start) {
                    continue;
                }
                let rank = (rank_of(table, sym.st_bind()), index);
                if q.name.is_none_or(|(_, r)| rank < r) {
                    q.name = Some((name, rank));
                }
            }
        }
        true
    }
}

impl<'d> ElfImage<'d> {
    /// Every symbol of `table` that a lookup could choose, in table order:
    /// `f(start, size, rank, name)`, with the rank [`ElfImage::lookup`]
    /// compares at equal starts (lower first). What a symbol index is built
    /// from. Async-signal-safe.
    pub fn for_each_candidate(
        &self,
        table: Table,
        exec: &[(u64, u64)],
        mut f: impl FnMut(u64, u64, (u8, u64), &'d [u8]),
    ) {
        let Some(symbols) = self.symbol_table(table) else {
            return;
        };
        let strings = symbols.strings();
        for (index, sym) in (0u64..).zip(symbols.symbols().iter().take(MAX_SYMBOLS)) {
            let Some((start, size)) = candidate(sym, exec) else {
                continue;
            };
            let Some(name) = printable_name(sym, strings) else {
                continue;
            };
            f(start, size, (rank_of(table, sym.st_bind()), index), name);
        }
    }

    /// `.dynsym` or `.symtab`, if the file has it whole. Async-signal-safe.
    fn symbol_table(&self, table: Table) -> Option<SymbolTable<'d, Header, &'d [u8]>> {
        let kind = match table {
            Table::Dynsym => elf::SHT_DYNSYM,
            Table::Symtab => elf::SHT_SYMTAB,
        };
        self.sections.symbols(LE, self.data, kind).ok()
    }
}

/// A symbol's name where a frame may print it: not empty, not a mapping
/// symbol (`$x`, `$d`). Async-signal-safe.
fn printable_name<'d>(
    sym: &elf::Sym64<LE>,
    strings: object::read::StringTable<'d, &'d [u8]>,
) -> Option<&'d [u8]> {
    sym.name(LE, strings)
        .ok()
        .filter(|n| !n.is_empty() && n.first() != Some(&b'$'))
}

/// A symbol's start and size if it can name code: a function (or untyped
/// symbol) defined in an executable segment. Async-signal-safe.
fn candidate(sym: &elf::Sym64<LE>, exec: &[(u64, u64)]) -> Option<(u64, u64)> {
    let typ = sym.st_type();
    if !(typ == elf::STT_FUNC || typ == elf::STT_NOTYPE || typ == elf::STT_GNU_IFUNC) {
        return None;
    }
    let shndx = sym.st_shndx(LE).0;
    let start = sym.st_value(LE);
    if shndx == 0 || shndx >= elf::SHN_LORESERVE || start == 0 {
        return None;
    }
    if !exec.iter().any(|&(s, e)| s <= start && start < e) {
        return None;
    }
    Some((start, sym.st_size(LE)))
}

/// The first half of a symbol's rank at equal starts: `.dynsym` (what
/// `dladdr` prints), then global, weak and local `.symtab` entries.
/// Async-signal-safe.
fn rank_of(table: Table, bind: elf::SymbolBind) -> u8 {
    match table {
        Table::Dynsym => 0,
        Table::Symtab if bind == elf::STB_GLOBAL => 1,
        Table::Symtab if bind == elf::STB_WEAK => 2,
        Table::Symtab => 3,
    }
}

/// Insertion sort by vaddr (a stack has at most a few dozen frames).
/// Async-signal-safe.
fn sort(queries: &mut [Query<'_>]) {
    for i in 1..queries.len() {
        let mut j = i;
        while j > 0 {
            let prev = j.wrapping_sub(1);
            let swap = match (queries.get(prev), queries.get(j)) {
                (Some(a), Some(b)) => a.vaddr > b.vaddr,
                _ => false,
            };
            if !swap {
                break;
            }
            queries.swap(prev, j);
            j = prev;
        }
    }
}
