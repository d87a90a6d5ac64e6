//! The mounts of one server, opened once at start-up, and which one a request path falls
//! under.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use hyper::header::HeaderValue;

use crate::common::settings::StaticMount;

/// One mount: its prefix and its directory, held open.
pub struct Mount {
    /// `/assets`; empty for a mount of the whole site.
    pub prefix: String,
    /// The directory, opened `O_PATH`: files are opened beneath it (`resolve.rs`), so a
    /// directory renamed or replaced after start-up is not followed.
    pub root: OwnedFd,
    /// The directory's canonical path, for the check on kernels without `openat2`.
    pub canonical: std::path::PathBuf,
    /// `Cache-Control` for its files (`--static-max-age`).
    pub cache_control: Option<HeaderValue>,
    /// Serve a directory's `index.html`.
    pub index: bool,
}

/// Every mount, longest prefix first.
pub struct StaticFiles {
    mounts: Vec<Mount>,
}

fn open_directory(path: &Path) -> io::Result<OwnedFd> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // A path-only descriptor where there is one: the directory need not be readable.
    #[cfg(target_os = "linux")]
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    #[cfg(not(target_os = "linux"))]
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: a valid C string; the descriptor returned is owned below.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/assets/` and `/assets` are the same mount; `/` is the whole site.
pub fn normalize_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    }
}

impl StaticFiles {
    /// Open every mount's directory. `None` without mounts; an error names the directory
    /// that cannot be served.
    pub fn open(settings: &[StaticMount]) -> Result<Option<StaticFiles>, String> {
        if settings.is_empty() {
            return Ok(None);
        }
        let mut mounts = Vec::with_capacity(settings.len());
        for mount in settings {
            let shown = mount.directory.display();
            let root = open_directory(&mount.directory)
                .map_err(|e| format!("cannot serve static directory {shown:?}: {e}"))?;
            let canonical = std::fs::canonicalize(&mount.directory)
                .map_err(|e| format!("cannot serve static directory {shown:?}: {e}"))?;
            let cache_control = mount.max_age.map(|age| {
                HeaderValue::from_str(&format!("public, max-age={age}"))
                    .expect("digits are a valid header value")
            });
            mounts.push(Mount {
                prefix: normalize_prefix(&mount.prefix),
                root,
                canonical,
                cache_control,
                index: mount.index,
            });
        }
        // Longest prefix first; a later mount with the same prefix replaces an earlier one.
        mounts.reverse();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.prefix.len()));
        mounts.dedup_by(|later, earlier| later.prefix == earlier.prefix);
        Ok(Some(StaticFiles { mounts }))
    }

    /// The mount `path` (the request target's path, as received) falls under, and the
    /// rest of the path after its prefix (`""` or starting with `/`).
    pub fn find<'p>(&self, path: &'p str) -> Option<(&Mount, &'p str)> {
        self.mounts.iter().find_map(|mount| {
            let rest = path.strip_prefix(mount.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((mount, rest))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(prefixes: &[&str]) -> StaticFiles {
        let dir = std::env::temp_dir();
        let settings: Vec<StaticMount> = prefixes
            .iter()
            .map(|p| StaticMount {
                prefix: (*p).to_owned(),
                directory: dir.clone(),
                max_age: None,
                index: false,
            })
            .collect();
        StaticFiles::open(&settings).unwrap().unwrap()
    }

    #[test]
    fn longest_prefix_wins_on_a_segment_boundary() {
        let files = files(&["/", "/assets", "/assets/img/"]);
        let (m, rest) = files.find("/assets/img/a.png").unwrap();
        assert_eq!((m.prefix.as_str(), rest), ("/assets/img", "/a.png"));
        let (m, rest) = files.find("/assets/site.css").unwrap();
        assert_eq!((m.prefix.as_str(), rest), ("/assets", "/site.css"));
        let (m, rest) = files.find("/assets").unwrap();
        assert_eq!((m.prefix.as_str(), rest), ("/assets", ""));
        // `/assetsX` is not under `/assets`: the whole-site mount takes it.
        let (m, rest) = files.find("/assetsX/a").unwrap();
        assert_eq!((m.prefix.as_str(), rest), ("", "/assetsX/a"));
    }

    #[test]
    fn without_a_site_mount_other_paths_go_to_the_app() {
        let files = files(&["/static"]);
        assert!(files.find("/api/users").is_none());
        assert!(files.find("/staticfile").is_none());
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let err = StaticFiles::open(&[StaticMount {
            prefix: "/x".into(),
            directory: "/no/such/dir".into(),
            max_age: None,
            index: false,
        }])
        .err()
        .unwrap();
        assert!(err.contains("/no/such/dir"), "{err}");
    }
}
