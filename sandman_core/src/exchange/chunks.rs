//! The response bytes the transport takes in one go: one chunk, or every chunk the app
//! queued since the transport last looked, read as a single `Buf`.
//!
//! hyper writes a streamed body one frame at a time and flushes as soon as its write buffer
//! holds `max_buf_size` bytes, which Sandman sets to the request-head limit (64 KiB by
//! default: hyper uses one size for both). A 64 KiB chunk per frame therefore meant one
//! `writev` per chunk. Handing hyper everything queued as one frame puts it all in one
//! `writev`, without copying: each part is still the app's own buffer.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes};

/// One or more chunks read front to back as a single `Buf`. No part is ever empty, so
/// `chunk()` is never empty while anything remains.
pub enum ChunkBatch {
    /// A whole body, or the only chunk queued.
    One(Bytes),
    /// Several queued chunks.
    Many {
        /// The chunks not yet fully read, the first possibly advanced into.
        parts: VecDeque<Bytes>,
        /// Bytes left across `parts`, kept so `remaining()` is not a walk.
        remaining: usize,
    },
}

impl ChunkBatch {
    /// Everything in `queue`, leaving it empty. A lone chunk is popped, so the queue keeps
    /// its buffer for the next `send()`; several take the queue whole.
    pub fn take_from(queue: &mut VecDeque<Bytes>) -> ChunkBatch {
        if queue.len() == 1 {
            return ChunkBatch::One(queue.pop_front().expect("one chunk"));
        }
        ChunkBatch::from_parts(std::mem::take(queue))
    }

    /// Every chunk in `parts`, in order; empty chunks are dropped.
    pub fn from_parts(mut parts: VecDeque<Bytes>) -> ChunkBatch {
        parts.retain(|p| !p.is_empty());
        if parts.len() == 1 {
            return ChunkBatch::One(parts.pop_front().expect("one part"));
        }
        let remaining = parts.iter().map(Bytes::len).sum();
        ChunkBatch::Many { parts, remaining }
    }
}

impl From<Bytes> for ChunkBatch {
    fn from(data: Bytes) -> ChunkBatch {
        ChunkBatch::One(data)
    }
}

impl Buf for ChunkBatch {
    fn remaining(&self) -> usize {
        match self {
            ChunkBatch::One(b) => b.len(),
            ChunkBatch::Many { remaining, .. } => *remaining,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            ChunkBatch::One(b) => b,
            ChunkBatch::Many { parts, .. } => parts.front().map_or(&[], |b| b),
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        match self {
            ChunkBatch::One(b) => b.advance(cnt),
            ChunkBatch::Many { parts, remaining } => {
                assert!(cnt <= *remaining, "advance past the end of a frame");
                *remaining -= cnt;
                while cnt > 0 {
                    let front = parts.front_mut().expect("remaining counts these bytes");
                    if cnt < front.len() {
                        front.advance(cnt);
                        return;
                    }
                    cnt -= front.len();
                    parts.pop_front();
                }
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            ChunkBatch::One(b) => b.chunks_vectored(dst),
            ChunkBatch::Many { parts, .. } => {
                let mut n = 0;
                for (slot, part) in dst.iter_mut().zip(parts) {
                    *slot = IoSlice::new(part);
                    n += 1;
                }
                n
            }
        }
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        match self {
            // A whole body stays zero-copy, as when the frame type was `Bytes`.
            ChunkBatch::One(b) => b.copy_to_bytes(len),
            ChunkBatch::Many { .. } => {
                let mut out = bytes::BytesMut::with_capacity(len);
                out.put((&mut *self).take(len));
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(chunks: &[&'static [u8]]) -> VecDeque<Bytes> {
        chunks.iter().map(|c| Bytes::from_static(c)).collect()
    }

    fn drain(mut data: ChunkBatch, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while data.has_remaining() {
            let n = step.min(data.chunk().len());
            assert!(n > 0, "chunk() empty while bytes remain");
            out.extend_from_slice(&data.chunk()[..n]);
            data.advance(n);
        }
        out
    }

    #[test]
    fn reads_every_part_in_order_whatever_the_step() {
        for step in [1, 2, 3, 7, 100] {
            let data = ChunkBatch::from_parts(parts(&[b"abc", b"", b"defg", b"h"]));
            assert_eq!(data.remaining(), 8);
            assert_eq!(drain(data, step), b"abcdefgh");
        }
    }

    #[test]
    fn a_single_part_becomes_one() {
        let data = ChunkBatch::from_parts(parts(&[b"", b"only"]));
        assert!(matches!(data, ChunkBatch::One(_)));
        assert_eq!(drain(data, 3), b"only");
    }

    #[test]
    fn vectored_slices_cover_the_parts_left() {
        let mut data = ChunkBatch::from_parts(parts(&[b"ab", b"cd", b"ef"]));
        data.advance(3);
        let mut slots = [IoSlice::new(&[]); 4];
        let n = data.chunks_vectored(&mut slots);
        let seen: Vec<u8> = slots[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(seen, b"def");
        let mut one = [IoSlice::new(&[])];
        assert_eq!(
            data.chunks_vectored(&mut one),
            1,
            "never more slices than given"
        );
    }

    #[test]
    fn copy_to_bytes_within_and_across_parts() {
        let mut data = ChunkBatch::from_parts(parts(&[b"abc", b"def"]));
        assert_eq!(data.copy_to_bytes(2), Bytes::from_static(b"ab"));
        assert_eq!(data.copy_to_bytes(3), Bytes::from_static(b"cde"));
        assert_eq!(data.remaining(), 1);
        let mut sink = Vec::new();
        sink.put(data);
        assert_eq!(sink, b"f");
    }
}
