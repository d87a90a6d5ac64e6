//! The monotonic clocks: the coarse one, for per-request timestamps that need milliseconds
//! at most, and the precise one, for latencies.

/// Milliseconds on the coarse monotonic clock: one vDSO read without a hardware clock
/// access, at the kernel tick's resolution (1-10 ms). The IO thread reads it on every
/// response (the delayed-ACK mark, the idle timeout), so it must cost next to nothing; it
/// is plenty for the 30 ms delayed-ACK bound and for timeouts of seconds.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub fn coarse_now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-parameter; CLOCK_MONOTONIC_COARSE exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Milliseconds on the monotonic clock, counted from the first call (platforms without a
/// coarse clock, and the `portable` build).
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
pub fn coarse_now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // Offset by one second so the first call is never 0, which callers may use as "unset".
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1000
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-parameter and a clock POSIX systems have.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Microseconds on the monotonic clock: one vDSO read, precise enough for request
/// latencies. The clock is the system's, so processes can compare their readings.
pub fn monotonic_us() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) / 1000
}

/// Milliseconds on the monotonic clock (see [`monotonic_us`]).
pub fn monotonic_ms() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC) / 1_000_000
}
