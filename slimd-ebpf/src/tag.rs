//! The tag check: which session, if any, the current task belongs to.

use aya_ebpf::helpers::bpf_get_current_ancestor_cgroup_id;
use slimd_common::TagFilter;

use crate::maps::{TAG_FILTER, TAGS, config};

/// The session of the current task, if one of its ancestor cgroups is tagged.
#[inline(always)]
pub(crate) fn current_session() -> Option<u64> {
    let levels = config().tag_levels;
    let filter = TAG_FILTER.get_ptr(0)?;
    let mut level = 1;
    while level < 16 {
        if levels & (1 << level) != 0 {
            // SAFETY: helper call with a plain integer argument.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level) };
            if id != 0 {
                let bit = TagFilter::bit(id);
                // SAFETY: the array value lives as long as the map; bit < TAG_FILTER_BITS.
                let word = unsafe { (*filter).words[(bit / 64) as usize & 63] };
                if (word >> (bit % 64)) & 1 != 0 {
                    // SAFETY: value copied out at once.
                    if let Some(info) = unsafe { TAGS.get(&id) } {
                        return Some(info.session);
                    }
                }
            }
        }
        level += 1;
    }
    None
}
