//! The client behind a load balancer: `[server] trusted_proxies` (addresses or CIDR blocks).
//!
//! A request whose TCP peer is a trusted proxy names its client in `X-Forwarded-For`; each hop
//! appends the address it received the request from, so the list is read from the right, and
//! trusted hops are skipped until the first address that is not one of ours: that is the client
//! (anything left of it was written by the client itself and proves nothing). A peer that is not
//! trusted is the client, whatever headers it sends; so is an unparsable entry's right neighbour.
//! The result names the client in audit lines, logs and the login throttle.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The configured trusted hops.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// `"10.0.0.0/8"`, `"192.0.2.7"`, `"2001:db8::/32"`: `Err(entry, problem)` for a bad one.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        let nets = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let t = e.trim();
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        (
                            i,
                            format!("{e:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8)"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Is `ip` one of the configured hops?
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request from `peer` carrying `headers` (see the module comment). A
    /// forwarded client has port 0: the port of a hop further away is not known.
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> SocketAddr {
        if self.nets.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer;
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                return client;
            };
            client = SocketAddr::new(ip, 0);
            if !self.trusts(ip) {
                return client;
            }
        }
        client
    }
}

/// `192.0.2.1`, `2001:db8::1`, `192.0.2.1:4711`, `[2001:db8::1]:4711`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peers_headers_are_ignored() {
        let t = tp(&["10.0.0.0/8"]);
        let c = t.client(peer("192.0.2.9:5000"), &xff(&["203.0.113.7"]));
        assert_eq!(c, peer("192.0.2.9:5000"));
        // No list configured: nobody is trusted.
        let c = tp(&[]).client(peer("10.0.0.1:5000"), &xff(&["203.0.113.7"]));
        assert_eq!(c, peer("10.0.0.1:5000"));
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = tp(&["10.0.0.0/8", "192.0.2.1"]);
        // The client forged the leftmost entry; the balancers appended the rest.
        let h = xff(&["6.6.6.6, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(
            t.client(peer("192.0.2.1:443"), &h).ip(),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // Every hop trusted: the leftmost is as far as we can see.
        let h = xff(&["10.9.9.9"]);
        assert_eq!(t.client(peer("10.0.0.1:1"), &h), peer("10.9.9.9:0"));
        // No header: the peer itself.
        assert_eq!(
            t.client(peer("10.0.0.1:1"), &HeaderMap::new()),
            peer("10.0.0.1:1")
        );
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let t = tp(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.7, not-an-ip, 10.0.0.5"]);
        assert_eq!(t.client(peer("10.0.0.1:1"), &h), peer("10.0.0.5:0"));
        let h = xff(&["[2001:db8::1]:4711", "10.0.0.5:80"]);
        assert_eq!(
            t.client(peer("10.0.0.1:1"), &h).ip(),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn mapped_ipv4_matches_ipv4_blocks_and_bad_entries_are_named() {
        let t = tp(&["10.0.0.0/8"]);
        let c = t.client(peer("[::ffff:10.0.0.1]:1"), &xff(&["203.0.113.7"]));
        assert_eq!(c.ip(), "203.0.113.7".parse::<IpAddr>().unwrap());
        let e = TrustedProxies::parse(&["10.0.0.0/8".into(), "lb.local".into()]).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("lb.local"));
    }
}
