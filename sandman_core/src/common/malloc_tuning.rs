//! glibc malloc settings for a process that lends bodies to IO threads.
//!
//! Python allocates every object over 512 bytes with the C library's `malloc`. A borrowed
//! body (`asgi/body_bytes.rs`) is freed when the IO thread has written it, a little after
//! the app let go of it, so under load many 64 KiB blocks are freed together at the top of
//! the heap.
//! With glibc's default 128 KiB trim threshold the heap is then shrunk with `brk` and
//! grown again (page faults, zeroed pages) for the next requests: the 64 KiB echo lost 30%
//! of its throughput to that (docs/performance.md).
//!
//! We fix the thresholds at the values glibc's own dynamic tuning may reach: blocks from
//! 4 MiB up come from `mmap` (returned to the system as soon as they are freed), and up to
//! 64 MiB free at the top of the heap is kept for reuse. A user who set glibc's malloc
//! variables themselves keeps their settings. Other C libraries are left alone.

/// Blocks this large or larger are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 4 * 1024 * 1024;

/// Free memory at the top of the heap kept instead of returned with `brk`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 64 * 1024 * 1024;

/// True when the user configured glibc malloc through the environment.
fn user_configured(env: impl Fn(&str) -> Option<String>) -> bool {
    [
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TOP_PAD_",
    ]
    .iter()
    .any(|name| env(name).is_some())
        || env("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc."))
}

/// Apply the settings once per process (a no-op off glibc or when the user set their own).
pub fn tune() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if user_configured(|name| std::env::var(name).ok()) {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is thread-safe in glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_own_settings_win() {
        let none = |_: &str| None;
        assert!(!user_configured(none));
        assert!(user_configured(
            |n: &str| (n == "MALLOC_TRIM_THRESHOLD_").then(|| "131072".to_owned())
        ));
        assert!(user_configured(
            |n: &str| (n == "GLIBC_TUNABLES").then(|| "glibc.malloc.trim_threshold=1".to_owned())
        ));
        assert!(!user_configured(
            |n: &str| (n == "GLIBC_TUNABLES").then(|| "glibc.pthread.rseq=0".to_owned())
        ));
    }
}
