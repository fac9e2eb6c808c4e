//! The tower layer every call passes before its handler: who is calling
//! (`auth`), whether there is room for the call (`limits`), and what it cost
//! (per-RPC metrics). One layer rather than three so that a refusal is
//! counted under the code the caller saw.
//!
//! In order, for each call:
//! 1. The connection is marked as having sent a request (see
//!    [`ConnectionInfo`]), which lifts its header timeout.
//! 2. The bearer token is checked against the role the method needs:
//!    `UNAUTHENTICATED` or `PERMISSION_DENIED` before anything is read.
//! 3. The request body is read through [`LimitedBody`]: a message declared
//!    larger than the limit, or bytes past the global buffer budget, end the
//!    call with `RESOURCE_EXHAUSTED`; a body that stalls ends it with
//!    `DEADLINE_EXCEEDED`.
//! 4. A unary call whose body has arrived takes one of the in-flight places,
//!    a streaming call one of the streaming places; none free, the call is
//!    shed with `UNAVAILABLE` and `grpc-retry-pushback-ms`. A call still
//!    receiving its body holds no place, so idle or slow callers cannot
//!    crowd out the ones that are ready.
//! 5. When the response ends, `rapport_requests_total{service,method,code}`
//!    and `rapport_request_duration_seconds{service,method}` are recorded.
//!
//! Health and reflection skip the in-flight places: a probe must answer
//! under load.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::transport::server::TcpConnectInfo;
use tonic::{Code, Status};

use super::auth::{self, Caller, Denied, Role, Tokens};
use super::limits::Limits;

/// Access settings of a server.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Empty: calls are not checked (and a warning says so off loopback).
    pub tokens: Tokens,
    /// Health and reflection need a `read` token too.
    pub protect_health: bool,
}

/// The connection a request came on, as the accept loop made it: its
/// addresses and whether it has sent a request yet.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub tcp: TcpConnectInfo,
    pub served: Arc<AtomicBool>,
}

struct State {
    access: Access,
    limits: Limits,
    unary: Arc<Semaphore>,
    streaming: Arc<Semaphore>,
    /// Bytes of request bodies received and not yet a whole message.
    buffered: AtomicUsize,
}

/// The layer; clones share their budgets.
#[derive(Clone)]
pub struct GateLayer {
    state: Arc<State>,
}

impl GateLayer {
    pub fn new(access: Access, limits: Limits) -> GateLayer {
        GateLayer {
            state: Arc::new(State {
                unary: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
                streaming: Arc::new(Semaphore::new(limits.max_streaming_calls.max(1))),
                buffered: AtomicUsize::new(0),
                access,
                limits,
            }),
        }
    }
}

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: Arc::clone(&self.state),
        }
    }
}

#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<State>,
}

/// Methods whose request is a stream of messages.
fn is_streaming(path: &str) -> bool {
    matches!(
        path,
        "/rapport.v1.Scoring/ScoreStream"
            | "/rapport.v1.Ingest/StreamEvents"
            | "/grpc.health.v1.Health/Watch"
            | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
}

fn is_operations(service: &str) -> bool {
    service.starts_with("grpc.")
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<Body>> for Gate<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The clone is ready only if polled: keep the ready one for this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = Arc::clone(&self.state);
        Box::pin(async move {
            let started = Instant::now();
            if let Some(connection) = request.extensions().get::<ConnectionInfo>() {
                connection.served.store(true, Ordering::Relaxed);
            }
            let path = request.uri().path().to_string();
            let mut call = CallMetrics::new(&path, started);
            let needs = auth::required_role(&path, state.access.protect_health);
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|h| h.as_bytes());
            let caller = match auth::check(&state.access.tokens, header, needs) {
                Ok(caller) => caller,
                Err(denied) => return Ok(call.refuse(denied_status(&denied, needs))),
            };
            request.extensions_mut().insert(caller);
            let streaming = is_streaming(&path);
            let (parts, body) = request.into_parts();
            let timeout = if streaming {
                Deadline::Idle(state.limits.idle_timeout)
            } else {
                Deadline::Whole(state.limits.request_timeout)
            };
            let limited = LimitedBody::new(body, Arc::clone(&state), timeout);
            let operations = is_operations(call.service.as_str());
            let (body, permit) = if streaming {
                let permit = match shed_or_permit(&state.streaming, operations) {
                    Ok(permit) => permit,
                    Err(()) => return Ok(call.refuse(shed_status(&state, "streaming calls"))),
                };
                (Body::new(limited), permit)
            } else {
                let whole = match limited.collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(status) => return Ok(call.refuse(status)),
                };
                let permit = match shed_or_permit(&state.unary, operations) {
                    Ok(permit) => permit,
                    Err(()) => return Ok(call.refuse(shed_status(&state, "calls in flight"))),
                };
                (Body::new(http_body_util::Full::new(whole)), permit)
            };
            let response = inner.call(http::Request::from_parts(parts, body)).await?;
            let (parts, body) = response.into_parts();
            if let Some(code) = parts.headers.get("grpc-status") {
                call.code = Some(Code::from_bytes(code.as_bytes()));
            }
            Ok(http::Response::from_parts(
                parts,
                Body::new(ObservedBody {
                    inner: body,
                    call: Some(call),
                    _permit: permit,
                }),
            ))
        })
    }
}

/// A place for the call, or `Err` when there is none; operations calls
/// (health, reflection) need none.
fn shed_or_permit(
    places: &Arc<Semaphore>,
    operations: bool,
) -> Result<Option<OwnedSemaphorePermit>, ()> {
    if operations {
        return Ok(None);
    }
    Arc::clone(places)
        .try_acquire_owned()
        .map(Some)
        .map_err(|_| ())
}

fn shed_status(state: &State, what: &str) -> Status {
    let pushback = state.limits.retry_pushback.as_millis();
    let mut status = Status::unavailable(format!(
        "the server is at its limit of {what}; retry after {pushback} ms"
    ));
    if let Ok(value) = pushback.to_string().parse() {
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", value);
    }
    status
}

fn denied_status(denied: &Denied, needs: Option<Role>) -> Status {
    match denied {
        Denied::Unauthenticated(_) => Status::unauthenticated(denied.to_string()),
        Denied::PermissionDenied { .. } => {
            tracing::info!(target: "audit", denied = %denied, needs = ?needs, "call refused");
            Status::permission_denied(denied.to_string())
        }
    }
}

/// How long a request body may take.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// The whole body, from the start of the call.
    Whole(Duration),
    /// Each message, from the one before.
    Idle(Duration),
}

/// A request body read under the limits: message sizes from the gRPC
/// framing, bytes in transit against the shared budget, and a deadline.
struct LimitedBody {
    inner: Body,
    state: Arc<State>,
    deadline: Deadline,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// The 5-byte gRPC message prefix being read, and how much of it is in.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to come.
    remaining: usize,
    /// Bytes charged to the budget for the current message.
    charged: usize,
}

impl LimitedBody {
    fn new(inner: Body, state: Arc<State>, deadline: Deadline) -> LimitedBody {
        let first = match deadline {
            Deadline::Whole(d) | Deadline::Idle(d) => d,
        };
        LimitedBody {
            inner,
            state,
            deadline,
            timer: Box::pin(tokio::time::sleep(first)),
            prefix: [0; 5],
            prefix_len: 0,
            remaining: 0,
            charged: 0,
        }
    }

    fn release(&mut self) {
        if self.charged > 0 {
            self.state
                .buffered
                .fetch_sub(self.charged, Ordering::Relaxed);
            self.charged = 0;
        }
    }

    /// Follows the gRPC framing through `data` and charges it.
    fn account(&mut self, data: &Bytes) -> Result<(), Status> {
        let state = Arc::clone(&self.state);
        let limits = &state.limits;
        let mut bytes = data.clone();
        while bytes.has_remaining() {
            if self.remaining == 0 && self.prefix_len < 5 {
                let take = (5 - self.prefix_len).min(bytes.remaining());
                bytes.copy_to_slice(&mut self.prefix[self.prefix_len..self.prefix_len + take]);
                self.prefix_len += take;
                if self.prefix_len == 5 {
                    let length = u32::from_be_bytes([
                        self.prefix[1],
                        self.prefix[2],
                        self.prefix[3],
                        self.prefix[4],
                    ]) as usize;
                    if length > limits.max_message_bytes {
                        return Err(Status::resource_exhausted(format!(
                            "a message of {length} bytes is larger than the limit of {} bytes (--max-message-mb)",
                            limits.max_message_bytes
                        )));
                    }
                    self.remaining = length;
                    if length == 0 {
                        self.prefix_len = 0;
                    }
                }
                continue;
            }
            let take = self.remaining.min(bytes.remaining());
            bytes.advance(take);
            self.remaining -= take;
            let total = state.buffered.fetch_add(take, Ordering::Relaxed) + take;
            self.charged += take;
            if total > limits.max_buffered_bytes {
                self.release();
                return Err(Status::resource_exhausted(format!(
                    "the server holds its limit of {} bytes of requests still arriving (--max-buffered-mb); retry later",
                    limits.max_buffered_bytes
                )));
            }
            if self.remaining == 0 {
                // A whole message: tonic decodes it now, and it is bounded by
                // the in-flight places from here on.
                self.release();
                self.prefix_len = 0;
            }
        }
        Ok(())
    }
}

impl Drop for LimitedBody {
    fn drop(&mut self) {
        self.release();
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = this.account(data) {
                        return Poll::Ready(Some(Err(status)));
                    }
                    if let Deadline::Idle(d) = this.deadline {
                        this.timer.as_mut().reset(tokio::time::Instant::now() + d);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let (what, d) = match this.deadline {
                    Deadline::Whole(d) => ("the request did not arrive whole within", d),
                    Deadline::Idle(d) => ("the stream sent no message for", d),
                };
                Poll::Ready(Some(Err(Status::deadline_exceeded(format!(
                    "{what} {} s",
                    d.as_secs_f64()
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A call's metric labels and clock.
struct CallMetrics {
    service: String,
    method: String,
    started: Instant,
    code: Option<Code>,
}

impl CallMetrics {
    fn new(path: &str, started: Instant) -> CallMetrics {
        let (service, method) = auth::split_path(path);
        CallMetrics {
            service: service.to_string(),
            method: method.to_string(),
            started,
            code: None,
        }
    }

    /// A response that ends the call with `status`, counted.
    fn refuse(mut self, status: Status) -> http::Response<Body> {
        self.code = Some(status.code());
        self.record();
        status.into_http()
    }

    fn record(&mut self) {
        let code = self.code.unwrap_or(Code::Ok);
        // Unknown paths are the caller's to choose: one label for all of them.
        let method = if code == Code::Unimplemented {
            "unknown".to_string()
        } else {
            std::mem::take(&mut self.method)
        };
        let service = std::mem::take(&mut self.service);
        let code_label = format!("{code:?}");
        if code == Code::NotFound {
            metrics::counter!("rapport_not_found_total", "method" => method.clone()).increment(1);
        }
        metrics::histogram!(
            "rapport_request_duration_seconds",
            "service" => service.clone(),
            "method" => method.clone()
        )
        .record(self.started.elapsed().as_secs_f64());
        metrics::counter!(
            "rapport_requests_total",
            "service" => service,
            "method" => method,
            "code" => code_label
        )
        .increment(1);
    }
}

/// The response body, recording the call when it ends (or is dropped: the
/// caller went away) and holding its in-flight place until then.
struct ObservedBody<B> {
    inner: B,
    call: Option<CallMetrics>,
    _permit: Option<OwnedSemaphorePermit>,
}

impl<B> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        if let Some(mut call) = self.call.take() {
            if call.code.is_none() {
                call.code = Some(Code::Cancelled);
            }
            call.record();
        }
    }
}

impl<B> HttpBody for ObservedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match &polled {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref() {
                    if let Some(call) = this.call.as_mut() {
                        call.code = Some(
                            trailers
                                .get("grpc-status")
                                .map_or(Code::Unknown, |c| Code::from_bytes(c.as_bytes())),
                        );
                    }
                }
            }
            Some(Err(_)) => {
                if let Some(call) = this.call.as_mut() {
                    call.code.get_or_insert(Code::Internal);
                }
            }
            None => {
                if let Some(mut call) = this.call.take() {
                    call.record();
                }
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The caller a handler serves, as the gate identified them.
pub fn caller<T>(request: &tonic::Request<T>) -> Caller {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .unwrap_or_else(Caller::anonymous)
}
