//! Precompressed siblings (`site.css.br`, `.zst`, `.gz`) and which one `Accept-Encoding`
//! lets us send.

use hyper::header::{self, HeaderMap};

/// A content coding we look for a sibling in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// `br`, the `.br` sibling.
    Brotli,
    /// `zstd`, the `.zst` sibling.
    Zstd,
    /// `gzip`, the `.gz` sibling.
    Gzip,
}

/// Our preference when the client weighs codings equally: smallest output first.
const PREFERENCE: [Coding; 3] = [Coding::Brotli, Coding::Zstd, Coding::Gzip];

impl Coding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
            Coding::Gzip => "gzip",
        }
    }

    /// The sibling's file-name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Coding::Brotli => ".br",
            Coding::Zstd => ".zst",
            Coding::Gzip => ".gz",
        }
    }
}

/// The codings `Accept-Encoding` allows, best first (higher `q` first, then our
/// preference). `identity` is always possible and not listed.
pub fn accepted(headers: &HeaderMap) -> Vec<Coding> {
    let mut weights: [Option<u32>; 3] = [None; 3];
    let mut star: Option<u32> = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let mut q = 1000;
            for param in parts {
                if let Some((key, value)) = param.split_once('=') {
                    if key.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(value.trim()).unwrap_or(0);
                    }
                }
            }
            if name == "*" {
                star = Some(q);
                continue;
            }
            let name = if name.eq_ignore_ascii_case("x-gzip") {
                "gzip"
            } else {
                name
            };
            if let Some(i) = PREFERENCE
                .iter()
                .position(|c| c.token().eq_ignore_ascii_case(name))
            {
                weights[i] = Some(q);
            }
        }
    }
    let mut out: Vec<(u32, usize, Coding)> = PREFERENCE
        .iter()
        .enumerate()
        .filter_map(|(i, &c)| {
            let q = weights[i].or(star)?;
            (q > 0).then_some((q, i, c))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, _, c)| c).collect()
}

/// A `q` value in thousandths (`0.5` is 500); `None` if it does not parse.
fn parse_q(text: &str) -> Option<u32> {
    let value: f32 = text.parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::header_map;

    fn of(value: &'static str) -> Vec<Coding> {
        accepted(&header_map(&[("accept-encoding", value)]))
    }

    #[test]
    fn browsers_get_our_preference() {
        assert_eq!(
            of("gzip, deflate, br, zstd"),
            [Coding::Brotli, Coding::Zstd, Coding::Gzip]
        );
        assert_eq!(of("gzip"), [Coding::Gzip]);
        assert_eq!(of("identity"), []);
        assert!(accepted(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn q_values_order_and_exclude() {
        assert_eq!(of("br;q=0.5, gzip"), [Coding::Gzip, Coding::Brotli]);
        assert_eq!(of("br;q=0, gzip;q=0.1"), [Coding::Gzip]);
        assert_eq!(of("*"), [Coding::Brotli, Coding::Zstd, Coding::Gzip]);
        assert_eq!(of("*, br;q=0"), [Coding::Zstd, Coding::Gzip]);
        assert_eq!(of("*;q=0"), []);
        assert_eq!(of("X-GZIP"), [Coding::Gzip]);
    }
}
