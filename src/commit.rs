//! Group commit for event writes.
//!
//! Every `RecordEvents` call is acknowledged only after its events are on
//! disk. Flushing per call makes each call pay a whole `fsync`, and concurrent
//! sled transactions over the same relationships conflict and retry. So calls
//! queue their batches to one writer thread, which takes everything queued,
//! writes it in one transaction ([`Store::record_event_batches`]), flushes
//! once and then answers every caller in the group. While it flushes, the
//! next group gathers. The thread also keeps the blocking sled work off the
//! async workers.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::domain::IncomingEvent;
use crate::error::{Error, Result};
use crate::store::Store;

/// A group closes once it holds this many events (the queue is then left for
/// the next group), so one transaction stays a few milliseconds of work.
const GROUP_EVENTS: usize = 20_000;

struct Job {
    batch: Vec<IncomingEvent>,
    done: oneshot::Sender<Result<usize>>,
}

/// Handle to the writer thread. Dropping it lets the thread finish the
/// groups already queued and waits for it, so the store is closed after.
pub struct EventWriter {
    queue: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl EventWriter {
    /// # Errors
    /// `Io` when the thread cannot be started.
    pub fn start(store: Store) -> Result<EventWriter> {
        let (queue, jobs) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("rapport-writer".into())
            .spawn(move || write_groups(&store, &jobs))?;
        Ok(EventWriter {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Records `batch` (checked by the caller) and returns once it is durable.
    ///
    /// # Errors
    /// `NotFound` for an unknown relationship (nothing of the batch is
    /// written); `Storage` when the write or the flush failed.
    pub async fn write(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        let (done, answer) = oneshot::channel();
        let stopped = || Error::Io(std::io::Error::other("the event writer has stopped"));
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { batch, done })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_groups(store: &Store, jobs: &mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut events = first.batch.len();
        let mut group = vec![first];
        while events < GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.batch.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let batches: Vec<&[IncomingEvent]> = group.iter().map(|j| j.batch.as_slice()).collect();
        let written = store.record_event_batches(&batches).and_then(|results| {
            if results.iter().any(Result::is_ok) {
                store.flush_blocking()?;
            }
            Ok(results)
        });
        match written {
            Ok(results) => {
                for (job, result) in group.into_iter().zip(results) {
                    let _ = job.done.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event write failed");
                for job in group {
                    let _ = job.done.send(Err(e.duplicate()));
                }
            }
        }
    }
}
