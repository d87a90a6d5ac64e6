//! The bytes of one response body frame, as hyper reads them: the app's chunks, a file's
//! bytes, or a placeholder for bytes `sendfile` already put on the wire
//! (`common/direct_output.rs`).

use std::io::IoSlice;

use bytes::{Buf, Bytes};

use crate::exchange::chunks::ChunkBatch;

/// What a placeholder's slices point at. hyper only passes the slices on to the stream,
/// which swallows them unread; a static of zeros costs no memory until read.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// One response body frame.
pub enum BodyData {
    /// Bytes to write.
    Chunks(ChunkBatch),
    /// `n` bytes already sent: counted by hyper, swallowed by the stream.
    Placeholder(usize),
}

impl From<Bytes> for BodyData {
    fn from(data: Bytes) -> BodyData {
        BodyData::Chunks(ChunkBatch::One(data))
    }
}

impl From<ChunkBatch> for BodyData {
    fn from(data: ChunkBatch) -> BodyData {
        BodyData::Chunks(data)
    }
}

impl Buf for BodyData {
    fn remaining(&self) -> usize {
        match self {
            BodyData::Chunks(c) => c.remaining(),
            BodyData::Placeholder(n) => *n,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            BodyData::Chunks(c) => c.chunk(),
            BodyData::Placeholder(n) => &ZEROS[..(*n).min(ZEROS.len())],
        }
    }

    fn advance(&mut self, cnt: usize) {
        match self {
            BodyData::Chunks(c) => c.advance(cnt),
            BodyData::Placeholder(n) => {
                assert!(cnt <= *n, "advance past the end of a frame");
                *n -= cnt;
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            BodyData::Chunks(c) => c.chunks_vectored(dst),
            BodyData::Placeholder(n) => {
                // As many slices as the caller has room for, so the stream can swallow a
                // large placeholder in one call.
                let mut left = *n;
                let mut used = 0;
                for slot in dst.iter_mut() {
                    if left == 0 {
                        break;
                    }
                    let len = left.min(ZEROS.len());
                    *slot = IoSlice::new(&ZEROS[..len]);
                    left -= len;
                    used += 1;
                }
                used
            }
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self {
            BodyData::Chunks(c) => c.copy_to_bytes(len),
            BodyData::Placeholder(_) => {
                self.advance(len);
                Bytes::from(vec![0; len])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placeholder_reads_as_its_length_in_slices() {
        let mut data = BodyData::Placeholder(200 * 1024);
        let mut slots = [IoSlice::new(&[]); 8];
        let n = data.chunks_vectored(&mut slots);
        assert_eq!(n, 4);
        assert_eq!(
            slots[..n].iter().map(|s| s.len()).sum::<usize>(),
            200 * 1024
        );
        data.advance(100 * 1024);
        assert_eq!(data.remaining(), 100 * 1024);
        assert_eq!(data.chunk().len(), 64 * 1024);
    }
}
