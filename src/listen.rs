//! Accepting connections: the stream of sockets the gRPC server serves.
//!
//! - Accept errors (out of file descriptors, say) back off from 5 ms to 1 s
//!   instead of retrying at once: a failing `accept` returns immediately, and
//!   retrying it in a loop took a whole core while the condition lasted.
//! - A connection must send its first request within the header timeout of
//!   being accepted (TLS handshake included), or it is closed: a peer that
//!   opens connections and never completes its preface or headers
//!   (slow-loris) would otherwise hold each one for ever. The gate marks a
//!   connection as served on its first request ([`ConnectionInfo`]).
//! - Each socket gathers what h2 writes between two flushes (see [`ServerSocket`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, BufWriter, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::Stream;
use tonic::transport::server::Connected;

use crate::api::ConnectionInfo;

const FIRST_BACKOFF: Duration = Duration::from_millis(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Accepted sockets, for `serve_with_incoming_shutdown`. Never yields an
/// error: accept errors are logged and backed off here.
pub struct Incoming {
    listener: TcpListener,
    header_timeout: Duration,
    backoff: Duration,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Incoming {
    pub fn new(listener: TcpListener, header_timeout: Duration) -> Incoming {
        Incoming {
            listener,
            header_timeout,
            backoff: FIRST_BACKOFF,
            pause: None,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<ServerSocket>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(pause) = this.pause.as_mut() {
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.pause = None;
            }
            match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, _))) => {
                    this.backoff = FIRST_BACKOFF;
                    // Small unary replies must not wait for Nagle's algorithm.
                    let _ = stream.set_nodelay(true);
                    return Poll::Ready(Some(Ok(ServerSocket::new(stream, this.header_timeout))));
                }
                Poll::Ready(Err(e)) => {
                    if this.backoff == FIRST_BACKOFF {
                        tracing::warn!(error = %e, "accept failed; backing off");
                    }
                    metrics::counter!("rapport_accept_errors_total").increment(1);
                    this.pause = Some(Box::pin(tokio::time::sleep(this.backoff)));
                    this.backoff = (this.backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// An accepted TCP stream as h2 should see it: it cannot write vectored, and
/// what h2 writes between two flushes leaves in one `send`.
///
/// - Without vectored writes h2 copies DATA frames of up to 1 KiB into its
///   write buffer instead of chaining each one over 256 bytes as a separate
///   buffer, which it may only hold one of: a Score reply (~500 bytes) would
///   otherwise force a flush per reply, and replies to concurrent streams
///   would not share a `write`; a flush per reply costs every RPC, Echo too,
///   a syscall and a wake-up of the peer.
/// - A larger frame (a `ScoreStream` window of replies) is still chained, and
///   h2 writes it as its buffer topped up to 1 KiB, then the rest. Unbuffered,
///   that is two sends, and the peer wakes for a partial frame. Gathered, the
///   server makes half the sends.
///
/// Until the connection's first request, reads fail with `TimedOut` once the
/// header timeout has passed, which closes the connection.
pub struct ServerSocket {
    stream: BufWriter<TcpStream>,
    served: Arc<AtomicBool>,
    header_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ServerSocket {
    /// h2 flushes at most its 16 KiB buffer and one chained frame of at most
    /// 16 KiB (the default frame size) at a time; larger writes go straight
    /// through.
    const WRITE_BUFFER: usize = 32 * 1024 + 1024;

    fn new(stream: TcpStream, header_timeout: Duration) -> ServerSocket {
        ServerSocket {
            stream: BufWriter::with_capacity(Self::WRITE_BUFFER, stream),
            served: Arc::new(AtomicBool::new(false)),
            header_deadline: Some(Box::pin(tokio::time::sleep(header_timeout))),
        }
    }
}

impl Connected for ServerSocket {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo {
            tcp: self.stream.get_ref().connect_info(),
            served: Arc::clone(&self.served),
        }
    }
}

impl AsyncRead for ServerSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.header_deadline.is_some() && this.served.load(Ordering::Relaxed) {
            this.header_deadline = None;
        }
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if read.is_pending() {
            if let Some(deadline) = this.header_deadline.as_mut() {
                if deadline.as_mut().poll(cx).is_ready() {
                    metrics::counter!("rapport_header_timeouts_total").increment(1);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request within the header timeout",
                    )));
                }
            }
        }
        read
    }
}

impl AsyncWrite for ServerSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}
