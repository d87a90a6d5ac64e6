//! The ASGI rules for a WebSocket's messages, as a plain state machine.
//!
//! Theory of operation
//! -------------------
//! Which `send()` is legal depends only on where the socket is:
//!
//! ```text
//!  Handshake --accept--> Open --close--> Closed
//!      |  \--close--> Rejected (HTTP 403)
//!      \--http.response.start--> Denying --body(more=False)--> Denied
//! ```
//!
//! plus `Gone` once the peer or the server ended the connection (every later send raises
//! the spec-2.4 `OSError` subclass). The transport asks [`WsRules::on_send`] what a message
//! means and gets a [`WsAction`] or a [`WsError`] to raise.

use std::fmt;

/// Where the WebSocket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsPhase {
    /// `websocket.connect` delivered (or about to be); waiting for accept/close/denial.
    Handshake,
    /// Accepted: messages flow both ways.
    Open,
    /// The app sent `websocket.close` after accepting.
    Closed,
    /// The app closed before accepting: HTTP 403.
    Rejected,
    /// Denial response started (`websocket.http.response.start`), body pending.
    Denying,
    /// Denial response complete.
    Denied,
    /// The connection is gone (peer close, network loss, server shutdown).
    Gone,
}

/// What an app message asks the transport to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsAction {
    /// Complete the handshake (101).
    Accept,
    /// Refuse the handshake with HTTP 403.
    Reject,
    /// Send a data message.
    Send,
    /// Send a close frame with this code.
    Close(u16),
    /// Start the denial response.
    DenyStart,
    /// Add to the denial body; `true` when it is the last part.
    DenyBody(bool),
}

/// The kinds of message an app sends on a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsSend {
    /// `websocket.accept`
    Accept,
    /// `websocket.send`
    Send,
    /// `websocket.close`
    Close,
    /// `websocket.http.response.start`
    ResponseStart,
    /// `websocket.http.response.body`
    ResponseBody,
}

impl WsSend {
    /// The message type string.
    pub fn name(self) -> &'static str {
        match self {
            WsSend::Accept => "websocket.accept",
            WsSend::Send => "websocket.send",
            WsSend::Close => "websocket.close",
            WsSend::ResponseStart => "websocket.http.response.start",
            WsSend::ResponseBody => "websocket.http.response.body",
        }
    }
}

/// A message that is not legal now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The connection is gone: raise `ClientDisconnected`.
    Disconnected,
    /// Out of order: raise `RuntimeError` with this text.
    Unexpected(String),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Disconnected => write!(f, "client disconnected"),
            WsError::Unexpected(text) => write!(f, "{text}"),
        }
    }
}

/// Where one WebSocket is in its rules.
#[derive(Debug, Clone)]
pub struct WsRules {
    phase: WsPhase,
}

impl Default for WsRules {
    fn default() -> Self {
        Self::new()
    }
}

impl WsRules {
    /// A socket whose handshake is pending.
    pub fn new() -> WsRules {
        WsRules {
            phase: WsPhase::Handshake,
        }
    }

    /// Current phase.
    pub fn phase(&self) -> WsPhase {
        self.phase
    }

    /// The connection ended (any reason).
    pub fn gone(&mut self) {
        self.phase = WsPhase::Gone;
    }

    /// Apply one app message. `close_code` is the code of a `websocket.close`.
    pub fn on_send(
        &mut self,
        kind: WsSend,
        close_code: u16,
        more_body: bool,
    ) -> Result<WsAction, WsError> {
        use WsPhase::*;
        let action = match (self.phase, kind) {
            (Gone, _) => return Err(WsError::Disconnected),
            (Handshake, WsSend::Accept) => {
                self.phase = Open;
                WsAction::Accept
            }
            (Handshake, WsSend::Close) => {
                self.phase = Rejected;
                WsAction::Reject
            }
            (Handshake, WsSend::ResponseStart) => {
                self.phase = Denying;
                WsAction::DenyStart
            }
            (Handshake, other) => {
                return Err(WsError::Unexpected(format!(
                    "Expected ASGI message 'websocket.accept', 'websocket.close', or \
                     'websocket.http.response.start' but got '{}'.",
                    other.name()
                )))
            }
            (Open, WsSend::Send) => WsAction::Send,
            (Open, WsSend::Close) => {
                self.phase = Closed;
                WsAction::Close(close_code)
            }
            (Open, other) => {
                return Err(WsError::Unexpected(format!(
                    "Expected ASGI message 'websocket.send' or 'websocket.close', but got '{}'.",
                    other.name()
                )))
            }
            (Denying, WsSend::ResponseBody) => {
                if !more_body {
                    self.phase = Denied;
                }
                WsAction::DenyBody(!more_body)
            }
            (Denying, other) => {
                return Err(WsError::Unexpected(format!(
                    "Expected ASGI message 'websocket.http.response.body', but got '{}'.",
                    other.name()
                )))
            }
            (Closed | Rejected | Denied, other) => {
                return Err(WsError::Unexpected(format!(
                    "Unexpected ASGI message '{}', after sending 'websocket.close' or response \
                     already completed.",
                    other.name()
                )))
            }
        };
        Ok(action)
    }
}

/// How a socket ends when the app's coroutine ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsEnding {
    /// Never answered the handshake: HTTP 500.
    NoHandshake,
    /// Accepted and still open: close the socket (1000 after a return, 1011 after an error).
    StillOpen,
    /// Denial response started but not finished: drop the connection.
    DenialIncomplete,
    /// Nothing to do.
    Done,
}

impl WsRules {
    /// The app's coroutine ended.
    pub fn finish(&mut self) -> WsEnding {
        let ending = match self.phase {
            WsPhase::Handshake => WsEnding::NoHandshake,
            WsPhase::Open => WsEnding::StillOpen,
            WsPhase::Denying => WsEnding::DenialIncomplete,
            _ => WsEnding::Done,
        };
        if ending != WsEnding::Done {
            self.phase = WsPhase::Gone;
        }
        ending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_send_close() {
        let mut c = WsRules::new();
        assert_eq!(c.on_send(WsSend::Accept, 0, false), Ok(WsAction::Accept));
        assert_eq!(c.on_send(WsSend::Send, 0, false), Ok(WsAction::Send));
        assert_eq!(
            c.on_send(WsSend::Close, 4000, false),
            Ok(WsAction::Close(4000))
        );
        assert!(matches!(
            c.on_send(WsSend::Send, 0, false),
            Err(WsError::Unexpected(_))
        ));
        assert_eq!(c.finish(), WsEnding::Done);
    }

    #[test]
    fn close_before_accept_rejects() {
        let mut c = WsRules::new();
        assert_eq!(c.on_send(WsSend::Close, 1000, false), Ok(WsAction::Reject));
        assert_eq!(c.phase(), WsPhase::Rejected);
    }

    #[test]
    fn send_before_accept_is_an_error() {
        let mut c = WsRules::new();
        let err = c.on_send(WsSend::Send, 0, false).unwrap_err();
        assert!(err.to_string().contains("but got 'websocket.send'"));
        assert_eq!(c.finish(), WsEnding::NoHandshake);
    }

    #[test]
    fn denial_response() {
        let mut c = WsRules::new();
        assert_eq!(
            c.on_send(WsSend::ResponseStart, 0, false),
            Ok(WsAction::DenyStart)
        );
        assert!(c.on_send(WsSend::ResponseStart, 0, false).is_err());
        assert_eq!(
            c.on_send(WsSend::ResponseBody, 0, true),
            Ok(WsAction::DenyBody(false))
        );
        assert_eq!(
            c.on_send(WsSend::ResponseBody, 0, false),
            Ok(WsAction::DenyBody(true))
        );
        assert_eq!(c.phase(), WsPhase::Denied);
        assert!(c.on_send(WsSend::Send, 0, false).is_err());
    }

    #[test]
    fn gone_raises_disconnected() {
        let mut c = WsRules::new();
        c.on_send(WsSend::Accept, 0, false).unwrap();
        c.gone();
        assert_eq!(
            c.on_send(WsSend::Send, 0, false),
            Err(WsError::Disconnected)
        );
        assert_eq!(c.finish(), WsEnding::Done);
    }

    #[test]
    fn returning_while_open_needs_a_close() {
        let mut c = WsRules::new();
        c.on_send(WsSend::Accept, 0, false).unwrap();
        assert_eq!(c.finish(), WsEnding::StillOpen);
    }
}
