//! The ASGI rules for an HTTP response, as a plain state machine: no Python, no tokio, no
//! sockets.
//!
//! Theory of operation
//! -------------------
//! Every rule about the *order* of an app's `send()` calls lives here, once, whatever
//! transport sits below (ASGI HTTP spec, "Response Start" and "Response Body"):
//!
//! * `http.response.start` exactly once, first;
//! * then `http.response.body` messages, the last one with `more_body=False`;
//! * nothing after the last body (uvicorn and hypercorn raise; so do we — more useful to
//!   app authors than the spec's "ignored");
//! * the app's `content-length`, when it gives one, is enforced: more bytes than promised
//!   raises, fewer than promised when the body ends raises, and either way the connection
//!   is closed rather than left out of step;
//! * bodies of HEAD responses and of 1xx/204/304 statuses are dropped (RFC 9110 §6.4.1).
//!
//! The caller feeds it the facts (status, declared length, body sizes) and gets back a
//! [`BodyStep`] saying what the transport should do, or a [`RuleError`] to raise from
//! `send()`. When the app's coroutine ends, [`HttpRules::finish`] says how the response ends.

use std::fmt;

/// Where the response is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing sent yet; the server can still answer 500 if the app fails.
    AwaitingStart,
    /// `http.response.start` received; the head is held until the first body so that a
    /// one-shot body goes out with `content-length` in a single write.
    HeadHeld,
    /// Head handed to the transport, more body to come.
    Streaming,
    /// The last body was sent; the trailers the start announced are still to come.
    AwaitingTrailers,
    /// The last body (and any trailers) was sent.
    Complete,
    /// The response was cut short (app error, protocol error or disconnect).
    Aborted,
}

/// What the transport must do with one `http.response.body`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyStep {
    /// First and last body: send head and this body as one complete response.
    Whole,
    /// First body of several: send the head and start a streamed body with this chunk.
    Begin,
    /// A middle chunk of a streamed body.
    Chunk,
    /// The last chunk of a streamed body.
    End,
}

/// What the transport must do with one `http.response.trailers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailersStep {
    /// More trailer fields follow in another message.
    More,
    /// The last trailer fields: the response ends with them.
    Last,
}

/// How a response ends when the app's coroutine returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The response was complete.
    Complete,
    /// Nothing was sent: answer 500 ("ASGI callable returned without starting response.").
    NotStarted,
    /// Started but not finished: close the connection ("... without completing response.").
    Incomplete,
    /// Already aborted (disconnect, earlier error): nothing more to do.
    Aborted,
}

/// An app message that breaks the rules; raised from `send()` as `RuntimeError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleError {
    /// A body before the start.
    ExpectedStart(&'static str),
    /// A start after the start.
    AlreadyStarted(&'static str),
    /// Anything after the last body.
    AlreadyCompleted(&'static str),
    /// More body than the app's `content-length`.
    LongerThanContentLength,
    /// The body ended before the app's `content-length` was reached.
    ShorterThanContentLength,
    /// `send()` on a response that was already aborted.
    Aborted(&'static str),
    /// Anything but trailers after the last body of a response that announced them.
    ExpectedTrailers(&'static str),
    /// Trailers before the last body.
    BodyNotFinished(&'static str),
    /// Trailers from a response whose start did not announce them.
    TrailersNotAnnounced(&'static str),
    /// A whole-response message (a file) after body parts were sent.
    BodyStarted(&'static str),
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Wording follows uvicorn's, so logs and tests written against it still match.
        match self {
            RuleError::ExpectedStart(t) => {
                write!(
                    f,
                    "Expected ASGI message 'http.response.start', but got '{t}'."
                )
            }
            RuleError::AlreadyStarted(t) => {
                write!(
                    f,
                    "Unexpected ASGI message '{t}' sent, after response already started."
                )
            }
            RuleError::AlreadyCompleted(t) => {
                write!(
                    f,
                    "Unexpected ASGI message '{t}' sent, after response already completed."
                )
            }
            RuleError::LongerThanContentLength => {
                write!(f, "Response content longer than Content-Length")
            }
            RuleError::ShorterThanContentLength => {
                write!(f, "Response content shorter than Content-Length")
            }
            RuleError::Aborted(t) => {
                write!(
                    f,
                    "Unexpected ASGI message '{t}' sent, after response was aborted."
                )
            }
            RuleError::ExpectedTrailers(t) => {
                write!(
                    f,
                    "Expected ASGI message 'http.response.trailers', but got '{t}'."
                )
            }
            RuleError::BodyNotFinished(t) => {
                write!(
                    f,
                    "Unexpected ASGI message '{t}' sent, before the last body."
                )
            }
            RuleError::BodyStarted(t) => {
                write!(
                    f,
                    "Unexpected ASGI message '{t}' sent, after the response body started."
                )
            }
            RuleError::TrailersNotAnnounced(t) => write!(
                f,
                "Unexpected ASGI message '{t}' sent: 'http.response.start' did not set 'trailers'."
            ),
        }
    }
}

/// RFC 9110 §6.4.1 / §15.3.5 / §15.4.5: these responses never carry content.
pub fn status_forbids_body(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Where one response is in its rules.
#[derive(Debug, Clone)]
pub struct HttpRules {
    phase: Phase,
    head_request: bool,
    status: u16,
    declared_length: Option<u64>,
    sent: u64,
    /// The start announced trailers (the trailers extension).
    trailers: bool,
}

impl HttpRules {
    /// A fresh response; `head_request` is true for `HEAD`.
    pub fn new(head_request: bool) -> HttpRules {
        HttpRules {
            phase: Phase::AwaitingStart,
            head_request,
            status: 0,
            declared_length: None,
            sent: 0,
            trailers: false,
        }
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Status given in `http.response.start` (0 before it).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// True once the transport has been handed the response head.
    pub fn head_sent(&self) -> bool {
        matches!(
            self.phase,
            Phase::Streaming | Phase::AwaitingTrailers | Phase::Complete
        ) || (self.phase == Phase::Aborted && self.status != 0)
    }

    /// Whether body bytes are written to the wire at all for this response.
    pub fn body_allowed(&self) -> bool {
        !self.head_request && !status_forbids_body(self.status)
    }

    /// The app's `content-length`, if it declared one.
    pub fn declared_length(&self) -> Option<u64> {
        self.declared_length
    }

    /// Whether the start announced trailers.
    pub fn trailers_announced(&self) -> bool {
        self.trailers
    }

    /// `http.response.start`; `trailers`: `http.response.trailers` will follow the body.
    pub fn start(
        &mut self,
        status: u16,
        declared_length: Option<u64>,
        trailers: bool,
    ) -> Result<(), RuleError> {
        const T: &str = "http.response.start";
        match self.phase {
            Phase::AwaitingStart => {
                self.status = status;
                self.declared_length = declared_length;
                self.trailers = trailers;
                self.phase = Phase::HeadHeld;
                Ok(())
            }
            Phase::HeadHeld | Phase::Streaming | Phase::AwaitingTrailers => {
                Err(RuleError::AlreadyStarted(T))
            }
            Phase::Complete => Err(RuleError::AlreadyCompleted(T)),
            Phase::Aborted => Err(RuleError::Aborted(T)),
        }
    }

    /// `http.response.body` carrying `len` bytes.
    pub fn body(&mut self, len: usize, more_body: bool) -> Result<BodyStep, RuleError> {
        const T: &str = "http.response.body";
        let first = match self.phase {
            Phase::AwaitingStart => return Err(RuleError::ExpectedStart(T)),
            Phase::HeadHeld => true,
            Phase::Streaming => false,
            Phase::AwaitingTrailers => return Err(RuleError::ExpectedTrailers(T)),
            Phase::Complete => return Err(RuleError::AlreadyCompleted(T)),
            Phase::Aborted => return Err(RuleError::Aborted(T)),
        };
        if self.body_allowed() {
            self.sent += len as u64;
            if let Some(limit) = self.declared_length {
                if self.sent > limit {
                    self.phase = Phase::Aborted;
                    return Err(RuleError::LongerThanContentLength);
                }
                if !more_body && self.sent < limit {
                    self.phase = Phase::Aborted;
                    return Err(RuleError::ShorterThanContentLength);
                }
            }
        }
        self.phase = match (more_body, self.trailers) {
            (true, _) => Phase::Streaming,
            (false, true) => Phase::AwaitingTrailers,
            (false, false) => Phase::Complete,
        };
        // With trailers to come, the body never ends the response: it streams.
        let ends = !more_body && !self.trailers;
        Ok(match (first, ends) {
            (true, true) => BodyStep::Whole,
            (true, false) => BodyStep::Begin,
            (false, false) => BodyStep::Chunk,
            (false, true) => BodyStep::End,
        })
    }

    /// `http.response.pathsend` (the pathsend extension): a file of `len` bytes is the
    /// whole body, so it may only follow the start, and a declared `content-length` must
    /// match it. A response that announced trailers cannot end with a file (the extension
    /// sends nothing after it).
    pub fn pathsend(&mut self, len: u64) -> Result<(), RuleError> {
        const T: &str = "http.response.pathsend";
        match self.phase {
            Phase::HeadHeld if self.trailers => return Err(RuleError::ExpectedTrailers(T)),
            Phase::HeadHeld => {}
            Phase::AwaitingStart => return Err(RuleError::ExpectedStart(T)),
            Phase::Streaming => return Err(RuleError::BodyStarted(T)),
            Phase::AwaitingTrailers => return Err(RuleError::ExpectedTrailers(T)),
            Phase::Complete => return Err(RuleError::AlreadyCompleted(T)),
            Phase::Aborted => return Err(RuleError::Aborted(T)),
        }
        if self.body_allowed() {
            match self.declared_length {
                Some(limit) if len > limit => {
                    self.phase = Phase::Aborted;
                    return Err(RuleError::LongerThanContentLength);
                }
                Some(limit) if len < limit => {
                    self.phase = Phase::Aborted;
                    return Err(RuleError::ShorterThanContentLength);
                }
                _ => self.sent = len,
            }
        }
        self.phase = Phase::Complete;
        Ok(())
    }

    /// `http.response.early_hint` (the early hints extension): an interim response, so only
    /// before the start.
    pub fn early_hint(&self) -> Result<(), RuleError> {
        const T: &str = "http.response.early_hint";
        match self.phase {
            Phase::AwaitingStart => Ok(()),
            Phase::HeadHeld | Phase::Streaming | Phase::AwaitingTrailers => {
                Err(RuleError::AlreadyStarted(T))
            }
            Phase::Complete => Err(RuleError::AlreadyCompleted(T)),
            Phase::Aborted => Err(RuleError::Aborted(T)),
        }
    }

    /// `http.response.trailers`; `more_trailers` is its flag.
    pub fn trailers(&mut self, more_trailers: bool) -> Result<TrailersStep, RuleError> {
        const T: &str = "http.response.trailers";
        match self.phase {
            Phase::AwaitingTrailers => {
                if more_trailers {
                    return Ok(TrailersStep::More);
                }
                self.phase = Phase::Complete;
                Ok(TrailersStep::Last)
            }
            Phase::AwaitingStart => Err(RuleError::ExpectedStart(T)),
            Phase::HeadHeld | Phase::Streaming if self.trailers => {
                Err(RuleError::BodyNotFinished(T))
            }
            Phase::HeadHeld | Phase::Streaming | Phase::Complete if !self.trailers => {
                Err(RuleError::TrailersNotAnnounced(T))
            }
            Phase::Complete | Phase::HeadHeld | Phase::Streaming => {
                Err(RuleError::AlreadyCompleted(T))
            }
            Phase::Aborted => Err(RuleError::Aborted(T)),
        }
    }

    /// Mark the response as cut short (disconnect, app error, transport error).
    pub fn abort(&mut self) {
        if self.phase != Phase::Complete {
            self.phase = Phase::Aborted;
        }
    }

    /// The app's coroutine ended normally: how does the response end?
    pub fn finish(&mut self) -> Ending {
        let ending = match self.phase {
            Phase::AwaitingStart => Ending::NotStarted,
            Phase::HeadHeld | Phase::Streaming | Phase::AwaitingTrailers => Ending::Incomplete,
            Phase::Complete => Ending::Complete,
            Phase::Aborted => Ending::Aborted,
        };
        if ending == Ending::Incomplete {
            self.phase = Phase::Aborted;
        }
        ending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_response() {
        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        assert_eq!(c.body(5, false), Ok(BodyStep::Whole));
        assert_eq!(c.phase(), Phase::Complete);
        assert_eq!(c.finish(), Ending::Complete);
    }

    #[test]
    fn streamed_response() {
        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        assert_eq!(c.body(1, true), Ok(BodyStep::Begin));
        assert_eq!(c.body(1, true), Ok(BodyStep::Chunk));
        assert_eq!(c.body(0, false), Ok(BodyStep::End));
        assert_eq!(c.finish(), Ending::Complete);
    }

    // (messages, expected error) — uvicorn's test_duplicate_start_message,
    // test_missing_start_message and test_message_after_body_complete, as a table.
    #[test]
    fn out_of_order_messages() {
        let mut c = HttpRules::new(false);
        assert_eq!(
            c.body(0, false),
            Err(RuleError::ExpectedStart("http.response.body"))
        );
        c.start(200, None, false).unwrap();
        assert_eq!(
            c.start(200, None, false),
            Err(RuleError::AlreadyStarted("http.response.start"))
        );
        c.body(0, false).unwrap();
        assert_eq!(
            c.body(0, false),
            Err(RuleError::AlreadyCompleted("http.response.body"))
        );
        assert_eq!(
            c.start(200, None, false),
            Err(RuleError::AlreadyCompleted("http.response.start"))
        );
    }

    #[test]
    fn content_length_is_enforced() {
        let mut c = HttpRules::new(false);
        c.start(200, Some(3), false).unwrap();
        assert_eq!(c.body(2, true), Ok(BodyStep::Begin));
        assert_eq!(c.body(2, true), Err(RuleError::LongerThanContentLength));
        assert_eq!(c.phase(), Phase::Aborted);

        let mut c = HttpRules::new(false);
        c.start(200, Some(3), false).unwrap();
        assert_eq!(c.body(2, false), Err(RuleError::ShorterThanContentLength));

        let mut c = HttpRules::new(false);
        c.start(200, Some(3), false).unwrap();
        assert_eq!(c.body(3, false), Ok(BodyStep::Whole));
    }

    #[test]
    fn head_and_bodyless_statuses_skip_length_checks() {
        let mut c = HttpRules::new(true);
        c.start(200, Some(100), false).unwrap();
        assert!(!c.body_allowed());
        assert_eq!(c.body(0, false), Ok(BodyStep::Whole));

        for status in [204u16, 304] {
            let mut c = HttpRules::new(false);
            c.start(status, None, false).unwrap();
            assert!(!c.body_allowed());
            assert_eq!(c.body(10, false), Ok(BodyStep::Whole));
        }
    }

    #[test]
    fn endings() {
        assert_eq!(HttpRules::new(false).finish(), Ending::NotStarted);
        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        assert_eq!(c.finish(), Ending::Incomplete);
        assert_eq!(c.phase(), Phase::Aborted);
        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        c.body(1, true).unwrap();
        c.abort();
        assert_eq!(c.finish(), Ending::Aborted);
        assert_eq!(
            c.body(1, true),
            Err(RuleError::Aborted("http.response.body"))
        );
    }

    #[test]
    fn trailers_follow_the_last_body() {
        let mut c = HttpRules::new(false);
        c.start(200, None, true).unwrap();
        assert_eq!(
            c.body(3, false),
            Ok(BodyStep::Begin),
            "streams: trailers follow"
        );
        assert_eq!(c.phase(), Phase::AwaitingTrailers);
        assert_eq!(
            c.body(0, false),
            Err(RuleError::ExpectedTrailers("http.response.body"))
        );
        assert_eq!(c.trailers(true), Ok(TrailersStep::More));
        assert_eq!(c.trailers(false), Ok(TrailersStep::Last));
        assert_eq!(c.finish(), Ending::Complete);

        let mut c = HttpRules::new(false);
        c.start(200, None, true).unwrap();
        assert_eq!(c.body(3, true), Ok(BodyStep::Begin));
        assert_eq!(
            c.trailers(false),
            Err(RuleError::BodyNotFinished("http.response.trailers"))
        );
        assert_eq!(c.body(3, false), Ok(BodyStep::Chunk));
        assert_eq!(c.finish(), Ending::Incomplete, "trailers never came");

        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        c.body(0, false).unwrap();
        assert_eq!(
            c.trailers(false),
            Err(RuleError::TrailersNotAnnounced("http.response.trailers"))
        );
    }

    #[test]
    fn pathsend_is_the_whole_body() {
        let mut c = HttpRules::new(false);
        assert_eq!(
            c.pathsend(10),
            Err(RuleError::ExpectedStart("http.response.pathsend"))
        );
        c.start(200, None, false).unwrap();
        assert_eq!(c.pathsend(10), Ok(()));
        assert_eq!(c.finish(), Ending::Complete);

        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        c.body(1, true).unwrap();
        assert_eq!(
            c.pathsend(10),
            Err(RuleError::BodyStarted("http.response.pathsend"))
        );

        let mut c = HttpRules::new(false);
        c.start(200, None, false).unwrap();
        c.pathsend(10).unwrap();
        assert_eq!(
            c.pathsend(10),
            Err(RuleError::AlreadyCompleted("http.response.pathsend"))
        );

        let mut c = HttpRules::new(false);
        c.start(200, None, true).unwrap();
        assert_eq!(
            c.pathsend(10),
            Err(RuleError::ExpectedTrailers("http.response.pathsend"))
        );
    }

    #[test]
    fn early_hints_only_before_the_start() {
        let mut c = HttpRules::new(false);
        assert_eq!(c.early_hint(), Ok(()));
        c.start(200, None, false).unwrap();
        assert_eq!(
            c.early_hint(),
            Err(RuleError::AlreadyStarted("http.response.early_hint"))
        );
    }

    #[test]
    fn pathsend_checks_content_length() {
        let mut c = HttpRules::new(false);
        c.start(200, Some(11), false).unwrap();
        assert_eq!(c.pathsend(10), Err(RuleError::ShorterThanContentLength));
        assert_eq!(c.phase(), Phase::Aborted);

        let mut c = HttpRules::new(false);
        c.start(200, Some(9), false).unwrap();
        assert_eq!(c.pathsend(10), Err(RuleError::LongerThanContentLength));

        let mut c = HttpRules::new(true);
        c.start(200, Some(5), false).unwrap();
        assert_eq!(c.pathsend(10), Ok(()), "HEAD: no body, no check");
    }

    #[test]
    fn messages_match_uvicorn_wording() {
        assert_eq!(
            RuleError::ExpectedStart("http.response.body").to_string(),
            "Expected ASGI message 'http.response.start', but got 'http.response.body'."
        );
        assert_eq!(
            RuleError::AlreadyCompleted("http.response.body").to_string(),
            "Unexpected ASGI message 'http.response.body' sent, after response already completed."
        );
    }
}
