//! Where a client's byte stream stands between WebSocket frames, without decoding them.
//!
//! A WebSocket may be parked (`ws/park.rs`) only when yawc's read buffer holds nothing:
//! every byte read belongs to a frame yawc has already handed over. This follows the frame
//! headers (RFC 6455 §5.2) as the bytes go by, skipping payloads by their length, and counts
//! the units yawc hands over one by one: a message (its final frame) or a control frame.

/// The bytes of a client-to-server frame header at most: 2, 8 of extended length, 4 of mask.
const MAX_HEAD: usize = 14;

/// The framing state of the bytes read so far.
#[derive(Debug, Default)]
pub struct FrameTracker {
    head: [u8; MAX_HEAD],
    /// Header bytes of the frame in progress read so far.
    have: usize,
    /// Payload bytes of the frame in progress still to come.
    payload_left: u64,
    /// A fragmented data message has begun and not ended.
    in_message: bool,
    /// Messages and control frames read whole.
    units: u64,
}

impl FrameTracker {
    /// Follow `bytes`, the next ones read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(bytes.len() as u64);
                self.payload_left -= skip;
                bytes = &bytes[skip as usize..];
                continue;
            }
            self.head[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have >= 2 && self.have == head_len(self.head[1]) {
                self.header_done();
            }
        }
    }

    /// Messages and control frames read whole, if every byte read so far belongs to one of
    /// them (no partial frame, no message missing its final fragment).
    pub fn whole_units(&self) -> Option<u64> {
        (self.have == 0 && self.payload_left == 0 && !self.in_message).then_some(self.units)
    }

    fn header_done(&mut self) {
        let (first, second) = (self.head[0], self.head[1]);
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0F;
        self.payload_left = match second & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => u64::from_be_bytes(self.head[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        self.have = 0;
        if opcode >= 0x8 {
            self.units += 1; // a control frame is handed over on its own
        } else {
            // Text or binary starts a message, a continuation carries one on; the final
            // frame completes it.
            self.in_message = !fin;
            if fin {
                self.units += 1;
            }
        }
    }
}

/// The length of a header whose second byte is `second`.
fn head_len(second: u8) -> usize {
    let extended = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame with `len` payload bytes.
    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut out = vec![u8::from(fin) << 7 | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[1, 2, 3, 4]);
        out.extend(std::iter::repeat_n(0x55, len));
        out
    }

    #[test]
    fn whole_frames_of_every_length_form_count_one_unit_each() {
        let mut t = FrameTracker::default();
        assert_eq!(t.whole_units(), Some(0));
        for len in [0, 5, 125, 126, 300, 65535, 65536, 100_000] {
            t.feed(&frame(true, 0x2, len));
        }
        assert_eq!(t.whole_units(), Some(8));
    }

    #[test]
    fn a_frame_split_anywhere_is_not_whole_until_its_last_byte() {
        let bytes = frame(true, 0x1, 300);
        for cut in 1..bytes.len() {
            let mut t = FrameTracker::default();
            t.feed(&bytes[..cut]);
            assert_eq!(t.whole_units(), None, "cut at {cut}");
            t.feed(&bytes[cut..]);
            assert_eq!(t.whole_units(), Some(1), "cut at {cut}");
        }
    }

    #[test]
    fn a_fragmented_message_is_one_unit_and_control_frames_inside_it_count() {
        let mut t = FrameTracker::default();
        t.feed(&frame(false, 0x1, 10));
        assert_eq!(t.whole_units(), None);
        t.feed(&frame(true, 0x9, 4)); // a ping between fragments
        assert_eq!(t.whole_units(), None);
        t.feed(&frame(false, 0x0, 10));
        t.feed(&frame(true, 0x0, 10));
        assert_eq!(t.whole_units(), Some(2));
        // Byte by byte, the same.
        let mut bytes = frame(false, 0x2, 3);
        bytes.extend(frame(true, 0x0, 3));
        bytes.extend(frame(true, 0x8, 2));
        let mut t = FrameTracker::default();
        for b in &bytes {
            t.feed(std::slice::from_ref(b));
        }
        assert_eq!(t.whole_units(), Some(2));
    }
}
