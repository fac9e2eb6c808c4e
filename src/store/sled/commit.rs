//! Group commit for event writes.
//!
//! Every `RecordEvents` call is acknowledged only after its events are on
//! disk. Flushing per call makes each call pay a whole `fsync`, and concurrent
//! sled transactions over the same relationships conflict and retry. So calls
//! queue their batches to the writer, which takes everything queued, writes
//! it as one sled batch, flushes once and then answers every caller in the
//! group.
//!
//! The writer is two threads in a pipeline: one folds a group's events into
//! aggregates and encodes them ([`Store::prepare_event_batches`]), the other
//! applies the group to sled, flushes and answers
//! ([`PreparedEvents::apply`]). Applying was two thirds of one thread's time,
//! so while one group is applied the next is prepared on the other core. The
//! threads also keep the blocking sled work off the async workers.

use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::domain::{EventFold, IncomingEvent};
use crate::error::{Error, Result};
use crate::store::sled::{PreparedEvents, SledBook};

/// A group closes once it holds this many events (the queue is then left for
/// the next group), so one group stays a few milliseconds of work.
const GROUP_EVENTS: usize = 20_000;

struct Job {
    batch: Vec<IncomingEvent>,
    done: oneshot::Sender<Result<usize>>,
}

/// A group on its way from the preparing thread to the applying one.
struct Prepared<A: EventFold> {
    events: PreparedEvents<A>,
    results: Vec<Result<usize>>,
    answers: Vec<oneshot::Sender<Result<usize>>>,
}

/// Handle to the writer threads. Dropping it lets them finish the groups
/// already queued and waits for them, so the store is closed after.
pub struct EventWriter {
    queue: Option<mpsc::Sender<Job>>,
    /// How long a caller waits for its group to be on disk.
    timeout: std::time::Duration,
    threads: Vec<JoinHandle<()>>,
}

impl EventWriter {
    /// # Errors
    /// `Io` when a thread cannot be started.
    pub fn start<A: EventFold>(store: SledBook<A>) -> Result<EventWriter> {
        let timeout = store.options.write_timeout;
        let (queue, jobs) = mpsc::channel();
        // One group applied, one prepared and waiting: enough to keep both
        // threads busy without folding far ahead of sled.
        let (prepared_tx, prepared_rx) = mpsc::sync_channel(1);
        let applier = std::thread::Builder::new()
            .name("rapport-apply".into())
            .spawn({
                let store = store.clone();
                move || apply_groups(&store, &prepared_rx)
            })?;
        let preparer = std::thread::Builder::new()
            .name("rapport-writer".into())
            .spawn(move || prepare_groups(&store, &jobs, &prepared_tx))?;
        Ok(EventWriter {
            timeout,
            queue: Some(queue),
            // The preparer first: its end closes the applier's queue.
            threads: vec![preparer, applier],
        })
    }

    /// Records `batch` (checked by the caller) and returns once it is durable.
    ///
    /// # Errors
    /// `NotFound` for an unknown relationship (nothing of the batch is
    /// written); `Storage` when the write or the flush failed.
    pub async fn write(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        let (done, answer) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { batch, done })
            .map_err(|_| stopped())?;
        if tokio::runtime::Handle::try_current().is_err() {
            // A caller outside tokio (the CLI's loaders, through pollster) has no timer.
            return answer.await.map_err(|_| stopped())?;
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(answer) => answer.map_err(|_| stopped())?,
            Err(_) => Err(Error::Unavailable {
                reason: format!(
                    "the write was not on disk within {} s; it may or may not be written",
                    self.timeout.as_secs_f64()
                ),
            }),
        }
    }
}

fn stopped() -> Error {
    Error::Io(std::io::Error::other("the event writer has stopped"))
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        drop(self.queue.take());
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn prepare_groups<A: EventFold>(
    store: &SledBook<A>,
    jobs: &mpsc::Receiver<Job>,
    applier: &mpsc::SyncSender<Prepared<A>>,
) {
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
        metrics::histogram!("rapport_commit_group_events").record(events as f64);
        let batches: Vec<&[IncomingEvent]> = group.iter().map(|j| j.batch.as_slice()).collect();
        let prepared = store.prepare_event_batches(&batches);
        drop(batches);
        let answers = group.into_iter().map(|job| job.done);
        match prepared {
            Ok((events, results)) => {
                let prepared = Prepared {
                    events,
                    results,
                    answers: answers.collect(),
                };
                if let Err(mpsc::SendError(prepared)) = applier.send(prepared) {
                    for answer in prepared.answers {
                        let _ = answer.send(Err(stopped()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "preparing events failed");
                for answer in answers {
                    let _ = answer.send(Err(e.duplicate()));
                }
            }
        }
    }
}

fn apply_groups<A: EventFold>(store: &SledBook<A>, groups: &mpsc::Receiver<Prepared<A>>) {
    while let Ok(Prepared {
        events,
        results,
        answers,
    }) = groups.recv()
    {
        let started = std::time::Instant::now();
        let written = events.apply().and_then(|()| {
            if results.iter().any(Result::is_ok) {
                store.flush_blocking()?;
            }
            Ok(results)
        });
        metrics::histogram!("rapport_commit_flush_seconds").record(started.elapsed().as_secs_f64());
        match written {
            Ok(results) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "event write failed");
                for answer in answers {
                    let _ = answer.send(Err(e.duplicate()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{Event, EventBody, Relationship, RelationshipKind};
    use crate::features::Aggregates;
    use crate::store::sled::SledOptions;

    fn purchase(id: &str, at: i64) -> IncomingEvent {
        IncomingEvent {
            relationship_id: id.into(),
            event: Event {
                at,
                body: EventBody::Purchase {
                    amount: 1.0,
                    product_ids: vec![],
                    quantity: 1,
                },
            },
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_each_get_their_own_answer_and_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: SledBook<Aggregates> =
            SledBook::open(dir.path(), SledOptions::default()).unwrap();
        for id in ["a", "b"] {
            store
                .upsert_relationship(&Relationship {
                    id: id.into(),
                    kind: RelationshipKind::Customer,
                    created_at: 0,
                    attributes: BTreeMap::new(),
                })
                .unwrap();
        }
        let writer = std::sync::Arc::new(EventWriter::start(store.clone()).unwrap());
        let calls: Vec<_> = (0..32)
            .map(|call| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    // Every eighth call names an unknown relationship and must fail alone.
                    let last = if call % 8 == 7 { "ghost" } else { "b" };
                    let batch = (0..49)
                        .map(|i| purchase("a", call * 100 + i))
                        .chain(std::iter::once(purchase(last, call * 100 + 99)))
                        .collect();
                    writer.write(batch).await
                })
            })
            .collect();
        let mut written = 0;
        for (call, handle) in calls.into_iter().enumerate() {
            match handle.await.unwrap() {
                Ok(n) => {
                    assert_ne!(call % 8, 7, "call {call} named an unknown id");
                    written += n;
                }
                Err(Error::NotFound { id, .. }) => {
                    assert_eq!((call % 8, id.as_str()), (7, "ghost"))
                }
                Err(e) => panic!("call {call}: {e}"),
            }
        }
        drop(writer);
        assert_eq!(written, 28 * 50);
        let a = store.aggregates("a").unwrap().unwrap();
        let b = store.aggregates("b").unwrap().unwrap();
        assert_eq!((a.event_count, b.event_count), (28 * 49, 28));
        assert_eq!(store.event_count(), written);
    }
}
