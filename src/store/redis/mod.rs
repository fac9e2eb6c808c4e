//! The Redis Cluster store: the book, the catalogue and the model registry
//! in a cluster that any number of Rapport processes share. The only module
//! that talks to Redis; it owns the key layout, the scripts and what a
//! write's acknowledgement promises. Selected with
//! `--store redis://host:port,host:port,...` (see [`RedisOptions::parse`]).
//!
//! # Key layout
//!
//! `<ns>` is the namespace (default `rapport`); `{...}` is the hash tag
//! Redis places a key by, so keys with one tag share a slot and one script
//! may write them atomically. A relationship id becomes its tag with `%`,
//! `{` and `}` percent-encoded (`keys::tag`).
//!
//! | key                        | type   | value                                                   |
//! |----------------------------|--------|---------------------------------------------------------|
//! | `<ns>:b:{<id>}:r`          | string | bincode `Relationship`                                  |
//! | `<ns>:b:{<id>}:a`          | hash   | `f` bincode fold, `v` version (random per write), `n` events so far |
//! | `<ns>:b:{<id>}:e`          | zset   | score: event time; member: sequence (8 bytes BE) ++ bincode `Event` |
//! | `<ns>:b:{<id>}:w`          | zset   | batch keys applied (score: when, ms), kept for the dedup window |
//! | `<ns>:b:{<id>}:i`          | string | the score index's entry (opaque bytes)                  |
//! | `<ns>:m:{m}:version`       | string | the last model version handed out (`INCR`)              |
//! | `<ns>:m:{m}:models`        | zset   | the stored versions                                     |
//! | `<ns>:m:{m}:active`, `previous` | hash | slot name (`default`, `customer`, ...) → version     |
//! | `<ns>:m:{m}:products`      | hash   | product id → bincode `Product`                          |
//! | `<ns>:m:{m}:latest`        | string | the latest event time written                           |
//! | `<ns>:m:{m}:demo`          | string | `loading` / `loaded`                                    |
//! | `<ns>:m:{m}:lease`         | string | who trains now (expires unless renewed)                 |
//! | `<ns>:m:{m}:notes`         | hash   | the score index's notes, name → bytes                   |
//! | `<ns>:m:{m}:probe`         | string | the last write probe's time                             |
//! | `<ns>:v:{<version>}:c:<i>` | string | the bundle, in chunks of [`MODEL_CHUNK`] bytes          |
//! | `<ns>:v:{<version>}:h`     | hash   | `n` chunks, `len` bytes: written after the chunks       |
//! | `<ns>:v:{<version>}:s`     | string | the summary (absent when empty)                         |
//! | `<ns>:v:{<version>}:x`     | hash   | the version's artifacts, name → bytes                   |
//!
//! Events of one relationship come back in time order from its sorted set;
//! the sequence number in front of each member orders events of the same
//! second as they were written. The book is spread over the cluster by
//! relationship; the `{m}` keys are small and sit on one shard.
//!
//! A relationship's index entry shares its tag, so erasing a relationship
//! ([`Store::delete_relationship`]) deletes record, fold, events, batch keys
//! and index entry in one script; the cached copies go as for any write
//! (below). The latest event time is recomputed over the book only when the
//! erased relationship held it (erasure is rare; writes stay one `RAISE`).
//!
//! There is no list of ids to keep in step with the book: a pass over it in
//! id order ([`AggregateStore::decoded_after`], training's chunks) SCANs
//! every primary for relationship keys once and sorts them. `decoded_after`
//! keeps that sorted list from a pass's first page (`after: None`) for its
//! later pages, so a pass costs one SCAN, not one per page; a relationship
//! created during a pass may be missed by it (the writer's own change notes
//! cover it), one erased is skipped.
//!
//! # Writing events
//!
//! The fold is the caller's type, computed here in Rust, so a relationship's
//! read-modify-write is a compare-and-set: read its fold and version, fold
//! the new events in, and run [`scripts::WRITE_EVENTS`], which writes events,
//! fold and a new random version only if the version is still the one read;
//! otherwise another writer (another replica) came between, and the write
//! reads and folds again. A batch's relationships are written concurrently,
//! each in one script on its own shard.
//!
//! An upsert that merges into the stored relationship
//! ([`RelationshipStore::merge_relationship`]) is a compare-and-set too, on
//! the relationship's bytes ([`scripts::UPSERT`]): two processes merging
//! into one relationship at once cannot drop each other's fields.
//!
//! A batch is known by a key hashed from its content (ids and encoded events
//! in order); each relationship's script records the key and skips a key it
//! has seen within the dedup window (an hour by default). A retried batch,
//! from a client after a crash of this process or from the Redis client after
//! a lost reply, so writes what is missing and doubles nothing. The price: an
//! identical batch sent again on purpose within the window is taken as a
//! retry. Bulk loads (demo book, CSV) get a fresh key per call, as sled's
//! loads are not idempotent either.
//!
//! # Durability
//!
//! [`EventStore::record_events`] returns once every relationship's script has
//! run on its shard's primary and `WAIT <replicas> <timeout>` on that
//! primary, on the connection that wrote, has counted enough replicas holding
//! it (one by default). Each script returns the id of the node that ran it,
//! and the `WAIT` is asked of the node now primary for the same slot together
//! with its id: if they differ, a failover came between and the write is
//! refused as not replicated rather than confirmed by the new primary. Every
//! other write is durable after [`Store::flush`], which asks the same of
//! each node written since the last flush. Each node's disk then holds it as
//! its `appendfsync` says (`everysec`: up to a second of acknowledged writes
//! can be lost if a primary and all its replicas lose power together).
//!
//! What is not promised, unlike sled's all-or-nothing group:
//! - A batch spanning shards is not atomic across them. Until it returns a
//!   reader may see some relationships' events and not others'; if it fails
//!   (a shard down, a failover, too few replicas) some relationships may keep
//!   their events: retrying the same batch completes it without doubling.
//! - A write that failed its `WAIT` is already visible on the primary, and
//!   may survive or be lost in a failover.
//! - An unknown relationship is refused before anything is written, but one
//!   deleted while the batch is written is refused alone.
//! - If the writing connection to a node was re-established between a write
//!   and its `WAIT`, the `WAIT` counts from the new connection's writes only.
//!
//! # The read cache and other replicas' writes
//!
//! [`AggregateStore::decoded`] keeps decoded relationships with their folds
//! (`RAPPORT_CACHE_MB`, see `store::cache::ReadCache`). A write invalidates
//! this process's entries before it is acknowledged, then publishes the ids
//! on `<ns>:c:invalidate`; every other process drops them when the message
//! arrives (a millisecond on a LAN). So a process reads its own writes at
//! once and others' as soon as their message arrives. While the subscription
//! is down (a node lost) nothing is cached, and the cache is emptied when it
//! returns, as messages may have been missed meanwhile.
//!
//! A promotion publishes on `<ns>:c:models`, and each process also reads the
//! active pointers every [`watch::ACTIVE_POLL`]: [`ModelRegistry::active_model_changes`]
//! fires on either, and the server then loads what they point at.
//!
//! # Training
//!
//! [`ModelRegistry::training_lease`] is `SET NX` on `<ns>:m:{m}:lease` with a
//! 30 s expiry renewed every 10 s while held, so one process trains (or
//! loads the demo book) at a time and a crashed trainer frees it within 30 s.
//! Training reads the book with SCAN on every primary, in id order.
//!
//! # The runtime
//!
//! The store's methods that block (all but `record_events` and `flush`) run
//! their Redis calls on a runtime of the store's own (`redis-io`, two
//! threads) and wait for them, so a server's async workers can call them
//! without starving the tasks that drive the connections.

mod cluster;
mod keys;
mod scripts;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{Event, EventFold, IncomingEvent, ModelSlot, Product, Relationship};
use crate::error::{Error, Result};
use crate::store::cache::ReadCache;
use crate::store::{
    decode, encode, AggregateStore, Decoded, DemoState, EventStore, History, HistoryChunks,
    IndexStore, ModelRegistry, ProductStore, RelationshipStore, Store, TrainingLease,
};
use crate::time::Timestamp;
use cluster::{parse, Cluster, Written};
use keys::{Keys, Part};
use watch::{Announcement, Followed};

/// Bytes per stored chunk of a model bundle: a large value in one command
/// holds up its shard while it is copied and replicated.
pub const MODEL_CHUNK: usize = 1 << 20;
/// How long a training lease lasts unless renewed, and how often it is.
const LEASE: Duration = Duration::from_secs(30);
const LEASE_RENEWAL: Duration = Duration::from_secs(10);
/// Tries of a relationship's compare-and-set before giving up: each failed
/// try means another writer changed it in the meantime.
const CAS_TRIES: usize = 64;
/// Relationships read per round trip wave when listing or scanning the book.
const PAGE: usize = 1_000;

/// How to reach and use the cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Seed nodes, `redis://host:port`; the client learns the rest.
    pub nodes: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Prefix of every key: several books can share one cluster.
    pub namespace: String,
    /// Replicas that must hold a write before it is acknowledged (`WAIT`).
    pub replicas: usize,
    /// How long a write waits for them before it fails as not replicated.
    pub wait_timeout: Duration,
    /// How long a batch key is remembered, so a retry within it is not doubled.
    pub dedup_window: Duration,
    /// Estimated bytes of decoded relationships the read cache keeps.
    pub cache_bytes: usize,
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOptions")
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("namespace", &self.namespace)
            .field("replicas", &self.replicas)
            .field("wait_timeout", &self.wait_timeout)
            .field("dedup_window", &self.dedup_window)
            .field("cache_bytes", &self.cache_bytes)
            .finish()
    }
}

impl RedisOptions {
    pub const DEFAULT_NAMESPACE: &'static str = "rapport";
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);
    pub const DEFAULT_DEDUP: Duration = Duration::from_secs(3_600);

    /// Parses `redis://[user:password@]host:port[,host:port...][/namespace][?option=value&...]`.
    /// Options: `replicas` (default 1; 0 acknowledges on the primary alone),
    /// `wait_ms` (default 1000), `dedup_s` (default 3600).
    ///
    /// # Errors
    /// `InvalidArgument` naming what is wrong.
    pub fn parse(address: &str) -> Result<RedisOptions> {
        let field = "store";
        let bad = |reason: String| Error::invalid(field, reason);
        let rest = match address.split_once("://") {
            Some(("redis", rest)) => rest,
            Some(("rediss", _)) => {
                return Err(bad(
                    "TLS to Redis (rediss://) is not supported: reach the cluster over a private network or a TLS tunnel".into(),
                ))
            }
            _ => {
                return Err(bad(format!(
                    "{address:?}: expected redis://host:port[,host:port...][/namespace]"
                )))
            }
        };
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (hosts, namespace) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hosts) = match hosts.rsplit_once('@') {
            Some((credentials, hosts)) => (Some(credentials), hosts),
            None => (None, hosts),
        };
        let (username, password) = match credentials.map(|c| c.split_once(':').unwrap_or((c, ""))) {
            Some((user, password)) => (
                (!user.is_empty()).then(|| user.to_string()),
                (!password.is_empty()).then(|| password.to_string()),
            ),
            None => (None, None),
        };
        let mut nodes = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            let Some((name, port)) = host.rsplit_once(':') else {
                return Err(bad(format!("{host:?}: expected host:port")));
            };
            let port: u16 = port
                .parse()
                .map_err(|_| bad(format!("{host:?}: the port must be a number")))?;
            nodes.push(format!("redis://{name}:{port}"));
        }
        if nodes.is_empty() {
            return Err(bad(format!("{address:?} names no node")));
        }
        let namespace = if namespace.is_empty() {
            Self::DEFAULT_NAMESPACE.to_string()
        } else {
            namespace.to_string()
        };
        Keys::new(&namespace)?;
        let mut options = RedisOptions {
            nodes,
            username,
            password,
            namespace,
            replicas: 1,
            wait_timeout: Self::DEFAULT_WAIT,
            dedup_window: Self::DEFAULT_DEDUP,
            cache_bytes: 256 << 20,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let number = || {
                value
                    .parse::<u64>()
                    .map_err(|_| bad(format!("{name}={value:?}: expected a whole number")))
            };
            match name {
                "replicas" => options.replicas = number()? as usize,
                "wait_ms" => options.wait_timeout = Duration::from_millis(number()?.max(1)),
                "dedup_s" => options.dedup_window = Duration::from_secs(number()?.max(1)),
                other => {
                    return Err(bad(format!(
                        "unknown option {other:?} (known: replicas, wait_ms, dedup_s)"
                    )))
                }
            }
        }
        Ok(options)
    }

    /// The read cache for `mb` megabytes of process memory: the estimate
    /// counts about half of what decoded values really take.
    #[must_use]
    pub fn with_cache_mb(mut self, mb: u64) -> RedisOptions {
        self.cache_bytes = usize::try_from((mb << 20) / 2).unwrap_or(usize::MAX);
        self
    }

    /// The same cluster under another namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: &str) -> RedisOptions {
        self.namespace = namespace.to_string();
        self
    }
}

impl FromStr for RedisOptions {
    type Err = Error;

    fn from_str(s: &str) -> Result<RedisOptions> {
        RedisOptions::parse(s)
    }
}

/// The Redis Cluster backend; clones share the connections and the cache.
pub struct RedisStore<A: EventFold> {
    inner: Arc<Inner<A>>,
}

impl<A: EventFold> Clone for RedisStore<A> {
    fn clone(&self) -> Self {
        RedisStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<A> {
    cluster: Cluster,
    keys: Keys,
    /// Names this process in what it publishes, so it skips its own messages.
    instance: String,
    options: RedisOptions,
    followed: Arc<Followed<A>>,
    /// Nodes written since the last flush (see "Durability").
    unflushed: Mutex<Written>,
    leases: AtomicU64,
    /// The sorted ids of the current `decoded_after` pass.
    pass: Mutex<Option<Arc<Vec<String>>>>,
}

/// The fold hash's `v`, `n` and `f` as `HMGET` returns them.
type StoredFold = (Option<String>, Option<u64>, Option<Vec<u8>>);

/// A relationship's fold as read, for a compare-and-set.
struct FoldState<A> {
    /// `None` before the first write of a fold.
    version: Option<String>,
    count: u64,
    fold: Option<A>,
}

impl<A: EventFold> RedisStore<A> {
    /// Connects to the cluster, subscribes to other processes' writes and
    /// starts following promotions.
    ///
    /// # Errors
    /// `Redis` when the cluster cannot be reached; `InvalidArgument` for a
    /// bad namespace.
    pub fn open(options: RedisOptions) -> Result<RedisStore<A>> {
        let keys = Keys::new(&options.namespace)?;
        let cluster = Cluster::connect(&options)?;
        let instance = format!("{:016x}", rand::random::<u64>());
        let (changes, _) = tokio::sync::watch::channel(0);
        let followed = Arc::new(Followed {
            cache: ReadCache::new(options.cache_bytes),
            live: AtomicBool::new(false),
            changes,
        });
        watch::start(&cluster, &options, &keys, &instance, Arc::clone(&followed))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                cluster,
                keys,
                instance,
                options,
                followed,
                unflushed: Mutex::new(Written::new()),
                leases: AtomicU64::new(0),
                pass: Mutex::new(None),
            }),
        })
    }

    /// The options it was opened with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// Runs `work` on the store's runtime with the shared state, and waits.
    fn block<T, F>(&self, work: impl FnOnce(Arc<Inner<A>>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        self.inner.cluster.block(work(Arc::clone(&self.inner)))
    }

    /// Runs `work` on the store's runtime and awaits it.
    async fn run<T, F>(&self, work: impl FnOnce(Arc<Inner<A>>) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        self.inner
            .cluster
            .handle()
            .spawn(work(Arc::clone(&self.inner)))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(format!("redis task failed: {e}"))))?
    }

    /// One command on the reader.
    fn read<T: redis::FromRedisValue + Send + 'static>(&self, command: &redis::Cmd) -> Result<T> {
        let command = command.clone();
        self.block(|inner| async move {
            let mut reader = inner.cluster.reader();
            Ok(command.query_async(&mut reader).await?)
        })
    }

    /// What `fetch` gives for `ids`, [`PAGE`] ids per call, read as the
    /// iterator is: a pass over the book holds one page in memory, not the
    /// book. An error listing the ids is the iterator's only item.
    fn paged<T, F>(
        &self,
        ids: Result<Vec<String>>,
        fetch: impl Fn(Arc<Inner<A>>, Vec<String>) -> F + Send + 'static,
    ) -> impl Iterator<Item = Result<T>> + Send + '_
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<Vec<T>>> + Send + 'static,
    {
        let (mut pages, mut failed) = match ids {
            Ok(ids) => (
                ids.chunks(PAGE)
                    .map(<[String]>::to_vec)
                    .collect::<Vec<_>>()
                    .into_iter(),
                None,
            ),
            Err(e) => (Vec::new().into_iter(), Some(e)),
        };
        let mut page = std::collections::VecDeque::new();
        std::iter::from_fn(move || loop {
            if let Some(e) = failed.take() {
                return Some(Err(e));
            }
            if let Some(item) = page.pop_front() {
                return Some(Ok(item));
            }
            let ids = pages.next()?;
            match self.block(|inner| fetch(inner, ids)) {
                Ok(fetched) => page.extend(fetched),
                Err(e) => return Some(Err(e)),
            }
        })
    }

    /// Every relationship id, sorted.
    fn sorted_ids(&self) -> Result<Vec<String>> {
        self.block(|inner| async move { inner.sorted_ids().await })
    }

    /// Writes a relationship, if `expected` is `None` or `Some` of the bytes
    /// now stored (`Some(None)`: none), and invalidates it everywhere when
    /// written. Returns whether it was written and whether one was stored.
    fn put_relationship(
        &self,
        relationship: &Relationship,
        expected: Option<Option<Vec<u8>>>,
    ) -> Result<(bool, bool)> {
        let relationship = relationship.clone();
        self.block(|inner| async move {
            let key = inner.keys.book(&relationship.id, Part::Relationship);
            let bytes = encode(&relationship);
            let mut args: Vec<&[u8]> = vec![&bytes];
            match &expected {
                None => {}
                Some(None) => args.push(b"0"),
                Some(Some(read)) => args.extend([&b"1"[..], read]),
            }
            let reply = inner.write(&scripts::UPSERT, &[&key], &args).await?;
            let mut reply = reply.into_iter();
            let mut next = || -> Result<bool> {
                Ok(parse::<i64>(reply.next().unwrap_or(redis::Value::Nil))? == 1)
            };
            let (written, existed) = (next()?, next()?);
            if written {
                inner
                    .invalidate(std::slice::from_ref(&relationship.id))
                    .await?;
            }
            Ok((written, existed))
        })
    }
}

impl<A: EventFold> Inner<A> {
    fn remember(&self, node: String, key: String) {
        self.unflushed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(node)
            .or_insert(key);
    }

    /// Runs a script that returns `{..., node}` last, on the writer;
    /// returns the rest and the node.
    async fn run_script(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<(Vec<redis::Value>, String)> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        let mut writer = self.cluster.writer();
        let mut reply: Vec<redis::Value> = invocation.invoke_async(&mut writer).await?;
        let node: String = parse(reply.pop().unwrap_or(redis::Value::Nil))?;
        Ok((reply, node))
    }

    /// [`Inner::run_script`], remembering the node for the next flush.
    async fn write(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&[u8]],
    ) -> Result<Vec<redis::Value>> {
        let (reply, node) = self.run_script(script, keys, args).await?;
        self.remember(node, keys[0].to_string());
        Ok(reply)
    }

    async fn flush(&self) -> Result<()> {
        let written = std::mem::take(
            &mut *self
                .unflushed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let result = self.cluster.wait_replicated(written.clone()).await;
        if result.is_err() {
            // Not known to be replicated: the next flush asks again.
            let mut unflushed = self
                .unflushed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (node, key) in written {
                unflushed.entry(node).or_insert(key);
            }
        }
        result
    }

    async fn publish(&self, what: Announcement<'_>) -> Result<()> {
        let message = watch::encode(&self.instance, what);
        let mut writer = self.cluster.writer();
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.keys.channel("invalidate"))
            .arg(message)
            .query_async(&mut writer)
            .await?;
        Ok(())
    }

    /// Drops `ids` from this process's cache and tells the others to.
    async fn invalidate(&self, ids: &[String]) -> Result<()> {
        for id in ids {
            self.followed.cache.invalidate(id);
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.publish(Announcement::Changed(ids)).await
    }

    /// Whether the relationship exists, and its fold as stored.
    async fn fold_state(&self, id: &str) -> Result<(bool, FoldState<A>)> {
        let mut reader = self.cluster.reader();
        let fold_key = self.keys.book(id, Part::Fold);
        let (stored, exists): (StoredFold, bool) = redis::pipe()
            .cmd("HMGET")
            .arg(&fold_key)
            .arg("v")
            .arg("n")
            .arg("f")
            .exists(self.keys.book(id, Part::Relationship))
            .query_async(&mut reader)
            .await?;
        let (version, count, fold) = stored;
        let fold = fold.map(|bytes| decode(id, &bytes)).transpose()?;
        Ok((
            exists,
            FoldState {
                version,
                count: count.unwrap_or(0),
                fold,
            },
        ))
    }

    /// Writes one relationship's part of a batch (see "Writing events");
    /// returns the node that ran it, or `None` for a relationship that is gone.
    async fn write_part(
        &self,
        id: &str,
        events: &[&Event],
        relationship: Option<&Relationship>,
        batch: &str,
        mut state: FoldState<A>,
    ) -> Result<Option<String>> {
        let keys = [
            self.keys.book(id, Part::Relationship),
            self.keys.book(id, Part::Fold),
            self.keys.book(id, Part::Events),
            self.keys.book(id, Part::Applied),
        ];
        let relationship = relationship.map(encode).unwrap_or_default();
        let window = self.options.dedup_window.as_millis().to_string();
        let encoded: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| (e.at.to_string(), encode(*e)))
            .collect();
        for _ in 0..CAS_TRIES {
            let mut fold = state.fold.take().unwrap_or_default();
            for event in events {
                fold.apply(event);
            }
            let mut invocation = scripts::WRITE_EVENTS.prepare_invoke();
            for key in &keys {
                invocation.key(key);
            }
            let version = format!("{:016x}", rand::random::<u64>());
            invocation
                .arg(batch)
                .arg(state.version.as_deref().unwrap_or(""))
                .arg(&version)
                .arg(state.count + events.len() as u64)
                .arg(encode(&fold))
                .arg(&relationship)
                .arg(&window);
            for (seq, (at, event)) in (state.count + 1..).zip(&encoded) {
                let mut member = Vec::with_capacity(8 + event.len());
                member.extend_from_slice(&seq.to_be_bytes());
                member.extend_from_slice(event);
                invocation.arg(at).arg(member);
            }
            let mut writer = self.cluster.writer();
            let (status, node): (String, String) = invocation.invoke_async(&mut writer).await?;
            match status.as_str() {
                "ok" | "dup" => return Ok(Some(node)),
                "gone" => return Ok(None),
                _ => {
                    let (exists, now) = self.fold_state(id).await?;
                    if !exists && relationship.is_empty() {
                        return Ok(None);
                    }
                    state = now;
                }
            }
        }
        Err(Error::Io(std::io::Error::other(format!(
            "relationship {id:?} changed under {CAS_TRIES} tries to write it: other writers are too busy on it"
        ))))
    }

    /// Raises the kept latest event time to `t`; returns the node that
    /// holds it and its key, or `None` without a time.
    async fn raise_latest(&self, t: Option<Timestamp>) -> Result<Option<(String, String)>> {
        let Some(t) = t else { return Ok(None) };
        let key = self.keys.meta("latest");
        let (_, node) = self
            .run_script(&scripts::RAISE, &[&key], &[t.to_string().as_bytes()])
            .await?;
        Ok(Some((node, key)))
    }

    async fn record(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        let key = batch_key(&batch);
        let mut parts: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
        for incoming in &batch {
            parts
                .entry(incoming.relationship_id.as_str())
                .or_default()
                .push(&incoming.event);
        }
        let states =
            futures_util::future::join_all(parts.keys().map(|id| self.fold_state(id))).await;
        let mut known = HashMap::with_capacity(parts.len());
        for (id, state) in parts.keys().zip(states) {
            let (exists, state) = state?;
            if exists {
                known.insert(*id, state);
            }
        }
        if let Some(unknown) = batch
            .iter()
            .find(|e| !known.contains_key(e.relationship_id.as_str()))
        {
            return Err(Error::not_found("relationship", &unknown.relationship_id));
        }
        let latest = batch.iter().map(|e| e.event.at).max();
        let key = &key;
        let writes = parts.iter().map(|(id, events)| {
            let state = known.remove(id).expect("every id is known");
            async move { (*id, self.write_part(id, events, None, key, state).await) }
        });
        let (results, raised) = futures_util::future::join(
            futures_util::future::join_all(writes),
            self.raise_latest(latest),
        )
        .await;
        let ids: Vec<String> = parts.keys().map(|id| id.to_string()).collect();
        self.invalidate(&ids).await?;
        let mut written = Written::new();
        for (id, result) in results {
            match result? {
                Some(node) => {
                    written
                        .entry(node)
                        .or_insert_with(|| self.keys.book(id, Part::Fold));
                }
                None => return Err(Error::not_found("relationship", id)),
            }
        }
        if let Some((node, key)) = raised? {
            written.entry(node).or_insert(key);
        }
        self.cluster.wait_replicated(written).await?;
        Ok(batch.len())
    }

    async fn load(&self, items: Vec<History>) -> Result<()> {
        // A fresh key per call: a lost reply retried by the client is not
        // doubled, a load run twice is (as with sled).
        let key = format!(
            "load-{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let states =
            futures_util::future::join_all(items.iter().map(|(r, _)| self.fold_state(&r.id))).await;
        let latest = items.iter().flat_map(|(_, e)| e.iter().map(|e| e.at)).max();
        let writes = items
            .iter()
            .zip(states)
            .map(|((relationship, events), state)| {
                let key = &key;
                async move {
                    let (_, state) = state?;
                    let events: Vec<&Event> = events.iter().collect();
                    let node = self
                        .write_part(&relationship.id, &events, Some(relationship), key, state)
                        .await?;
                    if let Some(node) = node {
                        self.remember(node, self.keys.book(&relationship.id, Part::Fold));
                    }
                    Ok::<_, Error>(())
                }
            });
        let (results, raised) = futures_util::future::join(
            futures_util::future::join_all(writes),
            self.raise_latest(latest),
        )
        .await;
        let ids: Vec<String> = items.iter().map(|(r, _)| r.id.clone()).collect();
        self.invalidate(&ids).await?;
        for result in results {
            result?;
        }
        if let Some((node, key)) = raised? {
            self.remember(node, key);
        }
        Ok(())
    }

    async fn read_decoded(&self, id: &str) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
        let mut reader = self.cluster.reader();
        Ok(redis::pipe()
            .get(self.keys.book(id, Part::Relationship))
            .hget(self.keys.book(id, Part::Fold), "f")
            .query_async(&mut reader)
            .await?)
    }

    async fn sorted_ids(&self) -> Result<Vec<String>> {
        self.sorted_ids_of(Part::Relationship).await
    }

    /// The ids of every relationship with a `part` key, sorted.
    async fn sorted_ids_of(&self, part: Part) -> Result<Vec<String>> {
        let keys = self
            .cluster
            .scan(&self.keys.book_pattern(part), false)
            .await?;
        let mut ids: Vec<String> = keys
            .iter()
            .filter_map(|k| self.keys.id_of(k, part))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Relationships with their folds for `ids`, in that order; ids gone
    /// since are left out.
    async fn fetch_decoded(&self, ids: &[String]) -> Result<Vec<Decoded<A>>> {
        let reads = ids.iter().map(|id| async move {
            let (relationship, fold) = self.read_decoded(id).await?;
            let Some(relationship) = relationship else {
                return Ok(None);
            };
            Ok::<_, Error>(Some(Decoded {
                relationship: decode(id, &relationship)?,
                aggregates: fold
                    .map(|f| decode(id, &f))
                    .transpose()?
                    .unwrap_or_default(),
            }))
        });
        let mut out = Vec::with_capacity(ids.len());
        for read in futures_util::future::join_all(reads).await {
            out.extend(read?);
        }
        Ok(out)
    }

    /// The index entries of `ids`, in that order; ids without one are left out.
    async fn fetch_index(&self, ids: &[String]) -> Result<Vec<(String, Vec<u8>)>> {
        let reads = ids.iter().map(|id| async move {
            let mut reader = self.cluster.reader();
            let entry: Option<Vec<u8>> = redis::cmd("GET")
                .arg(self.keys.book(id, Part::Index))
                .query_async(&mut reader)
                .await?;
            Ok::<_, Error>(entry.map(|bytes| (id.clone(), bytes)))
        });
        let mut out = Vec::with_capacity(ids.len());
        for read in futures_util::future::join_all(reads).await {
            out.extend(read?);
        }
        Ok(out)
    }

    /// Erases one relationship (see the key layout); returns its event
    /// count, `None` when it was not stored.
    async fn delete_relationship(&self, id: &str) -> Result<Option<u64>> {
        let keys = [
            self.keys.book(id, Part::Relationship),
            self.keys.book(id, Part::Fold),
            self.keys.book(id, Part::Events),
            self.keys.book(id, Part::Applied),
            self.keys.book(id, Part::Index),
        ];
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let reply = self
            .write(&scripts::DELETE_RELATIONSHIP, &keys, &[])
            .await?;
        let mut reply = reply.into_iter();
        let existed: i64 = parse(reply.next().unwrap_or(redis::Value::Nil))?;
        let events: u64 = parse(reply.next().unwrap_or(redis::Value::Nil))?;
        let last: String = parse(reply.next().unwrap_or(redis::Value::Nil))?;
        self.invalidate(&[id.to_string()]).await?;
        if existed == 0 {
            return Ok(None);
        }
        self.forget_latest(&last).await?;
        Ok(Some(events))
    }

    /// After erasing events whose latest time was `erased` (`""`: none):
    /// when that time was the book's latest, finds the latest left.
    async fn forget_latest(&self, erased: &str) -> Result<()> {
        let Ok(erased) = erased.parse::<f64>() else {
            return Ok(());
        };
        let key = self.keys.meta("latest");
        let mut reader = self.cluster.reader();
        let known: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut reader).await?;
        let Some(known) = known else { return Ok(()) };
        if known.parse::<f64>().map_or(true, |k| k > erased) {
            return Ok(());
        }
        let event_keys = self
            .cluster
            .scan(&self.keys.book_pattern(Part::Events), false)
            .await?;
        let mut latest: Option<Timestamp> = None;
        for page in event_keys.chunks(PAGE) {
            let reads = page.iter().map(|key| {
                let mut reader = self.cluster.reader();
                async move {
                    redis::cmd("ZRANGE")
                        .arg(key)
                        .arg(-1)
                        .arg(-1)
                        .arg("WITHSCORES")
                        .query_async::<Vec<(Vec<u8>, f64)>>(&mut reader)
                        .await
                }
            });
            for read in futures_util::future::join_all(reads).await {
                if let Some((_, at)) = read?.pop() {
                    latest = latest.max(Some(at as Timestamp));
                }
            }
        }
        let lowered = latest.map(|t| t.to_string()).unwrap_or_default();
        self.write(
            &scripts::LOWER,
            &[&key],
            &[known.as_bytes(), lowered.as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn put_model_artifact(&self, version: u64, name: &str, bytes: &[u8]) -> Result<()> {
        let header = self.keys.model(version, "h");
        let reply = self
            .write(
                &scripts::HSET,
                &[&self.keys.model(version, "x"), &header],
                &[name.as_bytes(), bytes],
            )
            .await?;
        let written: i64 = parse(reply.into_iter().next().unwrap_or(redis::Value::Nil))?;
        if written == 0 {
            return Err(Error::not_found("model version", version.to_string()));
        }
        Ok(())
    }

    async fn delete_model(&self, version: u64) -> Result<bool> {
        // Out of the index first: no reader lists a version half deleted.
        let reply = self
            .write(
                &scripts::UNINDEX_MODEL,
                &[&self.keys.meta("models")],
                &[version.to_string().as_bytes()],
            )
            .await?;
        let listed: i64 = parse(reply.into_iter().next().unwrap_or(redis::Value::Nil))?;
        let keys = [
            self.keys.model(version, "h"),
            self.keys.model(version, "s"),
            self.keys.model(version, "x"),
        ];
        let prefix = self.keys.model(version, "c:");
        let reply = self
            .write(
                &scripts::DELETE_MODEL,
                &[&keys[0], &keys[1], &keys[2]],
                &[prefix.as_bytes()],
            )
            .await?;
        let stored: i64 = parse(reply.into_iter().next().unwrap_or(redis::Value::Nil))?;
        Ok(listed == 1 || stored == 1)
    }

    /// Relationships (with their events when `with_events`) for `ids`, in
    /// that order; ids gone since are left out.
    async fn fetch(&self, ids: &[String], with_events: bool) -> Result<Vec<History>> {
        let reads = ids.iter().map(|id| async move {
            let mut reader = self.cluster.reader();
            let mut pipe = redis::pipe();
            pipe.get(self.keys.book(id, Part::Relationship));
            if with_events {
                pipe.zrange(self.keys.book(id, Part::Events), 0, -1);
            }
            let mut replies: Vec<redis::Value> = pipe.query_async(&mut reader).await?;
            let members: Vec<Vec<u8>> = match replies.len() {
                2 => parse(replies.pop().unwrap_or(redis::Value::Nil))?,
                _ => Vec::new(),
            };
            let Some(bytes) = parse::<Option<Vec<u8>>>(replies.pop().unwrap_or(redis::Value::Nil))?
            else {
                return Ok(None);
            };
            let relationship: Relationship = decode(id, &bytes)?;
            let events = members
                .iter()
                .map(|m| decode_member(id, m))
                .collect::<Result<Vec<_>>>()?;
            Ok::<_, Error>(Some((relationship, events)))
        });
        let mut out = Vec::with_capacity(ids.len());
        for read in futures_util::future::join_all(reads).await {
            if let Some(history) = read? {
                out.push(history);
            }
        }
        Ok(out)
    }

    async fn model_bundle(&self, version: u64) -> Result<Option<Vec<u8>>> {
        let mut reader = self.cluster.reader();
        let (chunks, len): (Option<usize>, Option<usize>) = redis::cmd("HMGET")
            .arg(self.keys.model(version, "h"))
            .arg("n")
            .arg("len")
            .query_async(&mut reader)
            .await?;
        let (Some(chunks), Some(len)) = (chunks, len) else {
            return Ok(None);
        };
        let mut pipe = redis::pipe();
        for i in 0..chunks {
            pipe.get(self.keys.model(version, &format!("c:{i}")));
        }
        let parts: Vec<Option<Vec<u8>>> = pipe.query_async(&mut reader).await?;
        let mut bundle = Vec::with_capacity(len);
        for (i, part) in parts.into_iter().enumerate() {
            let part = part.ok_or_else(|| Error::Corrupt {
                key: self.keys.model(version, &format!("c:{i}")),
                reason: "a chunk of the model is missing".into(),
            })?;
            bundle.extend_from_slice(&part);
        }
        if bundle.len() != len {
            return Err(Error::Corrupt {
                key: self.keys.model(version, "h"),
                reason: format!("{} bytes in the chunks, {len} expected", bundle.len()),
            });
        }
        Ok(Some(bundle))
    }

    async fn put_model(&self, version: u64, summary: &[u8], bundle: &[u8]) -> Result<()> {
        let mut writer = self.cluster.writer();
        let mut pipe = redis::pipe();
        let chunks: Vec<&[u8]> = bundle.chunks(MODEL_CHUNK).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            pipe.set(self.keys.model(version, &format!("c:{i}")), *chunk)
                .ignore();
        }
        // An empty summary is none, as for a bundle an earlier Rapport stored.
        if summary.is_empty() {
            pipe.del(self.keys.model(version, "s")).ignore();
        } else {
            pipe.set(self.keys.model(version, "s"), summary).ignore();
        }
        pipe.exec_async(&mut writer).await?;
        // The header last, on the same connection: a reader that finds it
        // finds every chunk, and the flush's WAIT covers them all.
        let n = chunks.len().to_string();
        let len = bundle.len().to_string();
        self.write(
            &scripts::HSET,
            &[&self.keys.model(version, "h")],
            &[b"n", n.as_bytes(), b"len", len.as_bytes()],
        )
        .await?;
        self.write(
            &scripts::INDEX_MODEL,
            &[&self.keys.meta("models")],
            &[version.to_string().as_bytes()],
        )
        .await?;
        Ok(())
    }

    async fn clear_book(&self) -> Result<()> {
        let keys = self
            .cluster
            .scan(&self.keys.all_book_pattern(), false)
            .await?;
        for page in keys.chunks(PAGE) {
            let deletes = page.iter().map(|key| async move {
                let mut writer = self.cluster.writer();
                let _: i64 = redis::cmd("UNLINK")
                    .arg(key)
                    .query_async(&mut writer)
                    .await?;
                Ok::<_, Error>(())
            });
            for result in futures_util::future::join_all(deletes).await {
                result?;
            }
        }
        for name in ["products", "latest", "notes"] {
            self.write(&scripts::SET_OR_DELETE, &[&self.keys.meta(name)], &[])
                .await?;
        }
        self.followed.cache.clear();
        self.publish(Announcement::Cleared).await
    }
}

/// The content key of a batch: ids and encoded events, in order.
fn batch_key(batch: &[IncomingEvent]) -> String {
    let mut hash = sha1_smol::Sha1::new();
    for incoming in batch {
        let event = encode(&incoming.event);
        hash.update(&(incoming.relationship_id.len() as u64).to_le_bytes());
        hash.update(incoming.relationship_id.as_bytes());
        hash.update(&(event.len() as u64).to_le_bytes());
        hash.update(&event);
    }
    hash.digest().to_string()
}

fn decode_member(id: &str, member: &[u8]) -> Result<Event> {
    let event = member.get(8..).ok_or_else(|| Error::Corrupt {
        key: id.to_string(),
        reason: format!("an event member of {} bytes", member.len()),
    })?;
    decode(id, event)
}

impl<A: EventFold> RelationshipStore for RedisStore<A> {
    fn upsert_relationship(&self, relationship: &Relationship) -> Result<bool> {
        let (_, existed) = self.put_relationship(relationship, None)?;
        Ok(!existed)
    }

    /// A compare-and-set on the relationship's bytes: another process's
    /// write between the read and the write makes it merge again.
    fn merge_relationship(
        &self,
        id: &str,
        merge: &mut dyn FnMut(Option<Relationship>) -> Result<Relationship>,
    ) -> Result<(bool, Relationship)> {
        let key = self.inner.keys.book(id, Part::Relationship);
        for _ in 0..CAS_TRIES {
            let read: Option<Vec<u8>> = self.read(redis::cmd("GET").arg(&key))?;
            let stored = read.as_deref().map(|b| decode(id, b)).transpose()?;
            let relationship = merge(stored)?;
            if relationship.id != id {
                return Err(Error::invalid(
                    "relationship.id",
                    format!("a merge of {id:?} returned {:?}", relationship.id),
                ));
            }
            let (written, existed) = self.put_relationship(&relationship, Some(read))?;
            if written {
                return Ok((!existed, relationship));
            }
        }
        Err(Error::Io(std::io::Error::other(format!(
            "relationship {id:?} changed under {CAS_TRIES} tries to merge into it: other writers are too busy on it"
        ))))
    }

    fn relationship(&self, id: &str) -> Result<Option<Relationship>> {
        let key = self.inner.keys.book(id, Part::Relationship);
        let bytes: Option<Vec<u8>> = self.read(redis::cmd("GET").arg(key))?;
        bytes.map(|b| decode(id, &b)).transpose()
    }

    fn relationship_count(&self) -> Result<usize> {
        Ok(self.sorted_ids()?.len())
    }

    fn has_relationships(&self) -> Result<bool> {
        self.block(|inner| async move {
            let pattern = inner.keys.book_pattern(Part::Relationship);
            Ok(!inner.cluster.scan(&pattern, true).await?.is_empty())
        })
    }

    fn relationships(&self) -> Box<dyn Iterator<Item = Result<Relationship>> + Send + '_> {
        let relationships = self.paged(self.sorted_ids(), |inner, ids| async move {
            let fetched = inner.fetch(&ids, false).await?;
            Ok(fetched
                .into_iter()
                .map(|(relationship, _)| relationship)
                .collect())
        });
        Box::new(relationships)
    }
}

#[async_trait]
impl<A: EventFold> EventStore for RedisStore<A> {
    async fn record_events(&self, batch: Vec<IncomingEvent>) -> Result<usize> {
        self.run(|inner| async move { inner.record(batch).await })
            .await
    }

    fn load_histories(&self, items: &[History]) -> Result<()> {
        let items = items.to_vec();
        self.block(|inner| async move { inner.load(items).await })
    }

    fn events(&self, id: &str, until: Option<Timestamp>) -> Result<Vec<Event>> {
        let id = id.to_string();
        self.block(|inner| async move {
            let mut reader = inner.cluster.reader();
            let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                .arg(inner.keys.book(&id, Part::Events))
                .arg("-inf")
                .arg(until.map_or_else(|| "+inf".to_string(), |t| t.to_string()))
                .arg("BYSCORE")
                .query_async(&mut reader)
                .await?;
            members.iter().map(|m| decode_member(&id, m)).collect()
        })
    }

    fn latest_event(&self) -> Result<Option<Timestamp>> {
        self.read(redis::cmd("GET").arg(self.inner.keys.meta("latest")))
    }

    fn event_count(&self) -> Result<usize> {
        self.block(|inner| async move {
            let keys = inner
                .cluster
                .scan(&inner.keys.book_pattern(Part::Events), false)
                .await?;
            let mut total = 0;
            for page in keys.chunks(PAGE) {
                let counts = page.iter().map(|key| {
                    let mut reader = inner.cluster.reader();
                    async move {
                        redis::cmd("ZCARD")
                            .arg(key)
                            .query_async::<usize>(&mut reader)
                            .await
                    }
                });
                for count in futures_util::future::join_all(counts).await {
                    total += count?;
                }
            }
            Ok(total)
        })
    }

    fn history_chunks(&self, size: usize) -> Box<dyn HistoryChunks + '_> {
        Box::new(RedisChunks {
            store: self,
            size: size.max(1),
            state: Mutex::new(ChunkState { ids: None, next: 0 }),
        })
    }
}

/// The book in numbered chunks of consecutive ids: the ids are read once
/// (SCAN on every primary, sorted) when the first chunk is asked for.
struct RedisChunks<'a, A: EventFold> {
    store: &'a RedisStore<A>,
    size: usize,
    state: Mutex<ChunkState>,
}

struct ChunkState {
    ids: Option<Arc<Vec<String>>>,
    next: usize,
}

impl<A: EventFold> HistoryChunks for RedisChunks<'_, A> {
    fn next_chunk(&self) -> Result<Option<(usize, Vec<History>)>> {
        let (number, ids) = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let all = match &state.ids {
                Some(ids) => Arc::clone(ids),
                None => {
                    let ids = Arc::new(self.store.sorted_ids()?);
                    state.ids = Some(Arc::clone(&ids));
                    ids
                }
            };
            let number = state.next;
            let start = number.saturating_mul(self.size);
            if start >= all.len() {
                return Ok(None);
            }
            state.next += 1;
            (
                number,
                all[start..(start + self.size).min(all.len())].to_vec(),
            )
        };
        let histories = self
            .store
            .block(|inner| async move { inner.fetch(&ids, true).await })?;
        Ok(Some((number, histories)))
    }
}

impl<A: EventFold> AggregateStore<A> for RedisStore<A> {
    fn aggregates(&self, id: &str) -> Result<Option<A>> {
        let key = self.inner.keys.book(id, Part::Fold);
        let bytes: Option<Vec<u8>> = self.read(redis::cmd("HGET").arg(key).arg("f"))?;
        bytes.map(|b| decode(id, &b)).transpose()
    }

    fn decoded(&self, id: &str) -> Result<Option<Arc<Decoded<A>>>> {
        let followed = &self.inner.followed;
        let seen = match followed.cache.get(id) {
            Ok(hit) => return Ok(Some(hit)),
            Err(seen) => seen,
        };
        let live = followed.live.load(Ordering::SeqCst);
        let owned = id.to_string();
        let (relationship, fold) =
            self.block(|inner| async move { inner.read_decoded(&owned).await })?;
        let Some(relationship) = relationship else {
            return Ok(None);
        };
        let decoded = Arc::new(Decoded {
            relationship: decode(id, &relationship)?,
            aggregates: fold
                .map(|f| decode(id, &f))
                .transpose()?
                .unwrap_or_default(),
        });
        if live {
            let bytes = decoded.approx_bytes();
            followed.cache.fill(id, seen, Arc::clone(&decoded), bytes);
        }
        Ok(Some(decoded))
    }

    fn read_cache_usage(&self) -> (usize, usize) {
        self.inner.followed.cache.usage()
    }

    fn read_cache_counts(&self) -> (u64, u64) {
        self.inner.followed.cache.counts()
    }

    fn decoded_after(&self, after: Option<&str>, limit: usize) -> Result<Vec<Decoded<A>>> {
        let ids = {
            let mut pass = self
                .inner
                .pass
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let current = pass.clone().filter(|_| after.is_some());
            match current {
                Some(ids) => ids,
                None => {
                    let ids = Arc::new(self.sorted_ids()?);
                    *pass = Some(Arc::clone(&ids));
                    ids
                }
            }
        };
        let mut next = after.map_or(0, |after| ids.partition_point(|id| id.as_str() <= after));
        let mut out = Vec::with_capacity(limit.min(ids.len() - next));
        // Ids erased since the SCAN are skipped: read on until the page is
        // full or the ids run out, so a short page means the end.
        while out.len() < limit && next < ids.len() {
            let want = (limit - out.len()).min(PAGE);
            let page = ids[next..(next + want).min(ids.len())].to_vec();
            next += page.len();
            let read = self.block(|inner| async move { inner.fetch_decoded(&page).await })?;
            out.extend(read);
        }
        Ok(out)
    }
}

impl<A: EventFold> IndexStore for RedisStore<A> {
    fn put_index_entries(&self, entries: &[(&str, Vec<u8>)]) -> Result<()> {
        let entries: Vec<(String, Vec<u8>)> = entries
            .iter()
            .map(|(id, bytes)| ((*id).to_string(), bytes.clone()))
            .collect();
        self.block(|inner| async move {
            for page in entries.chunks(PAGE) {
                let writes = page.iter().map(|(id, bytes)| {
                    let inner = &inner;
                    async move {
                        let key = inner.keys.book(id, Part::Index);
                        inner
                            .write(&scripts::SET_OR_DELETE, &[&key], &[bytes.as_slice()])
                            .await
                    }
                });
                for written in futures_util::future::join_all(writes).await {
                    written?;
                }
            }
            Ok(())
        })
    }

    fn remove_index_entries(&self, ids: &[&str]) -> Result<()> {
        let ids: Vec<String> = ids.iter().map(|id| (*id).to_string()).collect();
        self.block(|inner| async move {
            for page in ids.chunks(PAGE) {
                let deletes = page.iter().map(|id| {
                    let inner = &inner;
                    async move {
                        let key = inner.keys.book(id, Part::Index);
                        inner.write(&scripts::SET_OR_DELETE, &[&key], &[]).await
                    }
                });
                for deleted in futures_util::future::join_all(deletes).await {
                    deleted?;
                }
            }
            Ok(())
        })
    }

    fn index_entries(&self) -> Box<dyn Iterator<Item = Result<(String, Vec<u8>)>> + Send + '_> {
        let ids = self.block(|inner| async move { inner.sorted_ids_of(Part::Index).await });
        Box::new(self.paged(
            ids,
            |inner, ids| async move { inner.fetch_index(&ids).await },
        ))
    }

    fn index_note(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read(
            redis::cmd("HGET")
                .arg(self.inner.keys.meta("notes"))
                .arg(name),
        )
    }

    fn set_index_note(&self, name: &str, value: &[u8]) -> Result<()> {
        let (name, value) = (name.to_string(), value.to_vec());
        self.block(|inner| async move {
            inner
                .write(
                    &scripts::HSET,
                    &[&inner.keys.meta("notes")],
                    &[name.as_bytes(), &value],
                )
                .await?;
            Ok(())
        })
    }
}

impl<A: EventFold> ProductStore for RedisStore<A> {
    fn put_products(&self, products: &[Product]) -> Result<()> {
        let pairs: Vec<(String, Vec<u8>)> =
            products.iter().map(|p| (p.id.clone(), encode(p))).collect();
        self.block(|inner| async move {
            let key = inner.keys.meta("products");
            for page in pairs.chunks(PAGE) {
                let args: Vec<&[u8]> = page
                    .iter()
                    .flat_map(|(id, bytes)| [id.as_bytes(), bytes.as_slice()])
                    .collect();
                inner.write(&scripts::HSET, &[&key], &args).await?;
            }
            Ok(())
        })
    }

    fn products(&self) -> Result<Vec<Product>> {
        let all: Vec<(String, Vec<u8>)> =
            self.read(redis::cmd("HGETALL").arg(self.inner.keys.meta("products")))?;
        let mut products = all
            .iter()
            .map(|(id, bytes)| decode(id, bytes))
            .collect::<Result<Vec<Product>>>()?;
        products.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(products)
    }
}

impl<A: EventFold> ModelRegistry for RedisStore<A> {
    fn allocate_model_version(&self) -> Result<u64> {
        self.block(|inner| async move {
            let key = inner.keys.meta("version");
            let invocation = scripts::NEXT_VERSION.key(&key);
            let mut writer = inner.cluster.writer();
            let (version, node): (u64, String) = invocation.invoke_async(&mut writer).await?;
            // Handed out only once replicated: a failover must not hand it out again.
            inner
                .cluster
                .wait_replicated(Written::from([(node, key)]))
                .await?;
            Ok(version)
        })
    }

    fn put_model(&self, version: u64, summary: &[u8], bundle: &[u8]) -> Result<()> {
        let (summary, bundle) = (summary.to_vec(), bundle.to_vec());
        self.block(|inner| async move { inner.put_model(version, &summary, &bundle).await })
    }

    fn model_bundle(&self, version: u64) -> Result<Option<Vec<u8>>> {
        self.block(|inner| async move { inner.model_bundle(version).await })
    }

    fn model_summary(&self, version: u64) -> Result<Option<Vec<u8>>> {
        self.read(redis::cmd("GET").arg(self.inner.keys.model(version, "s")))
    }

    fn model_versions(&self) -> Result<Vec<u64>> {
        self.read(
            redis::cmd("ZRANGE")
                .arg(self.inner.keys.meta("models"))
                .arg(0)
                .arg(-1),
        )
    }

    fn active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        self.pointer("active", slot)
    }

    fn set_active_model(&self, slot: ModelSlot, version: u64) -> Result<()> {
        self.block(|inner| async move {
            let keys = [
                inner.keys.meta("models"),
                inner.keys.meta("active"),
                inner.keys.meta("previous"),
            ];
            let reply = inner
                .write(
                    &scripts::ACTIVATE,
                    &[&keys[0], &keys[1], &keys[2]],
                    &[slot.name().as_bytes(), version.to_string().as_bytes()],
                )
                .await?;
            let found: i64 = parse(reply.into_iter().next().unwrap_or(redis::Value::Nil))?;
            if found == 0 {
                return Err(Error::not_found("model version", version.to_string()));
            }
            let mut writer = inner.cluster.writer();
            let _: i64 = redis::cmd("PUBLISH")
                .arg(inner.keys.channel("models"))
                .arg(&inner.instance)
                .query_async(&mut writer)
                .await?;
            Ok(())
        })
    }

    fn previous_active_model(&self, slot: ModelSlot) -> Result<Option<u64>> {
        self.pointer("previous", slot)
    }

    fn put_model_artifact(&self, version: u64, name: &str, bytes: &[u8]) -> Result<()> {
        let (name, bytes) = (name.to_string(), bytes.to_vec());
        self.block(|inner| async move { inner.put_model_artifact(version, &name, &bytes).await })
    }

    fn model_artifacts(&self, version: u64) -> Result<Vec<(String, Vec<u8>)>> {
        let mut all: Vec<(String, Vec<u8>)> =
            self.read(redis::cmd("HGETALL").arg(self.inner.keys.model(version, "x")))?;
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }

    fn delete_model(&self, version: u64) -> Result<bool> {
        self.block(|inner| async move { inner.delete_model(version).await })
    }

    fn active_model_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.inner.followed.changes.subscribe())
    }

    fn training_lease(&self) -> Result<TrainingLease> {
        let holder = format!(
            "process {} on instance {}, lease {}",
            std::process::id(),
            self.inner.instance,
            self.inner.leases.fetch_add(1, Ordering::Relaxed)
        );
        let claimed = self.block({
            let holder = holder.clone();
            |inner| async move {
                let mut writer = inner.cluster.writer();
                let key = inner.keys.meta("lease");
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg(&holder)
                    .arg("NX")
                    .arg("PX")
                    .arg(LEASE.as_millis() as u64)
                    .query_async(&mut writer)
                    .await?;
                if set.is_some() {
                    return Ok(None);
                }
                let mut reader = inner.cluster.reader();
                let other: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut reader).await?;
                Ok(Some(
                    other.unwrap_or_else(|| "a process that just finished".into()),
                ))
            }
        })?;
        if let Some(other) = claimed {
            return Err(Error::precondition(format!(
                "a model is training on another Rapport process sharing this store ({other}); try again when it is done"
            )));
        }
        Ok(TrainingLease::held(Box::new(Lease::start(
            &self.inner,
            holder,
        ))))
    }
}

impl<A: EventFold> RedisStore<A> {
    fn pointer(&self, which: &'static str, slot: ModelSlot) -> Result<Option<u64>> {
        self.read(
            redis::cmd("HGET")
                .arg(self.inner.keys.meta(which))
                .arg(slot.name()),
        )
    }
}

/// A held training lease: a task renews it until this is dropped, then
/// releases it.
struct Lease {
    _release: tokio::sync::oneshot::Sender<()>,
}

impl Lease {
    fn start<A: EventFold>(inner: &Arc<Inner<A>>, holder: String) -> Lease {
        let key = inner.keys.meta("lease");
        let mut writer = inner.cluster.writer();
        let (release, mut released) = tokio::sync::oneshot::channel::<()>();
        inner.cluster.handle().spawn(async move {
            let mut tick = tokio::time::interval(LEASE_RENEWAL);
            tick.tick().await;
            loop {
                tokio::select! {
                    // Sent or dropped: the lease is let go either way.
                    _ = &mut released => break,
                    _ = tick.tick() => {
                        let renewed: redis::RedisResult<i64> = scripts::RENEW_LEASE
                            .key(&key)
                            .arg(&holder)
                            .arg(LEASE.as_millis() as u64)
                            .invoke_async(&mut writer)
                            .await;
                        match renewed {
                            Ok(1) => {}
                            Ok(_) => tracing::error!("the training lease expired while held: another process may train too"),
                            Err(e) => tracing::warn!(error = %e, "could not renew the training lease"),
                        }
                    }
                }
            }
            let released: redis::RedisResult<i64> = scripts::RELEASE_LEASE
                .key(&key)
                .arg(&holder)
                .invoke_async(&mut writer)
                .await;
            if let Err(e) = released {
                tracing::warn!(error = %e, "could not release the training lease; it expires by itself");
            }
        });
        Lease { _release: release }
    }
}

#[async_trait]
impl<A: EventFold> Store<A> for RedisStore<A> {
    async fn flush(&self) -> Result<()> {
        self.run(|inner| async move { inner.flush().await }).await
    }

    fn flush_blocking(&self) -> Result<()> {
        self.block(|inner| async move { inner.flush().await })
    }

    fn demo_state(&self) -> Result<DemoState> {
        let state: Option<String> =
            self.read(redis::cmd("GET").arg(self.inner.keys.meta("demo")))?;
        Ok(match state.as_deref() {
            Some("loading") => DemoState::Loading,
            Some("loaded") => DemoState::Loaded,
            _ => DemoState::Absent,
        })
    }

    fn set_demo_state(&self, state: DemoState) -> Result<()> {
        let value: &'static [&'static [u8]] = match state {
            DemoState::Absent => &[],
            DemoState::Loading => &[b"loading"],
            DemoState::Loaded => &[b"loaded"],
        };
        self.block(|inner| async move {
            inner
                .write(&scripts::SET_OR_DELETE, &[&inner.keys.meta("demo")], value)
                .await?;
            Ok(())
        })
    }

    fn clear_book(&self) -> Result<()> {
        self.block(|inner| async move { inner.clear_book().await })
    }

    fn delete_relationship(&self, id: &str) -> Result<Option<u64>> {
        let id = id.to_string();
        self.block(|inner| async move { inner.delete_relationship(&id).await })
    }

    fn probe_writes(&self) -> Result<()> {
        self.block(|inner| async move {
            let now = crate::time::now().to_string();
            inner
                .write(
                    &scripts::SET_OR_DELETE,
                    &[&inner.keys.meta("probe")],
                    &[now.as_bytes()],
                )
                .await?;
            inner.flush().await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_address_gives_nodes_credentials_namespace_and_options() {
        let o = RedisOptions::parse(
            "redis://app:p@ss:w@10.0.0.1:7000,10.0.0.2:7001/staging?replicas=2&wait_ms=50&dedup_s=9",
        )
        .unwrap();
        assert_eq!(o.nodes, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7001"]);
        assert_eq!(o.username.as_deref(), Some("app"));
        assert_eq!(o.password.as_deref(), Some("p@ss:w"));
        assert_eq!(o.namespace, "staging");
        assert_eq!(o.replicas, 2);
        assert_eq!(o.wait_timeout, Duration::from_millis(50));
        assert_eq!(o.dedup_window, Duration::from_secs(9));
        assert!(
            !format!("{o:?}").contains("p@ss"),
            "Debug hides the password"
        );

        let d = RedisOptions::parse("redis://h:1").unwrap();
        assert_eq!(
            (d.username, d.password, d.namespace.as_str(), d.replicas),
            (None, None, RedisOptions::DEFAULT_NAMESPACE, 1)
        );
        assert_eq!(d.wait_timeout, RedisOptions::DEFAULT_WAIT);
        assert_eq!(d.dedup_window, RedisOptions::DEFAULT_DEDUP);
        assert_eq!(
            RedisOptions::parse("redis://h:1?replicas=0")
                .unwrap()
                .replicas,
            0,
            "0 acknowledges on the primary alone"
        );
    }

    #[test]
    fn a_bad_store_address_is_refused_saying_why() {
        for (address, says) in [
            ("h:7000", "expected redis://"),
            ("http://h:7000", "expected redis://"),
            ("rediss://h:7000", "TLS"),
            ("redis://", "names no node"),
            ("redis://h", "expected host:port"),
            ("redis://h:port", "must be a number"),
            ("redis://h:1?replica=1", "unknown option"),
            ("redis://h:1?wait_ms=soon", "expected a whole number"),
        ] {
            match RedisOptions::parse(address) {
                Err(Error::InvalidArgument { field, reason }) => {
                    assert_eq!(field, "store");
                    assert!(reason.contains(says), "{address}: {reason}");
                }
                other => panic!("{address}: {other:?}"),
            }
        }
    }
}
