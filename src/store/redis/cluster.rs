//! The connections to the cluster and the runtime that drives them, the
//! replication check behind every acknowledgement, and SCAN across primaries.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{FromRedisValue, Value};

use crate::error::{Error, Result};
use crate::store::redis::RedisOptions;

/// The cluster as the store holds it. Connections are driven by tasks on a
/// runtime of the store's own, so that the store's blocking methods can wait
/// on them from any thread (a server's async workers included) without
/// starving the tasks they wait for.
pub struct Cluster {
    io: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    /// Reads, on connections of their own: a `WAIT` holds up every later
    /// command of its connection until replicas answer.
    reader: ClusterConnection,
    /// Writes and the `WAIT`s that follow them, which must share a connection:
    /// `WAIT` counts replicas that have this connection's writes.
    writer: ClusterConnection,
    replicas: usize,
    wait_timeout: Duration,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A store may be dropped on an async worker, where a runtime cannot
        // be dropped in place.
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}

/// Node id (`CLUSTER MYID`) to a key that node owned when it ran a write:
/// where to ask whether the write reached its replicas.
pub type Written = HashMap<String, String>;

impl Cluster {
    /// Connects to the cluster (two sets of connections, one per node each).
    ///
    /// # Errors
    /// `Redis` when no seed node answers; `Io` when the runtime cannot start.
    pub fn connect(options: &RedisOptions) -> Result<Cluster> {
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("redis-io")
            .enable_all()
            .build()?;
        let handle = io.handle().clone();
        let response = options.wait_timeout + Duration::from_secs(5);
        let reader = client(options)?.response_timeout(response).build()?;
        let writer = client(options)?.response_timeout(response).build()?;
        let (reader, writer) = block_on(&handle, async move {
            Ok((
                reader.get_async_connection().await?,
                writer.get_async_connection().await?,
            ))
        })?;
        Ok(Cluster {
            io: Some(io),
            handle,
            reader,
            writer,
            replicas: options.replicas,
            wait_timeout: options.wait_timeout,
        })
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    pub fn reader(&self) -> ClusterConnection {
        self.reader.clone()
    }

    pub fn writer(&self) -> ClusterConnection {
        self.writer.clone()
    }

    /// Runs `work` on the store's runtime and waits for it on this thread.
    ///
    /// # Errors
    /// What `work` returns; `Io` when the runtime has stopped.
    pub fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        block_on(&self.handle, work)
    }

    /// Asks each node that ran one of `written` to confirm that its
    /// replicas have everything this process wrote to it, within the wait
    /// timeout. The node is reached by the slot of the key it owned: if that
    /// slot has a new primary since (a failover), the write may have been
    /// lost with the old one, and this fails rather than count the new
    /// primary's replicas.
    ///
    /// # Errors
    /// `Unreplicated` when fewer replicas answered than promised or the
    /// primary changed; `Redis` when a node cannot be reached.
    pub async fn wait_replicated(&self, written: Written) -> Result<()> {
        if self.replicas == 0 || written.is_empty() {
            return Ok(());
        }
        let checks = written.into_iter().map(|(node, key)| {
            let mut writer = self.writer();
            let timeout = self.wait_timeout.as_millis() as u64;
            let replicas = self.replicas;
            async move {
                let mut pipe = redis::pipe();
                pipe.cmd("WAIT").arg(replicas).arg(timeout.max(1));
                pipe.cmd("CLUSTER").arg("MYID");
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                    key.as_bytes(),
                    SlotAddr::Master,
                ));
                let replies = writer.route_pipeline(pipe, 0, 2, route).await?;
                let [acked, answered]: [Value; 2] = replies.try_into().map_err(|v: Vec<_>| {
                    Error::Unreplicated {
                        reason: format!("WAIT answered {} values, not 2", v.len()),
                    }
                })?;
                let acked: usize = parse(acked)?;
                let answered: String = parse(answered)?;
                if answered != node {
                    return Err(Error::Unreplicated {
                        reason: format!(
                            "the shard of {key} has a new primary since the write (a failover): it may be lost; retry"
                        ),
                    });
                }
                if acked < replicas {
                    return Err(Error::Unreplicated {
                        reason: format!(
                            "{acked} of {replicas} replicas of the shard of {key} acknowledged within {timeout} ms"
                        ),
                    });
                }
                Ok(())
            }
        });
        for result in futures_util::future::join_all(checks).await {
            result?;
        }
        Ok(())
    }

    /// The addresses of the primaries, as one node sees the cluster.
    ///
    /// # Errors
    /// `Redis` when no node answers; `Corrupt` for an answer not understood.
    pub async fn primaries(&self) -> Result<Vec<(String, u16)>> {
        let mut reader = self.reader();
        let nodes = reader
            .route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let text: String = parse(nodes)?;
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            // Only primaries that own slots hold keys.
            if fields.len() < 9 {
                continue;
            }
            let address = address.split(['@', ',']).next().unwrap_or_default();
            let Some((host, port)) = address.rsplit_once(':') else {
                continue;
            };
            let port = port.parse().map_err(|_| Error::Corrupt {
                key: "CLUSTER NODES".into(),
                reason: format!("port in {line:?}"),
            })?;
            out.push((host.to_string(), port));
        }
        Ok(out)
    }

    /// Every key matching `pattern` on every primary; with `first`, stops at
    /// the first one found.
    ///
    /// # Errors
    /// `Redis` when a primary cannot be reached (mid-failover: retry).
    pub async fn scan(&self, pattern: &str, first: bool) -> Result<Vec<Vec<u8>>> {
        let mut keys = Vec::new();
        for (host, port) in self.primaries().await? {
            let mut reader = self.reader();
            let mut cursor = 0u64;
            loop {
                let reply = reader
                    .route_command(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(1_000)
                            .clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port,
                        }),
                    )
                    .await?;
                let (next, found): (u64, Vec<Vec<u8>>) = parse(reply)?;
                keys.extend(found);
                if first && !keys.is_empty() {
                    return Ok(keys);
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(keys)
    }
}

fn client(options: &RedisOptions) -> Result<ClusterClientBuilder> {
    let mut builder = ClusterClientBuilder::new(options.nodes.clone())
        .connection_timeout(Duration::from_secs(2))
        // A failover takes the node timeout and an election; retries with
        // backoff span a few seconds of it before a call fails.
        .retries(12)
        .min_retry_wait(20)
        .max_retry_wait(1_000);
    if let Some(user) = &options.username {
        builder = builder.username(user);
    }
    if let Some(password) = &options.password {
        builder = builder.password(password);
    }
    Ok(builder)
}

/// A client that receives pub/sub messages on `sender`.
///
/// # Errors
/// `Redis` on a bad configuration.
pub fn subscriber(
    options: &RedisOptions,
    sender: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
) -> Result<redis::cluster::ClusterClient> {
    Ok(client(options)?
        .use_protocol(redis::ProtocolVersion::RESP3)
        .push_sender(sender)
        .build()?)
}

/// Runs `work` on `handle`'s runtime and waits on this thread through a
/// plain channel (a tokio wait would count against the budget of a worker
/// that blocks here, and could spin).
fn block_on<T: Send + 'static>(
    handle: &tokio::runtime::Handle,
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv().map_err(|_| {
        Error::Io(std::io::Error::other(
            "the Redis store's runtime has stopped",
        ))
    })?
}

/// A reply as `T`.
///
/// # Errors
/// `Redis` (a parse error) when the reply has another shape.
pub fn parse<T: FromRedisValue>(value: Value) -> Result<T> {
    Ok(redis::from_redis_value(value).map_err(redis::RedisError::from)?)
}
