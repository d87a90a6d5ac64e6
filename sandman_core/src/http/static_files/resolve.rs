//! From the rest of a request path to an open file beneath a mount's directory.
//!
//! Two steps, each enough on its own to keep a request inside the directory:
//!
//! 1. [`relative_path`] decodes the path segment by segment and refuses what has no
//!    business in a file name: `.` and `..` segments (encoded or not), an encoded `/`,
//!    a backslash, NUL, a malformed escape, bytes that are not UTF-8 (overlong forms such as
//!    `%c0%ae` included).
//! 2. [`open_beneath`] opens it with `openat2(RESOLVE_BENEATH)` relative to the mount's
//!    directory: the kernel refuses any resolution that leaves it, through `..` or through a
//!    symlink pointing outside. Symlinks that stay inside are followed. When it refuses (an
//!    absolute symlink is refused even when it points inside), and on kernels without
//!    `openat2` (before 5.6), the opened file's real path is checked against the
//!    directory's instead.

#[cfg(all(target_os = "linux", not(feature = "portable")))]
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;
#[cfg(all(target_os = "linux", not(feature = "portable")))]
use std::sync::atomic::{AtomicBool, Ordering};

use percent_encoding::percent_decode;

/// Why a path is refused before anything is opened.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The path cannot be decoded (bad escape, not UTF-8, NUL): 400.
    Malformed,
    /// The path names something that cannot be a file beneath the mount: 404.
    NotFound,
}

/// A decoded path relative to the mount's directory (`""` for the directory itself), and
/// whether the request path ended in `/`.
#[derive(Debug, PartialEq, Eq)]
pub struct Relative {
    /// Segments joined with `/`, none of them empty, `.` or `..`.
    pub path: String,
    /// The request named a directory (`/docs/`).
    pub trailing_slash: bool,
}

/// Decode `rest` (the request path after the mount's prefix, still percent-encoded).
pub fn relative_path(rest: &str) -> Result<Relative, Refused> {
    let mut path = String::with_capacity(rest.len());
    for raw in rest.split('/') {
        if raw.is_empty() {
            continue;
        }
        let bytes: Vec<u8> = percent_decode(raw.as_bytes()).collect();
        if raw.contains('%') && !well_formed_escapes(raw) {
            return Err(Refused::Malformed);
        }
        let segment = std::str::from_utf8(&bytes).map_err(|_| Refused::Malformed)?;
        if segment.contains('\0') {
            return Err(Refused::Malformed);
        }
        // An encoded `/` would join segments behind the check above; a backslash is a
        // separator to some file systems and to every Windows-minded attacker.
        if segment.contains('/') || segment.contains('\\') || segment == "." || segment == ".." {
            return Err(Refused::NotFound);
        }
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str(segment);
    }
    Ok(Relative {
        path,
        trailing_slash: rest.ends_with('/'),
    })
}

/// Every `%` starts a two-digit hex escape (`percent_decode` passes bad ones through).
fn well_formed_escapes(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        if i + 2 >= bytes.len()
            || !bytes[i + 1].is_ascii_hexdigit()
            || !bytes[i + 2].is_ascii_hexdigit()
        {
            return false;
        }
        i += 3;
    }
    true
}

/// Whether `openat2` is missing (ENOSYS, or refused by a seccomp filter): checked once.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// Open `relative` beneath the directory `root`. `O_NONBLOCK` so that a FIFO placed in
/// the directory cannot stall the IO thread (it is refused as not a regular file later).
/// Leaving the directory is `NotFound` like any missing file.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub fn open_beneath(root: &OwnedFd, canonical_root: &Path, relative: &str) -> io::Result<File> {
    let name = if relative.is_empty() { "." } else { relative };
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2(root, &c_name) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            // The resolution left the directory, or met an absolute symlink (which
            // `RESOLVE_BENEATH` refuses even when it points inside): decide by where the
            // file really is.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
            other => return other,
        }
    }
    open_and_check(root, canonical_root, &c_name)
}

/// Elsewhere (and in the `portable` build): the path's real location, checked against the
/// directory's, then opened.
#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
pub fn open_beneath(root: &OwnedFd, canonical_root: &Path, relative: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = root;
    let real = std::fs::canonicalize(canonical_root.join(relative))?;
    if !real.starts_with(canonical_root) {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OPEN_FLAGS & !libc::O_RDONLY & !libc::O_CLOEXEC)
        .open(real)
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn openat2(root: &OwnedFd, name: &CString) -> io::Result<File> {
    // SAFETY: `open_how` is plain data; zeroed is a valid start.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = OPEN_FLAGS as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: a valid directory descriptor, C string and `open_how` of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    Ok(File::from(unsafe {
        OwnedFd::from_raw_fd(fd as libc::c_int)
    }))
}

/// The fallback: `openat`, then the opened file's real path must lie inside the root.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
fn open_and_check(root: &OwnedFd, canonical_root: &Path, name: &CString) -> io::Result<File> {
    // SAFETY: a valid directory descriptor and C string.
    let fd = unsafe { libc::openat(root.as_raw_fd(), name.as_ptr(), OPEN_FLAGS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor, owned by nobody else.
    let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let real = std::fs::read_link(format!("/proc/self/fd/{fd}"))?;
    if real.starts_with(canonical_root) {
        Ok(file)
    } else {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(rest: &str) -> String {
        relative_path(rest).unwrap().path
    }

    #[test]
    fn plain_and_encoded_names_decode() {
        assert_eq!(ok("/css/site.css"), "css/site.css");
        assert_eq!(ok("/a%20b.txt"), "a b.txt");
        assert_eq!(ok("/caf%C3%A9.txt"), "café.txt");
        assert_eq!(ok("//double//slash"), "double/slash");
        assert_eq!(ok(""), "");
        assert!(relative_path("/docs/").unwrap().trailing_slash);
    }

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for rest in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/etc/passwd",
            "/..%2fetc%2fpasswd",
            "/a%2f..%2f..%2fetc",
            "/..%5cetc%5cpasswd",
            "/a\\..\\b",
            "/./x",
        ] {
            assert_eq!(relative_path(rest), Err(Refused::NotFound), "{rest}");
        }
    }

    #[test]
    fn undecodable_paths_are_malformed() {
        for rest in [
            "/a%00b",
            "/%c0%ae%c0%ae/etc/passwd",
            "/%e0%80%ae",
            "/%ff",
            "/a%2",
            "/a%zz",
        ] {
            assert_eq!(relative_path(rest), Err(Refused::Malformed), "{rest}");
        }
    }

    #[test]
    fn escapes_are_checked() {
        assert!(well_formed_escapes("a%20b"));
        assert!(!well_formed_escapes("a%2"));
        assert!(!well_formed_escapes("%"));
        assert!(!well_formed_escapes("%g0"));
    }
}
