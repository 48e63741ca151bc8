//! Just enough x86-64 decoding to read a static variable's address out of the
//! tiny exported accessors that return it (2.7's `PyInterpreterState_Head`
//! is `return interp_head;`) and a string literal's address out of
//! `Py_GetVersion`. The code bytes come from the file: hostile input, hence
//! strict patterns, checked arithmetic, no panics.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// The target of a RIP-relative operand: `next_insn + disp32`.
fn rip_target(next_insn: u64, disp: [u8; 4]) -> Option<u64> {
    next_insn.checked_add_signed(i64::from(i32::from_le_bytes(disp)))
}

/// If `code` (found at address `at`) is exactly `mov rax, [rip+disp32];
/// ret` (after an optional `endbr64`), the address it loads from.
pub fn returned_load(code: &[u8], at: u64) -> Option<u64> {
    let (code, at) = match code.strip_prefix(&ENDBR64) {
        Some(rest) => (rest, at.checked_add(4)?),
        None => (code, at),
    };
    match code.get(..8)? {
        // REX.W 8B /r with ModRM 00 000 101: mov rax, [rip+disp32]; then ret.
        [0x48, 0x8b, 0x05, d0, d1, d2, d3, 0xc3] => {
            rip_target(at.checked_add(7)?, [*d0, *d1, *d2, *d3])
        }
        _ => None,
    }
}

/// The targets of every `lea r64, [rip+disp32]` in `code` (found at `at`),
/// scanning byte by byte: candidates only, to be validated by the caller.
pub fn lea_targets(code: &[u8], at: u64) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, w) in code.windows(7).enumerate() {
        if let [rex, 0x8d, modrm, d0, d1, d2, d3] = *w
            && (rex == 0x48 || rex == 0x4c)
            && modrm & 0xc7 == 0x05
        {
            let next = u64::try_from(i)
                .ok()
                .and_then(|i| at.checked_add(i))
                .and_then(|a| a.checked_add(7));
            if let Some(t) = next.and_then(|n| rip_target(n, [d0, d1, d2, d3])) {
                out.push(t);
            }
        }
    }
    out
}

/// The immediates of every `mov eax, imm32` in `code`: in a non-PIE
/// executable a function returns a static buffer's address this way.
pub fn mov_eax_immediates(code: &[u8]) -> Vec<u64> {
    code.windows(5)
        .filter_map(|w| match *w {
            [0xb8, a, b, c, d] => Some(u64::from(u32::from_le_bytes([a, b, c, d]))),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_27_accessor() {
        // 116e00: 48 8b 05 c9 08 0e 00   mov 0xe08c9(%rip),%rax  # 1f76d0
        //         c3                     ret
        let code = [0x48, 0x8b, 0x05, 0xc9, 0x08, 0x0e, 0x00, 0xc3];
        assert_eq!(returned_load(&code, 0x116e00), Some(0x1f76d0));
        let mut cet = ENDBR64.to_vec();
        cet.extend_from_slice(&code);
        assert_eq!(returned_load(&cet, 0x116e00 - 4), Some(0x1f76d0));
        // 3.x: the load goes through _PyRuntime, not a plain return.
        let code3 = [
            0x48, 0x8b, 0x05, 0xa1, 0x7f, 0x17, 0x00, 0x48, 0x8b, 0x40, 0x20, 0xc3,
        ];
        assert_eq!(returned_load(&code3, 0x1dbd60), None);
        assert_eq!(returned_load(&[], 0), None);
        assert_eq!(returned_load(&code[..7], 0), None);
        // A negative displacement, and one that would wrap.
        let back = [0x48, 0x8b, 0x05, 0xf9, 0xff, 0xff, 0xff, 0xc3];
        assert_eq!(returned_load(&back, 0x1000), Some(0x1000));
        assert_eq!(returned_load(&back, 0), Some(0));
        let wraps = [0x48, 0x8b, 0x05, 0xf8, 0xff, 0xff, 0xff, 0xc3];
        assert_eq!(returned_load(&wraps, 0), None);
    }

    #[test]
    fn finds_absolute_returns() {
        // 6e764a: b8 20 e3 be 00   mov $0xbee320,%eax
        assert_eq!(
            mov_eax_immediates(&[0x5a, 0xb8, 0x20, 0xe3, 0xbe, 0x00, 0xc3]),
            vec![0xbee320]
        );
        assert!(mov_eax_immediates(&[0xb8, 0x20]).is_empty());
    }

    #[test]
    fn finds_leas() {
        // 10a533: 48 8d 0d 6d 1d 06 00   lea 0x61d6d(%rip),%rcx  # 16c2a7
        let code = [0x90, 0x48, 0x8d, 0x0d, 0x6d, 0x1d, 0x06, 0x00, 0x90];
        assert_eq!(lea_targets(&code, 0x10a532), vec![0x16c2a7]);
        assert!(lea_targets(&[0x48, 0x8d], 0).is_empty());
        let junk: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let _ = lea_targets(&junk, u64::MAX - 10);
    }
}
