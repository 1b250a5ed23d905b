//! Dropping exact repeats in the kernel: the event hash, the set of hashes
//! already reported, and the per-process generation of name-resolution
//! context that makes relative paths hash apart when their meaning changes.

use core::ptr;

use slimd_common::MAX_PATH;

use crate::maps::{DEDUP, GENERATION};

/// Most bytes hashed for dedup: a full path (or a sockaddr, which is shorter).
pub(crate) const HASH_MAX: usize = (MAX_PATH / 8 + 1) * 8;

/// Mixes one word into a 64-bit hash.
#[inline(always)]
pub(crate) fn mix(h: u64, w: u64) -> u64 {
    let h = (h ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// Hash of `len` bytes at `buf` (8-aligned, `len` <= HASH_MAX). The loop
/// body is kept tiny and branch-free: the verifier walks every possible trip
/// count, and the cost of that walk is trip count x body.
#[inline(always)]
pub(crate) fn hash_bytes(mut h: u64, buf: *const u8, len: usize) -> u64 {
    let full = len / 8;
    let mut i = 0usize;
    while i < HASH_MAX / 8 {
        if i >= full {
            break;
        }
        // SAFETY: i*8 + 8 <= HASH_MAX bytes after buf, inside the scratch value.
        h = mix(h, unsafe {
            ptr::read_volatile(buf.add(i * 8) as *const u64)
        });
        i += 1;
    }
    let rem = len % 8;
    if rem != 0 && full < HASH_MAX / 8 {
        // SAFETY: as above; bytes past `len` are masked off.
        let w = unsafe { ptr::read_volatile(buf.add(full * 8) as *const u64) };
        h = mix(h, w & ((1u64 << (rem * 8)) - 1));
    }
    mix(h, len as u64)
}

/// True when this exact event was already reported for its session.
#[inline(always)]
pub(crate) fn is_repeat(key: u64) -> bool {
    // SAFETY: only tests presence.
    if unsafe { DEDUP.get(&key) }.is_some() {
        return true;
    }
    let _ = DEDUP.insert(&key, &1u8, 0);
    false
}

#[inline(always)]
pub(crate) fn generation(tgid: u32) -> u64 {
    // SAFETY: value copied out at once.
    unsafe { GENERATION.get(&tgid) }.copied().unwrap_or(0)
}

#[inline(always)]
pub(crate) fn bump_generation(tgid: u32) {
    let next = generation(tgid).wrapping_add(1);
    let _ = GENERATION.insert(&tgid, &next, 0);
}
