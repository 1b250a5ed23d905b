//! The event collector of a traced container: takes every event the tracer
//! delivers for the session as it arrives, keeps them for the analysis (or
//! not, for a verify run), and publishes the addresses the app listens on
//! the moment it does (what readiness waits for) and the processes that
//! exited (how verify knows a server died).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::probe::ListenFeed;
use crate::resolve::ListenTracker;
use crate::tracer::{EventData, TraceEvent};

/// What a collector hands back once the event stream ends.
pub struct Collected {
    /// Every event, when asked to keep them.
    pub events: Vec<TraceEvent>,
    pub listen: ListenTracker,
}

/// A running collector.
pub struct Collector {
    task: JoinHandle<Collected>,
    feed: ListenFeed,
    exits: watch::Receiver<BTreeSet<u32>>,
    /// When the last event arrived.
    last: Arc<Mutex<Instant>>,
}

impl Collector {
    /// Starts collecting `events` on the current runtime.
    pub fn spawn(mut events: mpsc::UnboundedReceiver<TraceEvent>, keep_events: bool) -> Self {
        let (tx, feed) = watch::channel(Vec::<SocketAddr>::new());
        let (exits_tx, exits) = watch::channel(BTreeSet::new());
        let last = Arc::new(Mutex::new(Instant::now()));
        let last_seen = last.clone();
        let task = tokio::spawn(async move {
            let mut out = Collected {
                events: Vec::new(),
                listen: ListenTracker::new(),
            };
            while let Some(e) = events.recv().await {
                *last_seen.lock().unwrap() = Instant::now();
                if let Some(l) = out.listen.feed(&e) {
                    let addr = SocketAddr::new(l.ip, l.port);
                    tx.send_modify(|v| {
                        if !v.contains(&addr) {
                            v.push(addr);
                        }
                    });
                }
                if let EventData::Exit { group_dead: true } = e.data {
                    exits_tx.send_modify(|s| {
                        s.insert(e.tgid);
                    });
                }
                if keep_events {
                    out.events.push(e);
                }
            }
            out
        });
        Collector {
            task,
            feed,
            exits,
            last,
        }
    }

    /// The listening addresses so far, updated as events arrive.
    pub fn feed(&self) -> ListenFeed {
        self.feed.clone()
    }

    /// Whether host process `tgid` has exited (as far as events delivered
    /// so far tell).
    pub fn exited(&self, tgid: u32) -> bool {
        self.exits.borrow().contains(&tgid)
    }

    /// Waits until the app has been quiet (no traced syscall) for `quiet`,
    /// at most until `max` from now: what a request set off (a lazy import,
    /// an exit right after answering) has happened by then. `flush`
    /// delivers what the kernel recorded so far.
    pub async fn settle<F, Fut>(&self, flush: F, quiet: Duration, max: Duration)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let end = Instant::now() + max;
        loop {
            flush().await;
            let idle = self.last.lock().unwrap().elapsed();
            let now = Instant::now();
            if idle >= quiet || now >= end {
                return;
            }
            tokio::time::sleep((quiet - idle).min(end - now)).await;
        }
    }

    /// Waits for the end of the event stream (the trace session finished).
    pub async fn finish(self) -> Result<Collected, tokio::task::JoinError> {
        self.task.await
    }
}
