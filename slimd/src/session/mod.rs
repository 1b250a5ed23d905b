//! One build or profile from start to end: phases, cancellation, cleanup,
//! the report. The conductor: it calls the other modules; they never call it.

use std::time::{SystemTime, UNIX_EPOCH};

/// A fresh session id: short, sortable by time, safe as a cgroup name,
/// label value and directory name.
pub fn new_session_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let mut rnd = [0u8; 4];
    // SAFETY: getrandom writes at most rnd.len() bytes into rnd.
    let n = unsafe { libc::getrandom(rnd.as_mut_ptr().cast(), rnd.len(), 0) };
    if n != rnd.len() as isize {
        rnd = (std::process::id() ^ now.subsec_nanos()).to_le_bytes();
    }
    format!("{:x}-{}", now.as_secs(), hex::encode(rnd))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_plain() {
        let a = super::new_session_id();
        let b = super::new_session_id();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }
}
