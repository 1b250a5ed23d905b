//! Building a record in the per-CPU scratch buffer and sending it to the
//! ring buffer, with the session's counters.

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::helpers::{
    bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
    generated::bpf_probe_read_user_str,
};
use slimd_common::{
    EVENT_READ_FAILED, EVENT_TRUNCATED, EventHeader, EventKind, MAX_PATH, PATH_READ, SCRATCH_SIZE,
    SessionStats,
};

use crate::maps::{EVENTS, SCRATCH, STATS};

/// Size of the record header; the path starts here in the scratch buffer.
pub(crate) const HDR: usize = size_of::<EventHeader>();

#[inline(always)]
pub(crate) fn stats(session: u64) -> Option<&'static mut SessionStats> {
    // SAFETY: per-CPU value, only this CPU writes it while we run.
    STATS.get_ptr_mut(&session).map(|p| unsafe { &mut *p })
}

#[inline(always)]
pub(crate) fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|p| p as *mut u8)
}

/// Fills the common header fields in the scratch buffer.
#[inline(always)]
pub(crate) fn header(
    buf: *mut u8,
    session: u64,
    kind: EventKind,
    syscall: u8,
) -> &'static mut EventHeader {
    // SAFETY: the scratch value starts with room for a header, 8-aligned.
    let h = unsafe { &mut *(buf as *mut EventHeader) };
    let id = bpf_get_current_pid_tgid();
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.tag = session;
    h.ret = 0;
    h.arg0 = 0;
    h.arg1 = 0;
    h.arg2 = 0;
    h.pid = id as u32;
    h.tgid = (id >> 32) as u32;
    h.ppid = 0;
    h.kind = kind as u16;
    h.syscall = syscall as u16;
    h.flags = 0;
    h.path_len = 0;
    h.aux_len = 0;
    h._pad = 0;
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    h
}

/// Copies a user string into the path area; returns its length without NUL.
#[inline(always)]
pub(crate) fn read_user_path(buf: *mut u8, h: &mut EventHeader, src: u64) -> usize {
    // SAFETY: destination is the path area of the scratch buffer, PATH_READ bytes.
    let n = unsafe {
        bpf_probe_read_user_str(
            buf.add(HDR) as *mut c_void,
            PATH_READ as u32,
            src as *const c_void,
        )
    };
    if n <= 0 {
        h.flags |= EVENT_READ_FAILED;
        return 0;
    }
    let mut len = (n as usize) - 1;
    if len > MAX_PATH {
        len = MAX_PATH;
    }
    if n as usize >= PATH_READ {
        h.flags |= EVENT_TRUNCATED;
    }
    h.path_len = len as u32;
    len
}

/// Sends `HDR + path_len + aux_len` bytes of the scratch buffer.
#[inline(always)]
pub(crate) fn submit(buf: *mut u8, session: u64) {
    // SAFETY: header was filled by `header`.
    let h = unsafe { &*(buf as *const EventHeader) };
    let total = HDR + h.path_len as usize + h.aux_len as usize;
    if total > SCRATCH_SIZE {
        return;
    }
    // SAFETY: total <= SCRATCH_SIZE bytes of the scratch value.
    let bytes = unsafe { core::slice::from_raw_parts(buf as *const u8, total) };
    let st = stats(session);
    match EVENTS.output::<[u8]>(bytes, 0) {
        Ok(()) => {
            if let Some(st) = st {
                st.records += 1;
            }
        }
        Err(_) => {
            if let Some(st) = st {
                st.lost += 1;
            }
        }
    }
}
