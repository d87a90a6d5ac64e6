//! `Range: bytes=...` (RFC 9110 §14.2): one range is served as 206; several, or one that
//! does not parse, are ignored (the whole file, 200), which the RFC allows; a range that
//! lies wholly past the end is 416.

/// What a `Range` header asks of a file of a given size.
#[derive(Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole representation (no range, or one we ignore).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Read a `Range` value against a representation of `size` bytes.
pub fn parse(value: &[u8], size: u64) -> Ranged {
    let Ok(text) = std::str::from_utf8(value) else {
        return Ranged::Whole;
    };
    let text = text.trim();
    let Some((unit, specs)) = text.split_once('=') else {
        return Ranged::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || specs.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = specs.trim().split_once('-') else {
        return Ranged::Whole;
    };
    if first.is_empty() {
        // A suffix: the last N bytes.
        return match number(last) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return Ranged::Whole;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(end) if end >= start => Some(end),
            // `5-2` or garbage: not a valid range, so the header is ignored.
            _ => return Ranged::Whole,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part {
        start,
        end: end.map_or(size - 1, |end| end.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_range_in_each_form() {
        assert_eq!(
            parse(b"bytes=0-99", 1000),
            Ranged::Part { start: 0, end: 99 }
        );
        assert_eq!(
            parse(b"bytes=900-", 1000),
            Ranged::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse(b"bytes=-100", 1000),
            Ranged::Part {
                start: 900,
                end: 999
            }
        );
        assert_eq!(
            parse(b"bytes=-5000", 1000),
            Ranged::Part { start: 0, end: 999 }
        );
        assert_eq!(
            parse(b"bytes=990-5000", 1000),
            Ranged::Part {
                start: 990,
                end: 999
            }
        );
        assert_eq!(parse(b"Bytes = 1-1", 10), Ranged::Part { start: 1, end: 1 });
    }

    #[test]
    fn past_the_end_is_unsatisfiable() {
        assert_eq!(parse(b"bytes=1000-", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=1000-2000", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=-0", 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse(b"bytes=-1", 0), Ranged::Unsatisfiable);
    }

    #[test]
    fn what_we_ignore() {
        for value in [
            &b"bytes=0-1,5-6"[..],
            b"items=0-1",
            b"bytes=5-2",
            b"bytes=a-b",
            b"bytes=-",
            b"bytes",
            b"bytes=+1-2",
            b"\xff",
        ] {
            assert_eq!(parse(value, 1000), Ranged::Whole, "{value:?}");
        }
    }
}
