//! The bounds a server keeps on what callers can make it hold or do, each a
//! flag of `serve` (README, "Limits").
//!
//! Memory held for requests is bounded by three of them together: a request
//! body still arriving is charged to `max_buffered_bytes` (past it, the
//! request fails with `RESOURCE_EXHAUSTED`); one that has arrived waits for
//! one of `max_in_flight` places (none free: `UNAVAILABLE` at once, with
//! retry advice); and no message is larger than `max_message_bytes`. So
//! request memory stays under `max_buffered_bytes + max_in_flight ×
//! max_message_bytes`.

use std::time::Duration;

/// What a server admits; see each field's flag in `rapport serve --help`.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest request message (`--max-message-mb`); larger ones get
    /// `RESOURCE_EXHAUSTED` before they are read whole.
    pub max_message_bytes: usize,
    /// Bytes of request bodies still arriving, over all calls
    /// (`--max-buffered-mb`).
    pub max_buffered_bytes: usize,
    /// Unary calls being handled at once (`--max-in-flight`); past it a call
    /// gets `UNAVAILABLE` with `grpc-retry-pushback-ms`.
    pub max_in_flight: usize,
    /// Streaming calls open at once (`--max-streaming-calls`).
    pub max_streaming_calls: usize,
    /// The retry advice sent with a shed call (`--retry-pushback-ms`).
    pub retry_pushback: Duration,
    /// HTTP/2 streams one connection may have open (`--max-concurrent-streams`),
    /// advertised in the server's SETTINGS.
    pub max_concurrent_streams: u32,
    /// A connection must send its first request within this time of being
    /// accepted, TLS handshake included (`--header-timeout-seconds`): one
    /// that never completes its preface or headers is closed.
    pub header_timeout: Duration,
    /// A unary request's body must arrive whole within this time
    /// (`--request-timeout-seconds`).
    pub request_timeout: Duration,
    /// A streaming call that sends no message for this long is ended
    /// (`--idle-timeout-seconds`).
    pub idle_timeout: Duration,
    /// HTTP/2 PINGs on an idle connection (`--keepalive-seconds`); a peer
    /// that does not answer within `keepalive_timeout` is disconnected.
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
    /// Threads for CPU-heavy calls: backtests (`as_of` in the past), batches,
    /// drift (`--blocking-threads`); more such calls wait their turn.
    pub blocking_threads: usize,
    /// TrainModel calls waiting behind the one running
    /// (`--max-queued-trainings`); past it a call gets `RESOURCE_EXHAUSTED`.
    pub max_queued_trainings: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 4 << 20,
            max_buffered_bytes: 256 << 20,
            max_in_flight: 256,
            max_streaming_calls: 256,
            retry_pushback: Duration::from_millis(100),
            max_concurrent_streams: 128,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
            blocking_threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_queued_trainings: 1,
        }
    }
}
