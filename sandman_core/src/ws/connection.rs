//! An accepted WebSocket: move messages between the socket and the app's queues.
//!
//! One task per socket. It writes what the app queued, reads only while the app's inbox
//! has room (`--ws-max-queue` messages: the fast-client back-pressure), pings every
//! `--ws-ping-interval` and closes with 1011 when no pong comes within `--ws-ping-timeout`,
//! sends 1012 when the server shuts down, and after any close waits a bounded time for the
//! peer's close frame. Every way the connection ends is reported to the app exactly once
//! as `websocket.disconnect` with the right code.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use yawc::close::CloseCode;
use yawc::frame::{Frame, OpCode};
use yawc::WebSocketError;

use crate::common::metrics::recorder::{ConnectionKind, Metrics};
use crate::common::settings::WsSettings;
use crate::exchange::websocket::{Inbound, Outbound, WsExchange};
use crate::ws::park::ParkableWs;

type Socket = ParkableWs;

/// How long we wait for the peer's close frame after sending ours (uvicorn's is 10 s).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The close code a read error ends the connection with (the frame yawc already queued
/// carries the same code; RFC 6455 §7.4.1).
fn error_code(err: &WebSocketError) -> u16 {
    match err {
        WebSocketError::FrameTooLarge => 1009,
        WebSocketError::InvalidUTF8 => 1007,
        WebSocketError::ConnectionClosed | WebSocketError::IoError(_) => 1006,
        WebSocketError::InvalidOpCode(_)
        | WebSocketError::ReservedBitsNotZero
        | WebSocketError::ControlFrameFragmented
        | WebSocketError::PingFrameTooLarge
        | WebSocketError::InvalidFragment
        | WebSocketError::InvalidCloseFrame
        | WebSocketError::InvalidCloseCode
        | WebSocketError::InvalidContinuationFrame
        | WebSocketError::CompressionNotSupported => 1002,
        _ => 1011,
    }
}

/// Counts the socket as an open connection for as long as it lives.
struct Counted(Arc<WsExchange>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.hub().connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = &self.0.hub().metrics {
            metrics.connection_closed(ConnectionKind::WebSocket);
        }
    }
}

/// Count a received message (metrics on); the frame's opcode.
fn count_in(metrics: &Option<Metrics>, frame: &Frame) -> OpCode {
    let opcode = frame.opcode();
    if let (Some(metrics), OpCode::Text | OpCode::Binary) = (metrics, opcode) {
        metrics.ws_message_in();
    }
    opcode
}

/// Drive an upgraded socket until it is closed.
pub async fn run(mut ws: Socket, shared: Arc<WsExchange>, settings: &WsSettings) {
    shared.hub().connections.fetch_add(1, Ordering::AcqRel);
    let metrics = shared.hub().metrics.clone();
    if let Some(metrics) = &metrics {
        metrics.connection_opened(ConnectionKind::WebSocket);
    }
    let _counted = Counted(shared.clone());
    let mut shutdown = shared.hub().shutdown.subscribe();
    let mut shutting_down = false;
    let mut pending: Vec<Outbound> = Vec::new();
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let mut next_ping = settings.ping_interval.map_or(far, |d| Instant::now() + d);
    let mut pong_deadline: Option<Instant> = None;
    let mut close_deadline: Option<Instant> = None;
    // The last frame in or out: a socket idle for `park_after` gives back its buffers.
    let mut last_active = Instant::now();

    loop {
        // 1. Write what the app queued (its close included).
        shared.take_outbound(&mut pending);
        if !pending.is_empty() {
            let mut failed = false;
            for item in pending.drain(..) {
                let frame = match item {
                    Outbound::Text(data) => Frame::text(data),
                    Outbound::Binary(data) => Frame::binary(data),
                    Outbound::Close(code, reason) => {
                        close_deadline.get_or_insert(Instant::now() + CLOSE_TIMEOUT);
                        Frame::close(CloseCode::from(code), reason)
                    }
                };
                if close_deadline.is_some() && frame.opcode() != OpCode::Close {
                    continue; // nothing may follow our close frame
                }
                if let (Some(metrics), OpCode::Text | OpCode::Binary) = (&metrics, frame.opcode()) {
                    metrics.ws_message_out();
                }
                if ws.feed(frame).await.is_err() {
                    failed = true;
                    break;
                }
            }
            if failed || ws.flush().await.is_err() {
                shared.end(1006, "");
                return;
            }
            last_active = Instant::now();
        }

        // 2. Wait for the next thing to do. One timer serves the ping and parking.
        let room = shared.inbox_has_room();
        let ping_at = (pong_deadline.is_none() && close_deadline.is_none()).then_some(next_ping);
        let park_at = (ws.parkable() && !ws.is_parked() && room && close_deadline.is_none())
            .then(|| last_active + settings.park_after);
        let timer_at = match (ping_at, park_at) {
            (Some(ping), Some(park)) => Some(ping.min(park)),
            (at, None) | (None, at) => at,
        };
        tokio::select! {
            biased;
            () = std::future::poll_fn(|cx| shared.poll_signal(cx)) => {}
            changed = shutdown.changed(), if !shutting_down => {
                if changed.is_err() || *shutdown.borrow() {
                    shutting_down = true;
                    // 1012 Service Restart: the server is going away.
                    let _ = ws.send(Frame::close(CloseCode::from(1012u16), "")).await;
                    shared.end(1012, "");
                    close_deadline = Some(Instant::now() + Duration::from_secs(2));
                }
            }
            () = sleep_until(timer_at.unwrap_or(far)), if timer_at.is_some() => {
                if ping_at.is_some_and(|at| at <= Instant::now()) {
                    if ws.send(Frame::ping(&b"sandman"[..])).await.is_err() {
                        shared.end(1006, "");
                        return;
                    }
                    pong_deadline = settings.ping_timeout.map(|t| Instant::now() + t);
                    next_ping = settings.ping_interval.map_or(far, |d| Instant::now() + d);
                } else if !ws.try_park().await {
                    // Something is still in flight: look again a `park_after` later.
                    last_active = Instant::now();
                } else {
                    shared.hub().parks.fetch_add(1, Ordering::Relaxed);
                }
            }
            () = sleep_until(pong_deadline.unwrap_or(far)), if pong_deadline.is_some() => {
                let reason = "keepalive ping timeout";
                let _ = ws.send(Frame::close(CloseCode::from(1011u16), reason)).await;
                shared.end(1011, reason);
                return;
            }
            () = sleep_until(close_deadline.unwrap_or(far)), if close_deadline.is_some() => {
                // The peer never answered our close frame.
                shared.end(1006, "");
                return;
            }
            frame = ws.next_frame(), if room => match frame.inspect(|_| last_active = Instant::now()) {
                Ok(frame) if frame.opcode() == OpCode::Close && frame.payload().len() > MAX_CONTROL_PAYLOAD => {
                    // RFC 6455 §5.5: a control frame carries at most 125 bytes. yawc checks
                    // pings only, and has already queued the echo of this close: fail the
                    // connection without sending it (Autobahn 7.3.6).
                    shared.end(1002, "");
                    return;
                }
                Ok(frame) if frame.opcode() == OpCode::Pong && frame.payload().len() > MAX_CONTROL_PAYLOAD => {
                    let _ = ws.send(Frame::close(CloseCode::from(1002u16), "")).await;
                    shared.end(1002, "");
                    return;
                }
                Ok(frame) => match count_in(&metrics, &frame) {
                    OpCode::Text | OpCode::Binary if close_deadline.is_some() => {
                        // After our close, incoming data is dropped (RFC 6455 §5.5.1).
                    }
                    OpCode::Text => {
                        let text = String::from_utf8(frame.into_payload().to_vec())
                            .unwrap_or_default(); // yawc validated UTF-8 already
                        shared.push_inbound(Inbound::Text(text));
                    }
                    OpCode::Binary => shared.push_inbound(Inbound::Binary(frame.into_payload())),
                    OpCode::Pong => {
                        pong_deadline = None;
                    }
                    OpCode::Close => {
                        let code = frame.close_code().map_or(1005, u16::from);
                        let reason = frame.close_reason().ok().flatten().unwrap_or("").to_owned();
                        if close_deadline.is_none() {
                            let _ = ws.flush_owed().await; // echo the close
                        }
                        shared.end(code, &reason);
                        return;
                    }
                    _ => {}
                },
                Err(err) => {
                    let code = error_code(&err);
                    if code != 1006 {
                        // yawc queues a close for framing errors but not for the UTF-8
                        // check of whole messages: flush its frame, then send ours (a no-op
                        // once a close has gone out).
                        let _ = ws.flush_owed().await;
                        let _ = ws.send(Frame::close(CloseCode::from(code), "")).await;
                    }
                    shared.end(code, "");
                    return;
                }
            },
        }
    }
}
