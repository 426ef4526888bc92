//! `Range` requests (RFC 9110 §14) resolved against a body's length: shared by the store (which
//! reads a window of an object) and the API (which answers 206/416), so neither imports the other.

/// A single byte range resolved against a length: `start..=end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }
    pub fn is_empty(&self) -> bool {
        false
    }
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{}", self.start, self.end, total)
    }
}

/// What a `Range` header asks of a body of `total` bytes (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole body with 200. Multi-range and malformed headers land
    /// here too; ignoring `Range` is always allowed.
    Full,
    Partial(ByteRange),
    /// 416 with `Content-Range: bytes */total`.
    Unsatisfiable,
}

pub fn parse_range(header: Option<&str>, total: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Full;
    };
    if spec.contains(',') {
        return RangeRequest::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match num(b) {
            Some(0) => RangeRequest::Unsatisfiable,
            Some(n) if total > 0 => RangeRequest::Partial(ByteRange {
                start: total.saturating_sub(n),
                end: total - 1,
            }),
            Some(_) => RangeRequest::Unsatisfiable,
            None => RangeRequest::Full,
        },
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeRequest::Full;
            };
            let end = if b.is_empty() {
                None
            } else {
                match num(b) {
                    Some(e) if e >= start => Some(e),
                    _ => return RangeRequest::Full,
                }
            };
            if start >= total {
                return RangeRequest::Unsatisfiable;
            }
            let end = end.map_or(total - 1, |e| e.min(total - 1));
            RangeRequest::Partial(ByteRange { start, end })
        }
        (true, true) => RangeRequest::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        let p = |h| parse_range(Some(h), 100);
        let part = |start, end| RangeRequest::Partial(ByteRange { start, end });
        assert_eq!(p("bytes=0-9"), part(0, 9));
        assert_eq!(p("bytes=10-"), part(10, 99));
        assert_eq!(p("bytes=90-200"), part(90, 99));
        assert_eq!(p("bytes=-10"), part(90, 99));
        assert_eq!(p("bytes=-1000"), part(0, 99));
        assert_eq!(p("bytes=100-"), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=-0"), RangeRequest::Unsatisfiable);
        assert_eq!(p("bytes=5-1"), RangeRequest::Full);
        assert_eq!(p("bytes=0-1,5-6"), RangeRequest::Full);
        assert_eq!(p("items=0-1"), RangeRequest::Full);
        assert_eq!(p("bytes=x-1"), RangeRequest::Full);
        assert_eq!(parse_range(None, 100), RangeRequest::Full);
        assert_eq!(
            parse_range(Some("bytes=0-"), 0),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            ByteRange { start: 3, end: 4 }.content_range(10),
            "bytes 3-4/10"
        );
    }

    proptest! {
        #[test]
        fn partial_ranges_always_lie_inside_the_body(h in "bytes=[0-9]{0,4}-[0-9]{0,4}", total in 0u64..5000) {
            if let RangeRequest::Partial(r) = parse_range(Some(&h), total) {
                prop_assert!(r.start <= r.end);
                prop_assert!(r.end < total);
            }
        }

        #[test]
        fn arbitrary_range_headers_never_panic(h in ".{0,40}", total in any::<u64>()) {
            let _ = parse_range(Some(&h), total);
        }
    }
}
