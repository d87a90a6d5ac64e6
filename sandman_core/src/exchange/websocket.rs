//! One WebSocket between the transport and the app: the handshake decision, messages both
//! ways, and how the connection ended.
//!
//! Same shape as `exchange/request.rs`: one mutex shared by the transport's handshake
//! future (waiting for the app's decision on a oneshot), the connection task (which owns
//! the socket once upgraded) and the app side. Data to send goes into `outbox` and the
//! connection task is signalled; data received goes into `inbox` (at most `max_queue`
//! messages: a fast client cannot flood a slow app) and the app side is woken only if it
//! waits.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::sync::oneshot;

use crate::common::access::AccessRecord;
use crate::common::limits::{RESPONSE_BODY_LOW_WATER, WS_SEND_HIGH_WATER};
use crate::exchange::connection::Connection;
use crate::exchange::head::RequestHead;
use crate::exchange::hub::Hub;
use crate::exchange::request::Room;
use crate::exchange::response::Answer;

/// A complete message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A text message (already checked to be UTF-8).
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// Something for the connection task to write.
#[derive(Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A text message.
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A close frame with code and reason; the connection then waits for the peer's close.
    Close(u16, String),
}

/// The app's answer to the handshake.
pub enum Decision {
    /// Complete the handshake (101) with these extra headers.
    Accept {
        /// `Sec-WebSocket-Protocol` to echo.
        subprotocol: Option<String>,
        /// The app's extra headers.
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Any HTTP response instead (403 for a close before accept, the denial extension's
    /// response, or 500 when the app failed).
    Respond(Answer),
}

/// What the app side's wait for a message ends with.
#[derive(Debug, PartialEq, Eq)]
pub enum WsReceived {
    /// A message from the client.
    Message(Inbound),
    /// The connection ended with this code and reason.
    Disconnect(u16, String),
}

struct WsState {
    decision: Option<oneshot::Sender<Decision>>,
    inbox: VecDeque<Inbound>,
    outbox: VecDeque<Outbound>,
    out_bytes: usize,
    /// The connection is over (peer close, network loss, server shutdown).
    gone: bool,
    /// How the connection ended, as the app will be told.
    disconnect: Option<(u16, String)>,
    receive_waker: Option<Waker>,
    room_waker: Option<Waker>,
    /// The app's code has ended: no more app wakers are kept.
    app_ended: bool,
    /// The connection task's waker while it waits for a signal.
    io_waker: Option<Waker>,
}

/// The WebSocket state both sides share.
pub struct WsExchange {
    /// The connection the upgrade request came on.
    pub conn: Arc<Connection>,
    /// The upgrade request's head.
    pub head: RequestHead,
    /// `--ws-max-queue`: received messages held for the app before reading pauses.
    pub max_queue: usize,
    state: Mutex<WsState>,
    /// Set when the connection task has something to do (outbox data, room in the inbox,
    /// the app finished); it polls this through [`WsExchange::poll_signal`].
    signalled: AtomicBool,
}

impl WsExchange {
    /// A WebSocket whose handshake waits for the app's decision on `decision`.
    pub fn new(
        conn: Arc<Connection>,
        head: RequestHead,
        max_queue: usize,
        decision: oneshot::Sender<Decision>,
    ) -> Arc<WsExchange> {
        Arc::new(WsExchange {
            conn,
            head,
            max_queue: max_queue.max(1),
            state: Mutex::new(WsState {
                decision: Some(decision),
                inbox: VecDeque::new(),
                outbox: VecDeque::new(),
                out_bytes: 0,
                gone: false,
                disconnect: None,
                receive_waker: None,
                room_waker: None,
                app_ended: false,
                io_waker: None,
            }),
            signalled: AtomicBool::new(false),
        })
    }

    /// The server's shared state.
    pub fn hub(&self) -> &Hub {
        &self.conn.hub
    }

    fn lock(&self) -> MutexGuard<'_, WsState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The handshake's access-log record, for `status`.
    pub fn access_record(&self, status: u16) -> AccessRecord {
        self.head.access_record(&self.conn.peer, status)
    }

    // -- the transport's side ------------------------------------------------------------

    /// The connection task waits here for something to do.
    pub fn poll_signal(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.signalled.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        let mut state = self.lock();
        if self.signalled.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        state.io_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Whether the app's inbox has room for another message.
    pub fn inbox_has_room(&self) -> bool {
        self.lock().inbox.len() < self.max_queue
    }

    /// The connection ended with this code: the app's next wait reports it, and every
    /// later send fails.
    pub fn end(&self, code: u16, reason: &str) {
        let mut state = self.lock();
        state.gone = true;
        state
            .disconnect
            .get_or_insert_with(|| (code, reason.to_owned()));
        state.decision = None;
        let wakers = [state.receive_waker.take(), state.room_waker.take()];
        drop(state);
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// A message arrived from the client.
    pub fn push_inbound(&self, message: Inbound) {
        let mut state = self.lock();
        state.inbox.push_back(message);
        let waker = state.receive_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Take what the app queued for the socket; wakes an app waiting for room.
    pub fn take_outbound(&self, into: &mut Vec<Outbound>) {
        let mut state = self.lock();
        into.extend(state.outbox.drain(..));
        state.out_bytes = 0;
        let waker = state.room_waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    // -- the app's side -------------------------------------------------------------------

    /// Whether the connection is over.
    pub fn is_gone(&self) -> bool {
        self.lock().gone
    }

    /// Give the handshake future the app's decision (ignored once it stopped waiting).
    pub fn decide(&self, decision: Decision) {
        if let Some(tx) = self.lock().decision.take() {
            let _ = tx.send(decision);
        }
    }

    /// Stop waiting for a decision: the handshake future drops the connection.
    pub fn abandon_decision(&self) {
        self.lock().decision = None;
    }

    /// The app will be told the connection ended with `code`, unless it already ended.
    pub fn report_disconnect(&self, code: u16) {
        self.lock()
            .disconnect
            .get_or_insert_with(|| (code, String::new()));
    }

    /// The next message or the disconnect, if there is one; else keeps the waker
    /// `register` makes. The second value is the connection task's waker when taking a
    /// message made room in a full inbox: the caller wakes it.
    pub fn receive(&self, register: impl FnOnce() -> Waker) -> (Option<WsReceived>, Option<Waker>) {
        let mut state = self.lock();
        if let Some(message) = state.inbox.pop_front() {
            let was_full = state.inbox.len() + 1 >= self.max_queue;
            let waker = if was_full {
                self.signal(&mut state)
            } else {
                None
            };
            return (Some(WsReceived::Message(message)), waker);
        }
        if let Some((code, reason)) = &state.disconnect {
            return (Some(WsReceived::Disconnect(*code, reason.clone())), None);
        }
        if !state.app_ended {
            state.receive_waker = Some(register());
        }
        (None, None)
    }

    /// Queue `item` (`size` bytes) for the socket. Returns the connection task's waker for
    /// the caller to wake, and whether the outbox is now over its high-water mark.
    pub fn send(&self, item: Outbound, size: usize) -> (Option<Waker>, bool) {
        let mut state = self.lock();
        state.outbox.push_back(item);
        state.out_bytes += size;
        let full = state.out_bytes > WS_SEND_HIGH_WATER;
        (self.signal(&mut state), full)
    }

    /// Whether the app may send more now; when not, keeps `waker` and wakes it once the
    /// outbox drains or the connection ends.
    pub fn wait_for_room(&self, waker: impl FnOnce() -> Waker) -> Room {
        let mut state = self.lock();
        if state.gone {
            Room::Gone
        } else if state.out_bytes <= RESPONSE_BODY_LOW_WATER {
            Room::Ready
        } else {
            if !state.app_ended {
                state.room_waker = Some(waker());
            }
            Room::Wait
        }
    }

    /// The app's code ended; `close` (a close frame to send, when the socket is still
    /// open) goes out first. The connection task is woken now (a rare path), and the app
    /// side's wakers are dropped (they refer back to state that refers to this exchange).
    pub fn app_ended(&self, close: Option<u16>) {
        let mut state = self.lock();
        if let Some(code) = close {
            state.outbox.push_back(Outbound::Close(code, String::new()));
        }
        state.app_ended = true;
        let wakers = (state.receive_waker.take(), state.room_waker.take());
        let io_waker = self.signal(&mut state);
        drop(state);
        drop(wakers);
        if let Some(waker) = io_waker {
            waker.wake();
        }
    }

    /// Signal the connection task; returns its waker for the caller to wake.
    fn signal(&self, state: &mut WsState) -> Option<Waker> {
        self.signalled.store(true, Ordering::Release);
        state.io_waker.take()
    }
}
