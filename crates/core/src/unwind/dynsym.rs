//! `dladdr`'s own lookup, on a loaded object's `.dynsym` in memory: how an
//! object whose file cannot be read (or is not the loaded one, or has no
//! file, as the vDSO) is named. Through the dynamic section and the hash
//! tables, every read checked.

use crate::memory::Memory;

const DT_NULL: i64 = 0;
/// Dynamic section entries looked at.
const MAX_DYNAMIC: usize = 512;

/// `dladdr`'s own lookup, on `.dynsym` in memory: the symbol with the highest
/// address among the hashed, defined, non-TLS, non-absolute ones containing
/// `addr` (first in table order on ties). Returns its address and the address
/// of its NUL-terminated name. Async-signal-safe.
pub fn dynsym_lookup(
    mem: &impl Memory,
    dynamic: usize,
    bias: usize,
    addr: usize,
) -> Option<(usize, usize)> {
    const DT_HASH: i64 = 4;
    const DT_STRTAB: i64 = 5;
    const DT_SYMTAB: i64 = 6;
    const DT_GNU_HASH: i64 = 0x6fff_fef5;
    let (mut symtab, mut strtab, mut hash, mut gnu_hash) = (0usize, 0usize, 0usize, 0usize);
    for i in 0..MAX_DYNAMIC {
        let at = dynamic.checked_add(i.checked_mul(16)?)?;
        let tag = mem.read::<i64>(at).ok()?;
        let value = mem.read::<usize>(at.checked_add(8)?).ok()?;
        // The loader relocates these entries in place on x86-64 and aarch64;
        // the vDSO's (and some read-only dynamic sections) stay relative.
        let value = if value < bias {
            value.wrapping_add(bias)
        } else {
            value
        };
        match tag {
            DT_NULL => break,
            DT_HASH => hash = value,
            DT_STRTAB => strtab = value,
            DT_SYMTAB => symtab = value,
            DT_GNU_HASH => gnu_hash = value,
            _ => {}
        }
    }
    if symtab == 0 || strtab == 0 {
        return None;
    }
    let u32_at = |a: usize| {
        mem.read::<u32>(a)
            .ok()
            .and_then(|v| usize::try_from(v).ok())
    };
    // Which symbols the hash table covers (only those are dladdr's).
    let (first, count) = if gnu_hash != 0 {
        let nbuckets = u32_at(gnu_hash)?;
        let symoffset = u32_at(gnu_hash.checked_add(4)?)?;
        let bloom_size = u32_at(gnu_hash.checked_add(8)?)?;
        let buckets = gnu_hash
            .checked_add(16)?
            .checked_add(bloom_size.checked_mul(8)?)?;
        let mut max = 0usize;
        let mut words = [0u8; 256];
        let mut done = 0usize;
        while done < nbuckets.min(1 << 20) {
            let n = nbuckets.saturating_sub(done).min(64);
            let dst = words.get_mut(..n.checked_mul(4)?)?;
            mem.read_bytes(buckets.checked_add(done.checked_mul(4)?)?, dst)
                .ok()?;
            for w in dst.chunks_exact(4) {
                let w = u32::from_le_bytes(w.try_into().ok()?);
                max = max.max(usize::try_from(w).ok()?);
            }
            done = done.saturating_add(n);
        }
        if max < symoffset {
            (symoffset, symoffset)
        } else {
            let chains = buckets.checked_add(nbuckets.checked_mul(4)?)?;
            // The chain of the last bucket ends the table: walk it to its
            // end marker (chains are a few entries long).
            let mut last = max;
            let mut ended = false;
            for _ in 0..4096 {
                let h = u32_at(chains.checked_add(last.checked_sub(symoffset)?.checked_mul(4)?)?)?;
                last = last.checked_add(1)?;
                if h & 1 != 0 {
                    ended = true;
                    break;
                }
            }
            if !ended {
                return None;
            }
            (symoffset, last)
        }
    } else if hash != 0 {
        (0, u32_at(hash.checked_add(4)?)?)
    } else {
        return None;
    };
    let mut best: Option<(usize, usize)> = None;
    let mut chunk = [0u8; 24 * 64];
    let mut index = first;
    while index < count.min(1 << 22) {
        let n = count.saturating_sub(index).min(64);
        let dst = chunk.get_mut(..n.checked_mul(24)?)?;
        mem.read_bytes(symtab.checked_add(index.checked_mul(24)?)?, dst)
            .ok()?;
        for sym in dst.chunks_exact(24) {
            let field = |at: usize| -> Option<u64> {
                Some(u64::from_le_bytes(
                    sym.get(at..at.checked_add(8)?)?.try_into().ok()?,
                ))
            };
            // st_name u32, st_info u8, st_other u8, st_shndx u16, st_value, st_size
            let (head, value, size) = (field(0)?, field(8)?, field(16)?);
            let name = usize::try_from(head & 0xffff_ffff).ok()?;
            let info = (head >> 32) & 0xff;
            let shndx = (head >> 48) & 0xffff;
            let start = (bias as u64).wrapping_add(value);
            let defined = shndx != 0 || value != 0;
            let usable = defined && shndx != 0xfff1 && info & 0xf != 6;
            let inside = (addr as u64) >= start
                && if shndx == 0 || size == 0 {
                    addr as u64 == start
                } else {
                    (addr as u64).wrapping_sub(start) < size
                };
            if usable && inside && best.is_none_or(|(b, _)| (b as u64) < start) {
                best = Some((usize::try_from(start).ok()?, strtab.wrapping_add(name)));
            }
        }
        index = index.saturating_add(n);
    }
    best
}
