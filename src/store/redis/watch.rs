//! What other replicas changed: their invalidations, which keep this
//! process's read cache honest, and their promotions, which the server
//! follows (see "Other replicas' writes" in the module above).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::{PushInfo, PushKind};

use crate::domain::EventFold;
use crate::error::Result;
use crate::store::cache::ReadCache;
use crate::store::redis::cluster::{self, parse, Cluster};
use crate::store::redis::keys::Keys;
use crate::store::redis::RedisOptions;
use crate::store::Decoded;

/// How often the active pointers are read, whatever pub/sub says: a
/// promotion whose message was lost is still served within this.
pub const ACTIVE_POLL: Duration = Duration::from_millis(500);

/// The read cache and the signals the subscription keeps.
pub struct Followed<A> {
    pub cache: ReadCache<Decoded<A>>,
    /// Whether invalidations are arriving: while not, nothing is cached,
    /// since a write elsewhere might go unannounced.
    pub live: AtomicBool,
    /// Bumped when the active versions may have changed.
    pub changes: tokio::sync::watch::Sender<u64>,
}

impl<A> Followed<A> {
    pub fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }
}

/// A message announcing writes: the sender, then what it changed.
pub enum Announcement<'a> {
    /// These relationships changed.
    Changed(&'a [String]),
    /// The whole book changed (cleared).
    Cleared,
}

/// `<sender>\n<I|C>\n<id>\n<id>...`: ids never hold control characters.
pub fn encode(sender: &str, what: Announcement<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(sender.len() + 3);
    out.extend_from_slice(sender.as_bytes());
    match what {
        Announcement::Cleared => out.extend_from_slice(b"\nC"),
        Announcement::Changed(ids) => {
            out.extend_from_slice(b"\nI");
            for id in ids {
                out.push(b'\n');
                out.extend_from_slice(id.as_bytes());
            }
        }
    }
    out
}

/// Subscribes to the namespace's channels and starts the tasks that follow
/// them and poll the active pointers, on the store's runtime.
///
/// # Errors
/// `Redis` when the subscription cannot be made.
pub fn start<A: EventFold>(
    cluster: &Cluster,
    options: &RedisOptions,
    keys: &Keys,
    instance: &str,
    followed: Arc<Followed<A>>,
) -> Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = cluster::subscriber(options, tx)?;
    let invalidations = keys.channel("invalidate");
    let promotions = keys.channel("models");
    let connection = cluster.block({
        let channels = [invalidations.clone(), promotions.clone()];
        async move {
            let mut connection = client.get_async_connection().await?;
            connection.subscribe(&channels).await?;
            Ok(connection)
        }
    })?;
    followed.live.store(true, Ordering::SeqCst);
    let instance = instance.to_string();
    let on_messages = Arc::clone(&followed);
    cluster.handle().spawn(async move {
        // Holding the connection keeps the subscription.
        let _connection = connection;
        while let Some(push) = rx.recv().await {
            on_push(&on_messages, &instance, &invalidations, &promotions, push);
        }
    });
    let reader = cluster.reader();
    let active = keys.meta("active");
    cluster.handle().spawn(async move {
        let mut reader = reader;
        let mut seen: Option<Vec<(Vec<u8>, Vec<u8>)>> = None;
        let mut tick = tokio::time::interval(ACTIVE_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let read: redis::RedisResult<Vec<(Vec<u8>, Vec<u8>)>> = redis::cmd("HGETALL")
                .arg(&active)
                .query_async(&mut reader)
                .await;
            let now = match read {
                Ok(mut pointers) => {
                    pointers.sort_unstable();
                    pointers
                }
                Err(e) => {
                    tracing::debug!(error = %e, "could not read the active model pointers");
                    continue;
                }
            };
            if seen.as_ref().is_some_and(|seen| *seen != now) {
                followed.bump();
            }
            seen = Some(now);
        }
    });
    Ok(())
}

fn on_push<A: EventFold>(
    followed: &Followed<A>,
    instance: &str,
    invalidations: &str,
    promotions: &str,
    push: PushInfo,
) {
    match push.kind {
        PushKind::Message => {
            let mut data = push.data.into_iter();
            let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
                return;
            };
            let (Ok(channel), Ok(payload)) = (parse::<String>(channel), parse::<Vec<u8>>(payload))
            else {
                return;
            };
            let mut lines = payload.split(|b| *b == b'\n');
            let sender = lines.next().unwrap_or_default();
            if sender == instance.as_bytes() {
                // Our own write: the cache was invalidated before it was acknowledged.
                return;
            }
            if channel == promotions {
                followed.bump();
            } else if channel == invalidations {
                match lines.next() {
                    Some(b"I") => {
                        for id in lines {
                            followed.cache.invalidate(&String::from_utf8_lossy(id));
                        }
                    }
                    _ => followed.cache.clear(),
                }
            }
        }
        PushKind::Disconnection => {
            // Messages may be lost until the subscription is made again.
            followed.live.store(false, Ordering::SeqCst);
            followed.cache.clear();
        }
        // Subscribed again after a disconnection: whatever was announced
        // meanwhile is unknown.
        PushKind::Subscribe if !followed.live.swap(true, Ordering::SeqCst) => {
            followed.cache.clear();
            followed.bump();
        }
        _ => {}
    }
}
