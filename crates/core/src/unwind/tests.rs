//! The unwinder's parts against hostile input: corrupt `.eh_frame`, cyclic
//! CFI and expressions, stacks that point nowhere, a cyclic object list,
//! mutated ELF files and huge symbol tables. Each case must end (bounded
//! loops) with an answer or None, never a panic or a fault. The mutations
//! come from a small seeded generator, so a failure is reproducible; the
//! whole file runs in a few seconds with `cargo test --release`.

#![allow(unsafe_code)]

use super::image::{Image, ImageError};
use super::objects::{Objects, Process};
use super::regs::{Regs, arch};
use super::step::{CodeMap, End, UnwindInfo, step_cfi, unwind, unwind_ends};
use super::symbols::{ElfImage, Pass, Query, Table};
use crate::memory::{LocalChecked, Memory};

/// xorshift64: a reproducible stream of pseudo-random words.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// This process, as the unwinder sees it.
fn this_process() -> Process {
    // SAFETY: getauxval has no preconditions.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    Process {
        r_debug: 0,
        main_phdr: phdr as usize,
        main_phnum: phnum as usize,
        main_name: 0,
    }
}

#[inline(never)]
fn a_function_with_cfi(x: u64) -> u64 {
    core::hint::black_box(x).wrapping_mul(3)
}

/// The `.eh_frame_hdr` of this test binary and the bytes from it to the end
/// of its segment (`.eh_frame` follows it there).
fn own_unwind_tables() -> (usize, usize, Vec<u8>) {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    let found = objects
        .find(a_function_with_cfi as *const () as usize)
        .expect("the test binary is in the object list");
    assert!(found.eh_frame_hdr != 0);
    // Copy up to 2 MiB, stopping at the first unreadable page.
    let mut bytes = Vec::new();
    let mut page = [0u8; 4096];
    let start = found.eh_frame_hdr;
    let mut at = start;
    while bytes.len() < 2 << 20 && mem.read_bytes(at, &mut page).is_ok() {
        bytes.extend_from_slice(&page);
        at += 4096;
    }
    (start, found.eh_frame_hdr_len, bytes)
}

/// Registers for a step: every one points into `stack`, sp in its middle.
fn regs_in(stack: &[u64], pc: u64) -> Regs {
    let mut regs = Regs::empty();
    let base = stack.as_ptr() as u64;
    for r in 0..arch::NREGS as u16 {
        regs.set(r, base + 64 * r as u64);
    }
    regs.set(arch::SP, base + (stack.len() as u64 / 2) * 8);
    regs.pc = pc;
    regs
}

#[test]
fn the_tables_of_a_real_function_give_a_step() {
    let (hdr, hdr_len, bytes) = own_unwind_tables();
    let mem = LocalChecked::new();
    let stack = vec![0x1000u64; 4096];
    let pc = a_function_with_cfi as *const () as u64 + 1;
    let info = UnwindInfo {
        eh_frame_hdr: hdr,
        eh_frame_hdr_len: hdr_len,
        eh_frame_end: hdr + bytes.len(),
    };
    let (next, signal) = step_cfi(&mem, &info, &regs_in(&stack, pc), pc).expect("a step");
    assert!(!signal);
    assert_eq!(next.pc, 0x1000, "the return address, read from the stack");
    assert_eq!(a_function_with_cfi(2), 6);
}

#[test]
fn mutated_eh_frame_never_panics_or_loops() {
    let (hdr, hdr_len, pristine) = own_unwind_tables();
    let mem = LocalChecked::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // The copy keeps every pc-relative and datarel pointer working: its FDEs
    // describe code shifted by (copy - original).
    let mut copy = pristine.clone();
    let base = copy.as_ptr() as usize;
    let info = UnwindInfo {
        eh_frame_hdr: base,
        eh_frame_hdr_len: hdr_len,
        eh_frame_end: base + copy.len(),
    };
    let shift = (base as u64).wrapping_sub(hdr as u64);
    let pc = (a_function_with_cfi as *const () as u64).wrapping_add(shift);
    let stack: Vec<u64> = (0..4096).map(|_| rng.next()).collect();
    assert!(
        step_cfi(&mem, &info, &regs_in(&stack, pc + 1), pc + 1).is_some(),
        "the copy works"
    );
    let mut stepped = 0;
    for round in 0..3000 {
        copy.copy_from_slice(&pristine);
        // Mutate a few bytes: in the header and its table, or anywhere.
        for _ in 0..1 + rng.below(8) {
            let at = if round % 2 == 0 {
                rng.below(hdr_len.min(copy.len()) + 64)
            } else {
                rng.below(copy.len())
            };
            if let Some(b) = copy.get_mut(at) {
                *b = rng.next() as u8;
            }
        }
        let probe = pc
            .wrapping_add(rng.below(0x4000) as u64)
            .wrapping_sub(0x2000);
        if step_cfi(&mem, &info, &regs_in(&stack, probe), probe).is_some() {
            stepped += 1;
        }
    }
    assert!(
        stepped > 100,
        "most mutations leave some steps working: {stepped}"
    );
}

/// A hand-made `.eh_frame_hdr` + `.eh_frame` with one CIE and one FDE
/// covering `[pc, pc + 0x100)`, whose instructions are `fde_instructions`
/// (after a CIE that says: CFA = sp + 8, return address at CFA - 8).
/// Returns the buffer (kept alive by the caller), its unwind info and `pc`
/// (1 MiB past the buffer: the table's offsets are 32-bit).
fn synthetic_tables(fde_instructions: &[u8]) -> (Vec<u64>, UnwindInfo, u64) {
    let mut b: Vec<u8> = Vec::new();
    let words = vec![0u64; (fde_instructions.len() + 256) / 8 + 1];
    let base = words.as_ptr() as usize;
    #[allow(non_snake_case)]
    let PC = base as u64 + 0x10_0000;
    let eh_frame = 32usize;
    // .eh_frame_hdr: version, eh_frame_ptr pcrel|sdata4, count udata4,
    // table datarel|sdata4.
    b.extend_from_slice(&[1, 0x1b, 0x03, 0x3b]);
    b.extend_from_slice(&((eh_frame as i32) - 4).to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    let table_at = b.len();
    b.extend_from_slice(&[0; 8]);
    b.resize(eh_frame, 0);
    // CIE: version 1, "zR", code align 1, data align -8, ra 16, R = pcrel|sdata4,
    // DW_CFA_def_cfa rsp 8, DW_CFA_offset r16 1.
    let cie_at = b.len();
    let mut cie = vec![
        0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1,
    ];
    while (cie.len() + 4) % 8 != 0 {
        cie.push(0);
    }
    b.extend_from_slice(&(cie.len() as u32).to_le_bytes());
    b.extend_from_slice(&cie);
    // FDE.
    let fde_at = b.len();
    let mut fde = Vec::new();
    fde.extend_from_slice(&((fde_at + 4 - cie_at) as u32).to_le_bytes());
    let pc_field = base + fde_at + 8;
    fde.extend_from_slice(&((PC as i64 - pc_field as i64) as i32).to_le_bytes());
    fde.extend_from_slice(&0x100u32.to_le_bytes());
    fde.push(0); // augmentation data length
    fde.extend_from_slice(fde_instructions);
    while (fde.len() + 4) % 8 != 0 {
        fde.push(0);
    }
    b.extend_from_slice(&(fde.len() as u32).to_le_bytes());
    b.extend_from_slice(&fde);
    b.extend_from_slice(&0u32.to_le_bytes());
    let loc = (PC as i64 - base as i64) as i32;
    b[table_at..table_at + 4].copy_from_slice(&loc.to_le_bytes());
    b[table_at + 4..table_at + 8].copy_from_slice(&(fde_at as i32).to_le_bytes());
    let mut words = words;
    words.resize(b.len().div_ceil(8) + 1, 0);
    assert_eq!(words.as_ptr() as usize, base, "the buffer did not move");
    // SAFETY: the u64 buffer holds at least b.len() bytes.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), b.len()) }
        .copy_from_slice(&b);
    let info = UnwindInfo {
        eh_frame_hdr: base,
        eh_frame_hdr_len: eh_frame,
        eh_frame_end: base + b.len(),
    };
    (words, info, PC)
}

#[test]
fn synthetic_tables_step() {
    let mem = LocalChecked::new();
    let stack = vec![0x4242u64; 64];
    let (_keep, info, pc) = synthetic_tables(&[]);
    let regs = regs_in(&stack, pc + 4);
    let (next, _) = step_cfi(&mem, &info, &regs, pc + 4).expect("a step");
    assert_eq!(next.pc, 0x4242);
    assert_eq!(next.get(arch::SP), Some(regs.get(arch::SP).unwrap() + 8));
}

#[test]
fn cyclic_and_endless_cfi_end() {
    let mem = LocalChecked::new();
    let stack = vec![0x4242u64; 64];
    let cases: [(&str, Vec<u8>); 5] = [
        // DW_CFA_def_cfa_expression { DW_OP_skip -3 }: a branch to itself.
        ("skip to itself", vec![0x0f, 3, 0x2f, 0xfd, 0xff]),
        // { DW_OP_lit1; DW_OP_bra -3 }: loops while the top is non-zero.
        ("bra loop", vec![0x0f, 4, 0x31, 0x28, 0xfd, 0xff]),
        // { DW_OP_lit1; DW_OP_dup; DW_OP_skip -4 }: the stack overflows.
        ("dup forever", vec![0x0f, 5, 0x31, 0x12, 0x2f, 0xfc, 0xff]),
        // DW_CFA_remember_state past any depth.
        ("remember", vec![0x0a; 64]),
        // DW_CFA_restore_state on an empty stack.
        ("restore", vec![0x0b; 4]),
    ];
    for (name, instructions) in cases {
        let (_keep, info, pc) = synthetic_tables(&instructions);
        let regs = regs_in(&stack, pc + 4);
        assert!(step_cfi(&mem, &info, &regs, pc + 4).is_none(), "{name}");
    }
    // 64 KiB of nops end at their end, and the CIE's row applies.
    let (_keep, info, pc) = synthetic_tables(&vec![0u8; 1 << 16]);
    let regs = regs_in(&stack, pc + 4);
    assert_eq!(
        step_cfi(&mem, &info, &regs, pc + 4).map(|s| s.0.pc),
        Some(0x4242)
    );
}

#[test]
fn random_cfa_instructions_end() {
    let mem = LocalChecked::new();
    let stack = vec![0x4242u64; 4096];
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let mut some = 0;
    for _ in 0..2000 {
        let len = rng.below(48);
        let instructions: Vec<u8> = (0..len)
            .map(|_| match rng.below(4) {
                // Mostly real opcodes, with small operands.
                0 => 0x40 | rng.below(64) as u8,
                1 => [0x0a, 0x0b, 0x0c, 0x0e, 0x0f, 0x10, 0x16, 0x2e][rng.below(8)],
                2 => rng.below(16) as u8,
                _ => rng.next() as u8,
            })
            .collect();
        let (_keep, info, start) = synthetic_tables(&instructions);
        let pc = start + rng.below(0x100) as u64;
        if step_cfi(&mem, &info, &regs_in(&stack, pc), pc).is_some() {
            some += 1;
        }
    }
    assert!(some > 0);
}

/// Every address is code, with the test binary's unwind tables.
struct AllCode(UnwindInfo);

impl CodeMap for AllCode {
    fn unwind_info(&self, _addr: usize) -> Option<UnwindInfo> {
        Some(self.0)
    }
}

#[test]
fn stack_pointers_into_nowhere_end_the_walk() {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    let (hdr, hdr_len, _) = own_unwind_tables();
    let all = AllCode(UnwindInfo {
        eh_frame_hdr: hdr,
        eh_frame_hdr_len: hdr_len,
        eh_frame_end: 0,
    });
    let pc = a_function_with_cfi as *const () as u64 + 4;
    for sp in [0u64, 8, 1 << 46, (1 << 47) - 8, u64::MAX, u64::MAX - 7] {
        for fp in [0u64, sp, sp.wrapping_add(16), u64::MAX] {
            let mut regs = Regs::empty();
            regs.set(arch::SP, sp);
            regs.set(arch::FP, fp);
            regs.pc = pc;
            let mut frames = [0usize; 32];
            assert!(
                unwind(&mem, &objects, regs, &mut frames, 0) <= 1,
                "sp {sp:#x} fp {fp:#x}"
            );
            assert!(
                unwind(&mem, &all, regs, &mut frames, 0) <= 1,
                "sp {sp:#x} fp {fp:#x}"
            );
            // A dump marks such a stack: the walk is lost, not ended.
            assert_eq!(
                unwind_ends(&mem, &objects, regs, &mut frames),
                (1, End::Lost),
                "sp {sp:#x} fp {fp:#x}"
            );
        }
    }
}

/// The registers of this very thread at its call of this function.
#[inline(never)]
fn own_registers() -> Regs {
    let (pc, sp, fp): (u64, u64, u64);
    // SAFETY: reads three registers into locals; no memory is touched. The
    // pc is the instruction after the lea, where sp and fp are these.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!("lea {}, [rip]", "mov {}, rsp", "mov {}, rbp", out(reg) pc, out(reg) sp, out(reg) fp)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (pc, sp, fp) = (0u64, 0u64, 0u64);
    let mut regs = Regs::empty();
    regs.set(arch::SP, sp);
    regs.set(arch::FP, fp);
    regs.pc = pc;
    regs
}

#[cfg(target_arch = "x86_64")]
#[test]
fn a_whole_stack_ends_at_its_outermost_frame_and_a_long_one_at_the_limit() {
    // A test thread's stack goes down to clone3, whose CFI says the return
    // address is undefined: the walk ends there, not lost.
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    let regs = own_registers();
    let mut frames = [0usize; 256];
    let (n, end) = unwind_ends(&mem, &objects, regs, &mut frames);
    assert!(n > 3, "{n}");
    assert_eq!(end, End::Outermost);
    let mut few = [0usize; 2];
    assert_eq!(unwind_ends(&mem, &objects, regs, &mut few), (2, End::Limit));
}

#[test]
fn a_stack_that_points_at_itself_ends() {
    // Every word of the stack is its own address: a frame-pointer chain that
    // loops, and return addresses that are no code.
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    let mut stack = vec![0u64; 512];
    let base = stack.as_ptr() as u64;
    for (i, w) in stack.iter_mut().enumerate() {
        *w = base + (i as u64) * 8;
    }
    let mut regs = Regs::empty();
    regs.set(arch::SP, base);
    regs.set(arch::FP, base + 64);
    regs.pc = 0x1234;
    let mut frames = [0usize; 32];
    assert!(unwind(&mem, &objects, regs, &mut frames, 0) <= 2);
}

#[test]
fn a_cyclic_object_list_ends() {
    // A fake _r_debug whose r_map is a link_map pointing at itself.
    let mem = LocalChecked::new();
    let mut node = [0usize; 5];
    let node_at = node.as_ptr() as usize;
    node[3] = node_at; // l_next -> itself
    node[1] = c"".as_ptr() as usize;
    let r_debug = [1usize, node_at, 0, 0, 0];
    let process = Process {
        r_debug: r_debug.as_ptr() as usize,
        ..this_process()
    };
    let objects = Objects::snapshot(&mem, process);
    // The self-loop is the main program once, then non-ELF entries.
    assert!(objects.len() <= 1);
    let nowhere = usize::MAX - 4096;
    assert_eq!(objects.find(nowhere), None);
    // Without a snapshot, the search follows the loop to its bound.
    let unsnapshotted = Objects::unsnapshotted(&mem, process);
    assert_eq!(unsnapshotted.find(nowhere), None);
    core::hint::black_box(&mut node);
}

/// The bytes of a file in an 8-aligned buffer (object wants aligned headers).
fn aligned(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    // SAFETY: the u64 buffer has at least bytes.len() bytes; u8 has no
    // alignment or validity requirement.
    let view =
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), bytes.len()) };
    view.copy_from_slice(bytes);
    words
}

fn as_bytes(words: &[u64], len: usize) -> &[u8] {
    // SAFETY: `len` is at most the buffer's size in bytes.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len.min(words.len() * 8)) }
}

/// Run every symbol-table operation on an image; return how many queries
/// were named.
fn exercise(bytes: &[u8], vaddrs: &[u64]) -> usize {
    let Some(elf) = ElfImage::parse(bytes) else {
        return 0;
    };
    let _ = elf.build_id();
    let _ = elf.has_symtab();
    let mut exec = Vec::new();
    elf.for_each_load(|(_, vaddr, _, memsz)| {
        exec.push((vaddr, vaddr.wrapping_add(memsz)));
        true
    });
    let mut queries: Vec<Query<'_>> = vaddrs
        .iter()
        .enumerate()
        .map(|(i, &v)| Query::new(v, i))
        .collect();
    for pass in [Pass::Start, Pass::Name] {
        for table in [Table::Dynsym, Table::Symtab] {
            elf.lookup(table, &exec, &mut queries, pass);
        }
    }
    queries.iter().filter(|q| q.name.is_some()).count()
}

/// The test binary's own file.
fn own_file() -> Vec<u8> {
    std::fs::read("/proc/self/exe").unwrap()
}

#[test]
fn the_own_file_names_its_functions() {
    let file = aligned(&own_file());
    let bytes = as_bytes(&file, own_file().len());
    let elf = ElfImage::parse(bytes).unwrap();
    assert!(elf.has_symtab());
    // Some function of the file: named.
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    let f = a_function_with_cfi as *const () as usize;
    let found = objects.find(f).unwrap();
    let vaddr = (f - found.bias) as u64;
    assert_eq!(exercise(bytes, &[vaddr, vaddr + 1]), 2);
}

#[test]
fn mutated_elf_files_never_panic() {
    let original = own_file();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let pristine = aligned(&original);
    assert!(ElfImage::parse(as_bytes(&pristine, original.len())).is_some());
    // Where the headers are: mutations aimed there hit the parser hardest.
    let mut hot = vec![(0usize, 64usize)];
    let header = &original[..64];
    let shoff = u64::from_le_bytes(header[40..48].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(header[60..62].try_into().unwrap()) as usize;
    hot.push((shoff, shnum * 64));
    let phoff = u64::from_le_bytes(header[32..40].try_into().unwrap()) as usize;
    hot.push((phoff, 56 * 16));
    let vaddrs: Vec<u64> = (0..16).map(|_| rng.next() % 0x40_0000).collect();
    let mut words = aligned(&original);
    for round in 0..400 {
        // Fresh copy of the hot parts, then mutate.
        words.copy_from_slice(&pristine);
        // SAFETY: viewing the u64 buffer as bytes.
        let view = unsafe {
            core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), original.len())
        };
        for _ in 0..1 + rng.below(6) {
            let (start, len) = hot[rng.below(hot.len())];
            let at = if round % 3 == 0 {
                rng.below(view.len())
            } else {
                start + rng.below(len)
            };
            if let Some(b) = view.get_mut(at) {
                *b = match rng.below(4) {
                    0 => 0,
                    1 => 0xff,
                    _ => rng.next() as u8,
                };
            }
        }
        exercise(as_bytes(&words, original.len()), &vaddrs);
    }
}

/// A temporary file with `bytes`, open for reading.
fn temp_file(name: &str, bytes: &[u8]) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("lastwords-unwind-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

fn set_u64(bytes: &mut [u8], at: usize, v: u64) {
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn images_of_hostile_files_are_refused_or_bounded() {
    use std::os::fd::AsRawFd;
    let original = own_file();
    // The real file: an image with a symbol table.
    let f = temp_file("real", &original);
    let image = Image::load(f.as_raw_fd()).unwrap();
    assert!(ElfImage::parse(image.bytes()).unwrap().has_symtab());
    assert!(!image.incomplete);
    // Not ELF, empty, too short.
    for (name, bytes) in [
        ("empty", &b""[..]),
        (
            "text",
            &b"hello, world, this is not an ELF file at all, no sir, not at all."[..],
        ),
    ] {
        let f = temp_file(name, bytes);
        assert_eq!(
            Image::load(f.as_raw_fd()).err(),
            Some(ImageError::NotElf),
            "{name}"
        );
    }
    // A section table beyond the end of the file.
    let mut bad = original.clone();
    set_u64(&mut bad, 40, original.len() as u64 + 4096);
    let f = temp_file("shoff", &bad);
    assert_eq!(Image::load(f.as_raw_fd()).err(), Some(ImageError::NotElf));
    // A huge symbol table: every section claims 2^40 bytes. The image
    // leaves them out (over the read budget, or beyond the file), and the
    // lookups find nothing, quickly.
    let mut huge = original.clone();
    let shoff = u64::from_le_bytes(huge[40..48].try_into().unwrap()) as usize;
    let shnum = u16::from_le_bytes(huge[60..62].try_into().unwrap()) as usize;
    for i in 0..shnum {
        set_u64(&mut huge, shoff + 64 * i + 32, 1 << 40);
    }
    let f = temp_file("huge", &huge);
    if let Ok(image) = Image::load(f.as_raw_fd()) {
        assert!(image.incomplete);
        assert_eq!(exercise(image.bytes(), &[0x1000, 0x2000]), 0);
    }
    // Truncated files: every prefix length class.
    for cut in [64usize, 100, 4096, original.len() / 2, original.len() - 1] {
        let f = temp_file("cut", &original[..cut]);
        if let Ok(image) = Image::load(f.as_raw_fd()) {
            exercise(image.bytes(), &[0x1000]);
        }
    }
}

#[test]
fn one_pass_names_as_two_passes_do() {
    let own = own_file();
    let file = aligned(&own);
    let bytes = as_bytes(&file, own.len());
    let elf = ElfImage::parse(bytes).unwrap();
    let mut exec = Vec::new();
    elf.for_each_load(|(_, vaddr, _, memsz)| {
        exec.push((vaddr, vaddr.wrapping_add(memsz)));
        true
    });
    // Addresses all over the executable segments, inside functions and
    // between them.
    let (lo, hi) = exec
        .iter()
        .fold((u64::MAX, 0), |(l, h), &(s, e)| (l.min(s), h.max(e)));
    let step = ((hi - lo) / 997).max(1);
    let vaddrs: Vec<u64> = (0..997).map(|i| lo + i * step + (i % 7)).collect();
    let run = |passes: &[Pass]| {
        let mut queries: Vec<Query<'_>> = vaddrs
            .iter()
            .enumerate()
            .map(|(i, &v)| Query::new(v, i))
            .collect();
        for &pass in passes {
            for table in [Table::Dynsym, Table::Symtab] {
                elf.lookup(table, &exec, &mut queries, pass);
            }
        }
        let mut out: Vec<_> = queries
            .iter()
            .map(|q| (q.frame, q.start, q.name.map(|(n, _)| n)))
            .collect();
        out.sort();
        out
    };
    let two = run(&[Pass::Start, Pass::Name]);
    assert_eq!(run(&[Pass::Both]), two);
    assert!(two.iter().filter(|q| q.2.is_some()).count() > 100);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn cached_rows_give_the_same_walk() {
    let mem = LocalChecked::new();
    let objects = Objects::snapshot(&mem, this_process());
    // Captured here, in the frame that walks: the stack above stays as it
    // was while the walks run below it.
    let (pc, sp, fp): (u64, u64, u64);
    // SAFETY: reads three registers into locals; no memory is touched.
    unsafe {
        core::arch::asm!("lea {}, [rip]", "mov {}, rsp", "mov {}, rbp", out(reg) pc, out(reg) sp, out(reg) fp)
    };
    let mut regs = Regs::empty();
    regs.set(arch::SP, sp);
    regs.set(arch::FP, fp);
    regs.pc = pc;
    let mut plain = [0usize; 128];
    let expected = unwind_ends(&mem, &objects, regs, &mut plain);
    assert!(expected.0 > 3, "{expected:?}");
    let mut cache = super::step::RowCache::new();
    // Once filling the cache, once from it.
    for _ in 0..2 {
        let mut frames = [0usize; 128];
        let got = super::step::unwind_ends_cached(&mem, &objects, regs, &mut frames, &mut cache);
        assert_eq!(got, expected);
        assert_eq!(frames, plain);
    }
}
