//! The cgroup program: watch mode's provisional tag on `cgroup_mkdir`.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext, helpers::generated::bpf_probe_read_kernel_str, macros::tracepoint,
    programs::TracePointContext,
};
use slimd_common::{
    EventKind, MAX_PATH, PATH_READ, SYSCALL_WORDS, SessionStats, SyscallSet, TAG_PROVISIONAL,
    TagFilter, TagInfo, WATCH_PREFIX_LEN, WATCH_PREFIXES,
};

use super::ctx_field;
use crate::{
    maps::{STATS, SYSCALL_SETS, TAG_FILTER, TAGS, WATCH, config},
    record::{HDR, header, scratch, submit},
};

/// cgroup:cgroup_mkdir — in watch mode, a new cgroup2 directory whose path
/// starts with a watch prefix (the runtime's parent, e.g. `/docker/`) is
/// tagged provisionally right now, before any process can enter it, so the
/// container is traced from its first instruction; userspace then adopts
/// or drops it. Attached only in watch mode.
#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    let _ = try_cgroup_mkdir(&ctx);
    0
}

fn try_cgroup_mkdir(ctx: &TracePointContext) -> Option<()> {
    let cfg = config();
    if cfg.watch == 0 {
        return None;
    }
    // Only the default (v2) hierarchy, whose ids the tag check uses.
    if ctx_field::<i32>(ctx, cfg.mkdir_root)? != 0 {
        return None;
    }
    let id = ctx_field::<u64>(ctx, cfg.mkdir_id)?;
    let level = ctx_field::<i32>(ctx, cfg.mkdir_level)?;
    let loc = ctx_field::<u32>(ctx, cfg.mkdir_path)?;
    let buf = scratch()?;
    // SAFETY: reads the kernel's copy of the path from the record.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.add(HDR) as *mut c_void,
            PATH_READ as u32,
            (ctx.as_ptr() as *const u8).add((loc & 0xffff) as usize) as *const c_void,
        )
    };
    if n <= 0 {
        return None;
    }
    let len = (n as usize - 1).min(MAX_PATH);
    if !matches_watch_prefix(buf, len) {
        return None;
    }
    let info = TagInfo {
        session: id,
        flags: TAG_PROVISIONAL,
    };
    TAGS.insert(&id, &info, 0).ok()?;
    let zero_stats = SessionStats::default();
    let _ = STATS.insert(&id, &zero_stats, 0);
    let zero_set = SyscallSet {
        words: [0; SYSCALL_WORDS],
    };
    let _ = SYSCALL_SETS.insert(&id, &zero_set, 0);
    if let Some(f) = TAG_FILTER.get_ptr_mut(0) {
        let bit = TagFilter::bit(id);
        // SAFETY: one word of the array value; a racing writer can only add bits.
        unsafe { (*f).words[(bit / 64) as usize & 63] |= 1 << (bit % 64) };
    }
    let h = header(buf, id, EventKind::CgroupMkdir, 0);
    h.arg0 = id as i64;
    h.arg1 = level as u64;
    h.path_len = len as u32;
    submit(buf, id);
    Some(())
}

/// Whether the path in the scratch buffer starts with a watch prefix.
#[inline(always)]
fn matches_watch_prefix(buf: *mut u8, len: usize) -> bool {
    let mut i = 0u32;
    while i < WATCH_PREFIXES {
        if let Some(p) = WATCH.get(i) {
            let plen = p.len as usize;
            if plen > 0 && plen <= WATCH_PREFIX_LEN && plen <= len {
                let mut j = 0usize;
                let mut same = true;
                while j < WATCH_PREFIX_LEN {
                    if j >= plen {
                        break;
                    }
                    // SAFETY: j < 64 <= the path area of the scratch buffer.
                    if unsafe { *buf.add(HDR + j) } != p.bytes[j] {
                        same = false;
                        break;
                    }
                    j += 1;
                }
                if same {
                    return true;
                }
            }
        }
        i += 1;
    }
    false
}
