//! The tracer: loads slimd's kernel programs, tags and untags session
//! cgroups, and turns ring-buffer records into typed [`TraceEvent`]s.
//!
//! It knows nothing about images or container engines. One [`Tracer`] lives
//! as long as the daemon; each session calls [`Tracer::start_session`], runs
//! its container under the returned cgroup, and calls
//! [`TraceSession::finish`] to collect what is left and its counters.

pub mod cgroup;
pub mod event;
pub mod features;
mod loader;
pub mod syscalls;
pub mod tracefs;

use std::{
    collections::{BTreeSet, HashMap},
    io,
    os::fd::AsFd,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use aya::{
    maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::ProgramError,
};
use serde::Serialize;
use slimd_common::{
    SessionStats, SyscallSet, TagFilter, TagInfo, WATCH_PREFIX_LEN, WATCH_PREFIXES,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::{mpsc, oneshot},
};

pub use cgroup::{CgroupHost, CgroupMode, SessionCgroup};
pub use event::{EventData, RawPath, SockAddr, TraceEvent};
pub use loader::TracerOptions;

/// Why the tracer could not do what was asked. Each variant keeps the
/// error it comes from as its `source()`; the message repeats that error's
/// text (and, for aya's, the sources behind it: the verifier's log, the
/// errno), so a message read on its own says everything.
#[derive(Debug, thiserror::Error)]
pub enum TracerError {
    #[error(
        "this slimd binary was built without its eBPF object (the `ebpf` feature was off): build it with `cargo xtask build` (after `cargo xtask setup`)"
    )]
    NoObject,
    #[error(
        "the kernel has no BTF (/sys/kernel/btf/vmlinux is missing): slimd needs Linux >= 5.8 built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf,
    /// Capabilities are missing (`source` is None: found before any bpf()
    /// call), or the kernel refused a bpf() call with EPERM.
    #[error(
        "not allowed to load eBPF programs ({detail}): run slimd as root, or give it CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN"
    )]
    NoPrivilege {
        detail: String,
        #[source]
        source: Option<AyaError>,
    },
    #[error("tracefs is not mounted at /sys/kernel/tracing and mounting it failed: {0}")]
    Tracefs(#[source] io::Error),
    /// A tracepoint's format file could not be read.
    #[error("tracepoint format {path}: {source}")]
    FormatRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A tracepoint's record lacks a field the programs read, or has it at
    /// another size.
    #[error("tracepoint format {path}: {msg}")]
    Format { path: PathBuf, msg: String },
    #[error("no cgroup2 hierarchy in /proc/self/mountinfo: slimd tags sessions by cgroup v2 id")]
    NoCgroup2,
    #[error("cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The watch prefixes asked for do not fit the kernel side's table.
    #[error(
        "loading the eBPF object failed: at most {WATCH_PREFIXES} watch prefixes of 1 to {WATCH_PREFIX_LEN} bytes"
    )]
    WatchPrefixes,
    /// No known `pt_regs` layout for the raw `sys_enter` program.
    #[error(
        "loading the eBPF object failed: slimd knows the syscall register layout of x86_64 and aarch64 only"
    )]
    UnsupportedArch,
    /// aya could not load the object (parsing, BTF, relocations, maps).
    /// Boxed: aya's error is large, and every `Result` here would carry it.
    #[error("loading the eBPF object failed: {}", with_sources(.0.as_ref()))]
    Object(#[source] Box<aya::EbpfError>),
    /// The object lacks a program the loader needs.
    #[error("loading the eBPF object failed: program {0} missing")]
    ProgramMissing(&'static str),
    /// A program the verifier refused, or that could not be set up.
    #[error(
        "loading the eBPF object failed: program {name}: {}",
        with_sources(source)
    )]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("attaching {name} failed: {}", with_sources(source))]
    Attach {
        name: String,
        #[source]
        source: ProgramError,
    },
    /// The object lacks a map the tracer needs.
    #[error("eBPF map {name}: missing from the object")]
    MapMissing { name: &'static str },
    /// A map of the object is not of the type the tracer reads it as.
    #[error("eBPF map {name}: not a {expected}")]
    MapType {
        name: &'static str,
        expected: &'static str,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    /// The number of possible CPUs (for the per-CPU maps) is unknown.
    #[error("eBPF map STATS: {what}: {source}")]
    Cpus {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// An error from aya, whichever step it came from.
#[derive(Debug, thiserror::Error)]
pub enum AyaError {
    #[error(transparent)]
    Object(#[from] Box<aya::EbpfError>),
    #[error(transparent)]
    Program(#[from] ProgramError),
}

/// An error's message followed by those of its sources: aya keeps the
/// verifier's log and the errno there.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Counters of one session, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TraceStats {
    /// Records the kernel wrote to the ring buffer.
    pub records: u64,
    /// Events dropped in the kernel as exact repeats.
    pub deduped: u64,
    /// Records lost because the ring buffer was full.
    pub lost: u64,
    /// Syscalls not followed because too many were in flight.
    pub pending_full: u64,
    /// Records userspace received for the session.
    pub received: u64,
}

/// What a finished session leaves besides its events.
#[derive(Clone, Debug, Serialize)]
pub struct TraceSummary {
    pub stats: TraceStats,
    /// Syscall numbers the session's processes made.
    pub syscalls: BTreeSet<u32>,
}

struct Maps {
    tags: BpfHashMap<MapData, u64, TagInfo>,
    filter: Array<MapData, TagFilter>,
    stats: PerCpuHashMap<MapData, u64, SessionStats>,
    syscall_sets: PerCpuHashMap<MapData, u64, SyscallSet>,
}

struct Shared {
    maps: Mutex<Maps>,
    subscribers: Mutex<HashMap<u64, Subscriber>>,
    /// Watch mode: cgroups the kernel tagged on creation, with their events
    /// so far, until userspace adopts or drops them. Locked after
    /// `subscribers`, never before.
    pending: Mutex<HashMap<u64, PendingTag>>,
    watch_tx: mpsc::UnboundedSender<NewCgroup>,
    decode_errors: AtomicU64,
    nr_cpus: usize,
    /// Watch mode: the kernel may tag a cgroup at any time, so the ring
    /// buffer stays mapped.
    always_mapped: bool,
}

impl Shared {
    /// Whether anyone is waiting for records.
    fn needs_ring(&self) -> bool {
        self.always_mapped
            || !self.subscribers.lock().unwrap().is_empty()
            || !self.pending.lock().unwrap().is_empty()
    }
}

/// Events of a provisional tag not yet adopted.
struct PendingTag {
    events: Vec<TraceEvent>,
    since: std::time::Instant,
    dropped: u64,
}

/// At most this many events are held for an undecided cgroup.
const MAX_PENDING_EVENTS: usize = 1 << 18;

/// Watch mode: a cgroup the kernel tagged when it was created.
#[derive(Clone, Debug)]
pub struct NewCgroup {
    pub id: u64,
    pub level: u32,
    /// Path in the cgroup2 hierarchy, e.g. `/docker/<container id>`.
    pub path: String,
}

struct Subscriber {
    tx: mpsc::UnboundedSender<TraceEvent>,
    received: u64,
}

/// The loaded kernel programs and their reader. Cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    shared: Arc<Shared>,
    watch_rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<NewCgroup>>>>,
    reader: mpsc::UnboundedSender<ReaderCmd>,
    /// The reader task, joined by [`Tracer::stop`].
    reader_task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    info: Arc<TracerInfo>,
    // Programs and their links stay attached while this lives.
    _programs: Arc<loader::Loaded>,
}

/// What was loaded, for `slim status` and reports.
#[derive(Clone, Debug, Serialize)]
pub struct TracerInfo {
    pub tracepoints: Vec<String>,
    pub cgroups: CgroupHost,
    pub ring_buffer_bytes: u32,
    pub kernel: String,
}

impl Tracer {
    /// Loads and attaches the kernel programs and starts the ring-buffer
    /// reader on the current tokio runtime.
    pub fn load(opts: TracerOptions) -> Result<Self, TracerError> {
        let mut loaded = loader::load(&opts)?;
        let maps = Maps {
            tags: take_map(&mut loaded.ebpf, "TAGS")?,
            filter: take_map(&mut loaded.ebpf, "TAG_FILTER")?,
            stats: take_map(&mut loaded.ebpf, "STATS")?,
            syscall_sets: take_map(&mut loaded.ebpf, "SYSCALL_SETS")?,
        };
        let ring = match loaded.ebpf.take_map("EVENTS") {
            Some(aya::maps::Map::RingBuf(data)) => data,
            Some(_) => {
                return Err(TracerError::MapType {
                    name: "EVENTS",
                    expected: "ring buffer",
                });
            }
            None => return Err(TracerError::MapMissing { name: "EVENTS" }),
        };
        let nr_cpus =
            aya::util::nr_cpus().map_err(|(what, source)| TracerError::Cpus { what, source })?;
        let (watch_tx, watch_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            maps: Mutex::new(maps),
            subscribers: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            watch_tx,
            decode_errors: AtomicU64::new(0),
            nr_cpus,
            always_mapped: !opts.watch_prefixes.is_empty(),
        });
        // Map it once now, so that a kernel that refuses the mapping fails
        // the load rather than the first session.
        drop(map_ring(&ring)?);
        let (reader, reader_rx) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_loop(ring, reader_rx, shared.clone()));
        if shared.always_mapped {
            let _ = reader.send(ReaderCmd::Wake);
        }
        let info = TracerInfo {
            tracepoints: loaded.attached.clone(),
            cgroups: loaded.cgroups.clone(),
            ring_buffer_bytes: opts.ring_bytes,
            kernel: loader::kernel_release(),
        };
        Ok(Self {
            shared,
            watch_rx: Arc::new(Mutex::new(Some(watch_rx))),
            reader,
            reader_task: Arc::new(Mutex::new(Some(reader_task))),
            info: Arc::new(info),
            _programs: Arc::new(loaded),
        })
    }

    /// Stops the ring-buffer reader after it delivered what is in the ring
    /// buffer, and waits for it. Sessions started afterwards get no events:
    /// call it last, when the daemon shuts down.
    pub async fn stop(&self) {
        let _ = self.flush().await;
        let _ = self.reader.send(ReaderCmd::Stop);
        let task = self.reader_task.lock().unwrap().take();
        if let Some(t) = task
            && let Err(e) = t.await
        {
            tracing::warn!("the ring-buffer reader ended badly: {e}");
        }
    }

    pub fn info(&self) -> &TracerInfo {
        &self.info
    }

    /// Creates the session's cgroup, subscribes to its events and tags it —
    /// in that order, so nothing the container does can be missed. Start the
    /// container with `CgroupParent = session.cgroup.parent`.
    pub fn start_session(
        &self,
        root_name: &str,
        session: &str,
    ) -> Result<TraceSession, TracerError> {
        let cg = self.info.cgroups.create_session(root_name, session)?;
        match self.tag(cg.id) {
            Ok(events) => Ok(TraceSession {
                tracer: self.clone(),
                cgroup: cg,
                root_name: root_name.to_string(),
                name: session.to_string(),
                events: Some(events),
                owned: true,
            }),
            Err(e) => {
                let _ = self.info.cgroups.remove_session(root_name, session);
                Err(e)
            }
        }
    }

    /// Tags a cgroup id: its processes (and those of its descendants at the
    /// configured levels) are traced from now on.
    pub fn tag(&self, cgroup_id: u64) -> Result<mpsc::UnboundedReceiver<TraceEvent>, TracerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared
            .subscribers
            .lock()
            .unwrap()
            .insert(cgroup_id, Subscriber { tx, received: 0 });
        let _ = self.reader.send(ReaderCmd::Wake);
        let result = self.tag_maps(cgroup_id);
        if result.is_err() {
            self.untag(cgroup_id);
        }
        result.map(|()| rx)
    }

    fn tag_maps(&self, id: u64) -> Result<(), TracerError> {
        let n = self.shared.nr_cpus;
        let mut m = self.shared.maps.lock().unwrap();
        let zero_stats = PerCpuValues::try_from(vec![SessionStats::default(); n]).unwrap();
        m.stats
            .insert(id, zero_stats, 0)
            .map_err(|e| map_err("STATS", e))?;
        let zero_set = SyscallSet {
            words: [0; slimd_common::SYSCALL_WORDS],
        };
        let zero_sets = PerCpuValues::try_from(vec![zero_set; n]).unwrap();
        m.syscall_sets
            .insert(id, zero_sets, 0)
            .map_err(|e| map_err("SYSCALL_SETS", e))?;
        m.tags
            .insert(
                id,
                TagInfo {
                    session: id,
                    flags: 0,
                },
                0,
            )
            .map_err(|e| map_err("TAGS", e))?;
        write_filter(&mut m)
    }

    /// Stops tracing a cgroup and forgets its counters.
    pub fn untag(&self, cgroup_id: u64) {
        {
            let mut m = self.shared.maps.lock().unwrap();
            let _ = m.tags.remove(&cgroup_id);
            let _ = write_filter(&mut m);
            let _ = m.stats.remove(&cgroup_id);
            let _ = m.syscall_sets.remove(&cgroup_id);
        }
        self.shared.subscribers.lock().unwrap().remove(&cgroup_id);
        let _ = self.reader.send(ReaderCmd::Sleep);
    }

    /// Waits until every record already in the ring buffer has been
    /// delivered to its subscriber. False when the ring buffer could not be
    /// read: what the kernel wrote did not reach anyone.
    pub async fn flush(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.reader.send(ReaderCmd::Flush(tx)).is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Counters of a tagged cgroup.
    pub fn stats(&self, cgroup_id: u64) -> TraceStats {
        let mut out = TraceStats::default();
        if let Ok(values) = self.shared.maps.lock().unwrap().stats.get(&cgroup_id, 0) {
            for v in values.iter() {
                out.records += v.records;
                out.deduped += v.deduped;
                out.lost += v.lost;
                out.pending_full += v.pending_full;
            }
        }
        if let Some(s) = self.shared.subscribers.lock().unwrap().get(&cgroup_id) {
            out.received = s.received;
        }
        out
    }

    /// Syscall numbers a tagged cgroup's processes made.
    pub fn syscalls(&self, cgroup_id: u64) -> BTreeSet<u32> {
        let mut set = BTreeSet::new();
        if let Ok(values) = self
            .shared
            .maps
            .lock()
            .unwrap()
            .syscall_sets
            .get(&cgroup_id, 0)
        {
            for v in values.iter() {
                for (w, word) in v.words.iter().enumerate() {
                    for bit in 0..64 {
                        if word & (1 << bit) != 0 {
                            set.insert((w * 64 + bit) as u32);
                        }
                    }
                }
            }
        }
        set
    }

    /// Records that did not decode (should stay 0).
    pub fn decode_errors(&self) -> u64 {
        self.shared.decode_errors.load(Ordering::Relaxed)
    }

    pub fn cgroups(&self) -> &CgroupHost {
        &self.info.cgroups
    }

    /// Watch mode: new tagged cgroups, as the kernel reports them (taken once).
    pub fn take_watch(&self) -> Option<mpsc::UnboundedReceiver<NewCgroup>> {
        self.watch_rx.lock().unwrap().take()
    }

    /// Watch mode: keeps tracing a provisionally tagged cgroup; its events
    /// so far are delivered first.
    pub fn adopt(&self, c: &NewCgroup, name: &str) -> Result<TraceSession, TracerError> {
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut subs = self.shared.subscribers.lock().unwrap();
            let mut pending = self.shared.pending.lock().unwrap();
            let held = pending.remove(&c.id);
            let mut received = 0;
            if let Some(p) = held {
                if p.dropped > 0 {
                    tracing::warn!(cgroup = %c.path, "{} early events were dropped while undecided", p.dropped);
                }
                for e in p.events {
                    received += 1;
                    let _ = tx.send(e);
                }
            }
            subs.insert(c.id, Subscriber { tx, received });
        }
        let _ = self.reader.send(ReaderCmd::Wake);
        let tag = TagInfo {
            session: c.id,
            flags: 0,
        };
        self.shared
            .maps
            .lock()
            .unwrap()
            .tags
            .insert(c.id, tag, 0)
            .map_err(|e| map_err("TAGS", e))?;
        let level = c.path.matches('/').count() as u32;
        Ok(TraceSession {
            tracer: self.clone(),
            cgroup: SessionCgroup {
                path: self
                    .info
                    .cgroups
                    .v2_mount
                    .join(c.path.trim_start_matches('/')),
                parent: c.path.clone(),
                id: c.id,
                level,
            },
            root_name: String::new(),
            name: name.to_string(),
            events: Some(rx),
            owned: false,
        })
    }

    /// Watch mode: stops tracing a provisionally tagged cgroup.
    pub fn reject(&self, id: u64) {
        self.untag(id);
        self.shared.pending.lock().unwrap().remove(&id);
    }

    /// Drops provisional tags nobody decided on within `age`.
    pub fn sweep_pending(&self, age: std::time::Duration) -> Vec<u64> {
        let old: Vec<u64> = self
            .shared
            .pending
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p.since.elapsed() > age)
            .map(|(id, _)| *id)
            .collect();
        for id in &old {
            self.reject(*id);
        }
        old
    }
}

/// One session's tag, cgroup and event stream.
pub struct TraceSession {
    tracer: Tracer,
    pub cgroup: SessionCgroup,
    root_name: String,
    name: String,
    events: Option<mpsc::UnboundedReceiver<TraceEvent>>,
    /// slimd made the cgroup (false: the runtime's, in watch mode).
    owned: bool,
}

impl TraceSession {
    /// The event stream (taken once).
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<TraceEvent>> {
        self.events.take()
    }

    /// Counters so far.
    pub fn stats(&self) -> TraceStats {
        self.tracer.stats(self.cgroup.id)
    }

    /// Delivers every record already in the ring buffer (see
    /// [`Tracer::flush`]): what happened until now is in the event stream.
    pub async fn flush(&self) -> bool {
        self.tracer.flush().await
    }

    /// Delivers what is still in the ring buffer, reads the counters, and
    /// untags. The event receiver then ends once drained.
    pub async fn finish(&self) -> TraceSummary {
        let readable = self.tracer.flush().await;
        let mut stats = self.tracer.stats(self.cgroup.id);
        if !readable {
            // Written by the kernel, never read: lost as surely as records
            // a full ring refused, and reported the same way.
            stats.lost += stats.records.saturating_sub(stats.received);
        }
        let summary = TraceSummary {
            stats,
            syscalls: self.tracer.syscalls(self.cgroup.id),
        };
        self.tracer.untag(self.cgroup.id);
        summary
    }

    /// Removes the session's cgroups (after its container is gone); a
    /// watched container's cgroup belongs to its runtime and stays.
    pub fn remove_cgroup(&self) -> Result<(), TracerError> {
        if !self.owned {
            return Ok(());
        }
        self.tracer
            .info
            .cgroups
            .remove_session(&self.root_name, &self.name)
    }
}

impl Drop for TraceSession {
    fn drop(&mut self) {
        // Untagging twice is harmless; this covers cancelled sessions.
        self.tracer.untag(self.cgroup.id);
    }
}

fn write_filter(m: &mut Maps) -> Result<(), TracerError> {
    let mut f = TagFilter::empty();
    for id in m.tags.keys().flatten() {
        f.set(id);
    }
    m.filter.set(0, f, 0).map_err(|e| map_err("TAG_FILTER", e))
}

pub(super) fn map_err(name: &'static str, source: MapError) -> TracerError {
    TracerError::Map { name, source }
}

fn take_map<T>(ebpf: &mut aya::Ebpf, name: &'static str) -> Result<T, TracerError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf
        .take_map(name)
        .ok_or(TracerError::MapMissing { name })?;
    T::try_from(map).map_err(|e| map_err(name, e))
}

/// What the ring-buffer reader is asked to do.
enum ReaderCmd {
    /// A session was tagged: map the ring buffer if it is not mapped.
    Wake,
    /// A session ended: unmap the ring buffer if nobody needs it any more.
    Sleep,
    /// Deliver everything already in the ring buffer, then answer whether
    /// it could be read.
    Flush(oneshot::Sender<bool>),
    /// End the reader (the daemon is shutting down).
    Stop,
}

/// Maps the ring buffer (a second mapping of the same kernel map) and
/// registers it with tokio.
fn map_ring(data: &MapData) -> Result<AsyncFd<RingBuf<MapData>>, TracerError> {
    let err = |e: MapError| map_err("EVENTS", e);
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| err(e.into()))?;
    let data = MapData::from_fd(fd).map_err(err)?;
    let ring = RingBuf::try_from(aya::maps::Map::RingBuf(data)).map_err(err)?;
    // SAFETY: the RingBuf owns its map fd, and the AsyncFd owns the
    // RingBuf, so the fd stays open for as long as it is registered.
    unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| err(io::Error::from(e).into()))
}

/// [`map_ring`], logging a failure (the session then reports its events as
/// lost when it finishes).
fn try_map(data: &MapData) -> Option<AsyncFd<RingBuf<MapData>>> {
    map_ring(data)
        .inspect_err(|e| tracing::error!("{e}; the sessions' events cannot be read"))
        .ok()
}

/// The one consumer of the ring buffer. It keeps the buffer mapped only
/// while a session (or watch mode) needs it: the mapping puts the whole
/// buffer, twice over, into the daemon's resident memory, which an idle
/// daemon has no reason to carry. Records written while unmapped stay in
/// the kernel's buffer and are read on the next mapping.
async fn read_loop(
    data: MapData,
    mut cmds: mpsc::UnboundedReceiver<ReaderCmd>,
    shared: Arc<Shared>,
) {
    let mut ring: Option<AsyncFd<RingBuf<MapData>>> = None;
    loop {
        let cmd = match ring.as_mut() {
            None => cmds.recv().await,
            Some(r) => {
                tokio::select! {
                    guard = r.readable_mut() => {
                        let Ok(mut guard) = guard else {
                            tracing::error!("ring buffer poll failed; tracing stopped");
                            return;
                        };
                        drain(guard.get_inner_mut(), &shared);
                        guard.clear_ready();
                        continue;
                    }
                    cmd = cmds.recv() => cmd,
                }
            }
        };
        let Some(cmd) = cmd else { return };
        match cmd {
            ReaderCmd::Wake => {
                if ring.is_none() {
                    ring = try_map(&data);
                }
            }
            ReaderCmd::Sleep => {
                if let Some(r) = ring.as_mut() {
                    drain(r.get_mut(), &shared);
                    if !shared.needs_ring() {
                        ring = None;
                    }
                }
            }
            ReaderCmd::Flush(ack) => {
                if ring.is_none() && shared.needs_ring() {
                    // A mapping that failed on Wake gets one more try.
                    ring = try_map(&data);
                }
                if let Some(r) = ring.as_mut() {
                    drain(r.get_mut(), &shared);
                }
                let _ = ack.send(ring.is_some() || !shared.needs_ring());
            }
            ReaderCmd::Stop => {
                if let Some(r) = ring.as_mut() {
                    drain(r.get_mut(), &shared);
                }
                return;
            }
        }
    }
}

fn drain(ring: &mut RingBuf<MapData>, shared: &Shared) {
    let mut subs = shared.subscribers.lock().unwrap();
    let mut pending = shared.pending.lock().unwrap();
    while let Some(rec) = ring.next() {
        match event::decode(&rec) {
            Ok(ev) => {
                if let EventData::CgroupMkdir { id, level, path } = &ev.data {
                    pending.insert(
                        *id,
                        PendingTag {
                            events: Vec::new(),
                            since: std::time::Instant::now(),
                            dropped: 0,
                        },
                    );
                    let _ = shared.watch_tx.send(NewCgroup {
                        id: *id,
                        level: *level,
                        path: path.decoded().into_owned(),
                    });
                } else if let Some(s) = subs.get_mut(&ev.session) {
                    s.received += 1;
                    let _ = s.tx.send(ev);
                } else if let Some(p) = pending.get_mut(&ev.session) {
                    if p.events.len() < MAX_PENDING_EVENTS {
                        p.events.push(ev);
                    } else {
                        p.dropped += 1;
                    }
                }
            }
            Err(e) => {
                let n = shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                if n < 10 {
                    tracing::error!("{e}");
                }
            }
        }
    }
}
