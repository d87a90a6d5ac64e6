//! A file region as a response body: sent below hyper with `sendfile` on plain TCP
//! (`common/direct_output.rs`), otherwise read in large chunks on the IO thread.
//!
//! Reads are synchronous, as nginx's are by default: a file in the page cache is a copy,
//! and a static mount served from a slow disk would stall its IO thread for the read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;

use crate::common::direct_output::{DirectOutput, FileRegion};
use crate::http::body_data::BodyData;

/// Bodies up to this size are read whole and written with the head in one `writev`;
/// larger ones go out with `sendfile` (plain TCP) or in chunks.
pub const SMALL_FILE: u64 = 64 * 1024;

/// How much one read takes (one frame when not sent with `sendfile`).
pub const READ_CHUNK: usize = 256 * 1024;

/// The rest of a file region to send.
pub struct FileBody {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
    /// The connection's side door, when it has one (plain TCP, HTTP/1.x).
    direct: Option<Arc<DirectOutput>>,
    handed_over: bool,
}

impl FileBody {
    /// `len` bytes of `file` from `offset`.
    pub fn new(file: File, offset: u64, len: u64, direct: Option<Arc<DirectOutput>>) -> FileBody {
        FileBody {
            file: Arc::new(file),
            offset,
            remaining: len,
            direct,
            handed_over: false,
        }
    }

    /// Bytes left.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// The next frame, or `None` at the end.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<BodyData>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if let Some(direct) = &self.direct {
            if !self.handed_over {
                self.handed_over = true;
                direct.send(FileRegion {
                    file: self.file.clone(),
                    offset: self.offset,
                    len: self.remaining,
                });
            }
            let sent = std::task::ready!(direct.poll_sent(cx))?;
            self.remaining = 0;
            return Poll::Ready(Some(Ok(BodyData::Placeholder(sent as usize))));
        }
        Poll::Ready(Some(self.read_chunk().map(BodyData::from)))
    }

    fn read_chunk(&mut self) -> io::Result<bytes::Bytes> {
        let len = self.remaining.min(READ_CHUNK as u64) as usize;
        let mut buf = BytesMut::zeroed(len);
        read_exact_at(&self.file, &mut buf, self.offset)?;
        self.offset += len as u64;
        self.remaining -= len as u64;
        Ok(buf.freeze())
    }
}

/// Fill `buf` from `offset`; a file that shrank under us is an error (the response's
/// length is already promised), which closes the connection.
pub fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            io::Error::other("static file shrank while being sent")
        } else {
            e
        }
    })
}
