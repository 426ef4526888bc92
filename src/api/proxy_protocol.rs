//! The PROXY protocol from trusted load balancers (`[server] proxy_protocol`, issue 14): a
//! TCP balancer (HAProxy, AWS NLB, an ingress in TCP mode) cannot add `X-Forwarded-For` to a
//! TLS stream it does not terminate, so it sends the client's address in a header before the
//! first byte of the connection, as text (v1) or binary (v2). The `ppp` crate parses both.
//!
//! What is believed, and what happens without a header (HAProxy's `proxy-protocol.txt`, section
//! 2: a receiver configured for the protocol "must not try to guess whether the protocol header
//! is present or not"; a missing or invalid header means the connection is dropped):
//! - a connection whose TCP peer is in `trusted_proxies` must start with a header; without one,
//!   or with a malformed one, it is closed and a line is logged (no guessing);
//! - a connection from any other peer is never read for a header: the peer is its own client,
//!   and a PROXY header it sends is just bytes before HTTP (hyper answers 400, or the TLS
//!   handshake fails), never a client address;
//! - a v2 `LOCAL` header (the balancer's own health check) and a v1 `UNKNOWN` one name nobody:
//!   the connection's own peer is the client.
//!
//! The header's source address then stands for the TCP peer: audit lines, logs, the login
//! throttle, and the `X-Forwarded-For` rule of [`super::forwarded`] all start from it.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use ppp::{v1, v2, HeaderResult, PartialResult};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::conn::Prefixed;

/// The longest header read: a v2 header with its largest payload (a v1 line is at most 107).
const MAX_HEADER: usize = 16 + u16::MAX as usize;

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes naming `client` (`None`: LOCAL/UNKNOWN, nobody named).
    Header {
        client: Option<SocketAddr>,
        len: usize,
    },
    /// A header has begun but not ended: read more.
    Incomplete,
    /// Not a PROXY header, or a broken one.
    Invalid(String),
}

/// Parses the start of a connection (pure: no I/O).
pub fn parse(buf: &[u8]) -> Parsed {
    let parsed = HeaderResult::parse(buf);
    if parsed.is_incomplete() {
        return Parsed::Incomplete;
    }
    match parsed {
        HeaderResult::V1(Ok(h)) => Parsed::Header {
            client: match h.addresses {
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                v1::Addresses::Unknown => None,
            },
            len: h.header.len(),
        },
        HeaderResult::V2(Ok(h)) => Parsed::Header {
            client: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(a.source_address.into(), a.source_port))
                }
                // A Unix socket or an unspecified family names no IP client.
                (_, _) => None,
            },
            len: h.len(),
        },
        HeaderResult::V1(Err(e)) => Parsed::Invalid(format!("invalid PROXY v1 header: {e}")),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(format!("invalid PROXY v2 header: {e}")),
    }
}

/// Reads the PROXY header at the start of `io`: the client it names and `io` with the bytes
/// after the header put back in front. An error (no header, a broken one, the connection
/// closed) means the connection must be closed; the caller bounds the time.
pub async fn read_header<T: AsyncRead + Unpin>(
    mut io: T,
) -> io::Result<(Option<SocketAddr>, Prefixed<T>)> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        // Bytes read past the header's end are not lost: they go back in front of `io`.
        let n = io.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed before a whole PROXY header arrived",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        match parse(&buf) {
            Parsed::Header { client, len } => {
                let rest = Bytes::from(buf).slice(len..);
                return Ok((client, Prefixed::new(rest, io)));
            }
            Parsed::Incomplete if buf.len() < MAX_HEADER => {}
            Parsed::Incomplete => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "PROXY header longer than the protocol allows",
                ))
            }
            Parsed::Invalid(why) => return Err(io::Error::new(io::ErrorKind::InvalidData, why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_names_the_client_and_its_length() {
        let line = b"PROXY TCP4 203.0.113.9 10.0.0.2 51234 5000\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(line),
            Parsed::Header {
                client: Some("203.0.113.9:51234".parse().unwrap()),
                len: 44
            }
        );
        let v6 = b"PROXY TCP6 2001:db8::9 2001:db8::1 4711 443\r\n";
        assert!(
            matches!(parse(v6), Parsed::Header { client: Some(c), .. } if c.ip().to_string() == "2001:db8::9")
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                client: None,
                len: 15
            }
        );
        assert_eq!(parse(b"PROXY TCP4 203.0"), Parsed::Incomplete);
    }

    #[test]
    fn v2_names_the_client_and_local_names_nobody() {
        let src: SocketAddr = "198.51.100.4:40000".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let h = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (src, dst),
        )
        .build()
        .unwrap();
        assert_eq!(
            parse(&h),
            Parsed::Header {
                client: Some(src),
                len: h.len()
            }
        );
        assert_eq!(parse(&h[..20]), Parsed::Incomplete);
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Stream,
            (src, dst),
        )
        .build()
        .unwrap();
        assert!(matches!(parse(&local), Parsed::Header { client: None, .. }));
    }

    #[test]
    fn anything_else_is_invalid_never_a_guess() {
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Invalid(_)));
        assert!(matches!(
            parse(b"PROXY TCP4 999.0.0.1 10.0.0.2 1 2\r\n"),
            Parsed::Invalid(_)
        ));
        let mut bad_v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        bad_v2.extend_from_slice(&[0x2F, 0x11, 0, 0]);
        assert!(matches!(parse(&bad_v2), Parsed::Invalid(_)));
    }

    #[tokio::test]
    async fn read_header_gives_back_what_follows() {
        let input: &[u8] = b"PROXY TCP4 203.0.113.9 10.0.0.2 51234 5000\r\nGET / HTTP/1.1\r\n\r\n";
        let (client, mut rest) = read_header(input).await.unwrap();
        assert_eq!(client, Some("203.0.113.9:51234".parse().unwrap()));
        let mut after = String::new();
        rest.read_to_string(&mut after).await.unwrap();
        assert_eq!(after, "GET / HTTP/1.1\r\n\r\n");
        let e = read_header(&b"GET / HTTP/1.1\r\n\r\n"[..])
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let e = read_header(&b"PROXY TCP4 1.2"[..]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
