//! Liveness and readiness of a group, judged from its slots: what `/livez` and `/readyz`
//! answer.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::clock::monotonic_ms;
use crate::common::metrics::layout::state;
use crate::common::metrics::segment::Segment;

/// Whether process `pid` still exists: a slot whose owner died without being released
/// (its supervisor was killed) must not hold the group's health hostage.
fn exists(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A health verdict: whether it passes, and a line saying why.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// 200 when true, 503 when not.
    pub ok: bool,
    /// The response body.
    pub detail: String,
}

/// Live unless some server process's event loop has not turned for `timeout`: a loop
/// blocked by a synchronous call, a deadlock, a runaway computation. A process whose loop
/// has not started yet counts as live (readiness covers start-up).
pub fn live(segment: &Segment, timeout: Duration) -> Verdict {
    let now = monotonic_ms();
    let limit = timeout.as_millis() as u64;
    for slot in segment.iter().skip(1) {
        let pid = slot.owner.load(Ordering::Acquire);
        let beat = slot.heartbeat_ms.load(Ordering::Acquire);
        if pid == 0 || beat == 0 || !exists(pid) {
            continue;
        }
        let age = now.saturating_sub(beat);
        if age > limit {
            return Verdict {
                ok: false,
                detail: format!(
                    "event loop of process {pid} has not turned for {:.1} s\n",
                    age as f64 / 1e3
                ),
            };
        }
    }
    Verdict {
        ok: true,
        detail: "ok\n".to_owned(),
    }
}

/// Ready when the group is not shutting down and at least one server process has finished
/// its lifespan startup and listens. A process that began a graceful shutdown is not.
pub fn ready(segment: &Segment) -> Verdict {
    if segment.header().draining.load(Ordering::Acquire) != 0 {
        return Verdict {
            ok: false,
            detail: "shutting down\n".to_owned(),
        };
    }
    let mut draining = 0;
    for slot in segment.iter().skip(1) {
        let pid = slot.owner.load(Ordering::Acquire);
        if pid == 0 || !exists(pid) {
            continue;
        }
        match slot.state.load(Ordering::Acquire) {
            state::READY => {
                return Verdict {
                    ok: true,
                    detail: "ok\n".to_owned(),
                }
            }
            state::DRAINING => draining += 1,
            _ => {}
        }
    }
    Verdict {
        ok: false,
        detail: if draining > 0 {
            "shutting down\n".to_owned()
        } else {
            "starting\n".to_owned()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_states_and_the_group_flag() {
        let segment = Segment::create(3).unwrap();
        assert_eq!(ready(&segment).detail, "starting\n");
        let i = segment.claim(std::process::id() as u64).unwrap();
        assert!(!ready(&segment).ok);
        segment.slot(i).state.store(state::READY, Ordering::Release);
        assert!(ready(&segment).ok);
        segment
            .slot(i)
            .state
            .store(state::DRAINING, Ordering::Release);
        assert_eq!(ready(&segment).detail, "shutting down\n");
        segment.slot(i).state.store(state::READY, Ordering::Release);
        segment.header().draining.store(1, Ordering::Release);
        assert!(!ready(&segment).ok);
    }

    #[test]
    fn a_dead_owner_does_not_count() {
        let segment = Segment::create(3).unwrap();
        // Not a pid any Linux hands out (pid_max is at most 2^22).
        let i = segment.claim(1 << 30).unwrap();
        segment.slot(i).heartbeat_ms.store(1, Ordering::Release);
        segment.slot(i).state.store(state::READY, Ordering::Release);
        assert!(live(&segment, Duration::from_secs(1)).ok);
        assert!(!ready(&segment).ok);
    }

    #[test]
    fn a_stale_heartbeat_fails_liveness() {
        let segment = Segment::create(3).unwrap();
        let pid = std::process::id() as u64;
        let i = segment.claim(pid).unwrap();
        assert!(
            live(&segment, Duration::from_secs(1)).ok,
            "not started: live"
        );
        segment
            .slot(i)
            .heartbeat_ms
            .store(monotonic_ms(), Ordering::Release);
        assert!(live(&segment, Duration::from_secs(1)).ok);
        segment
            .slot(i)
            .heartbeat_ms
            .store(monotonic_ms() - 5000, Ordering::Release);
        let verdict = live(&segment, Duration::from_secs(1));
        assert!(!verdict.ok);
        assert!(
            verdict.detail.contains(&format!("process {pid}")),
            "{}",
            verdict.detail
        );
    }
}
