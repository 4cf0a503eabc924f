//! Reading who is calling: the bearer token of an `Authorization` header
//! and the client's address behind trusted proxies.

use ipnet::IpNet;
use std::net::IpAddr;

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive,
/// surrounding spaces ignored). `None` for any other shape: another
/// scheme, no token, or a token with spaces or control bytes inside.
pub fn parse_bearer(header: &[u8]) -> Option<&[u8]> {
    let header = header.trim_ascii();
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    if !rest.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
        return None;
    }
    let token = rest.trim_ascii();
    let printable = |b: &u8| b.is_ascii_graphic();
    (!token.is_empty() && token.iter().all(printable)).then_some(token)
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy, in which case the rightmost `X-Forwarded-For` entry that is not
/// itself a trusted proxy. `forwarded_for` holds every `X-Forwarded-For`
/// header line in order (proxies may add a line of their own). Entries a
/// client could forge (left of the first untrusted hop) are never used.
/// `None` when a trusted proxy sent a chain that cannot be read: the
/// client is unknown.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&[u8]], trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) || forwarded_for.is_empty() {
        return Some(peer);
    }
    let mut hops = Vec::new();
    for line in forwarded_for {
        let text = std::str::from_utf8(line).ok()?;
        hops.extend(text.split(','));
    }
    for hop in hops.iter().rev() {
        let ip = hop.trim().parse::<IpAddr>().ok()?.to_canonical();
        if !is_trusted(&ip) {
            return Some(ip);
        }
    }
    // Every hop is a trusted proxy: the leftmost is the closest we know.
    hops.first()?
        .trim()
        .parse::<IpAddr>()
        .ok()
        .map(|ip| ip.to_canonical())
}

/// [`client_ip`] for a request: the peer and every `X-Forwarded-For`
/// line of `headers`.
pub fn forwarded_client(
    peer: IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let forwarded: Vec<&[u8]> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    client_ip(peer, &forwarded, trusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(parse_bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"bearer   abc  "), Some(&b"abc"[..]));
        assert_eq!(parse_bearer(b"Basic abc"), None);
        assert_eq!(parse_bearer(b"Bearer"), None);
        assert_eq!(parse_bearer(b"Bearer "), None);
        assert_eq!(parse_bearer(b"Bearerabc"), None);
        assert_eq!(parse_bearer(b"Bearer a b"), None);
        assert_eq!(parse_bearer(b"Bearer a\x00b"), None);
        assert_eq!(parse_bearer("Bearer ключ".as_bytes()), None);
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        let chain: &[&[u8]] = &[b"203.0.113.9, 192.0.2.1, 10.0.0.5"];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(outsider, chain, &trusted), Some(outsider));
        assert_eq!(client_ip(proxy, chain, &trusted), ip("192.0.2.1"));
        assert_eq!(client_ip(proxy, &[], &trusted), Some(proxy));
        assert_eq!(client_ip(proxy, &[b"junk"], &trusted), None);
        assert_eq!(client_ip(proxy, &[b"\xff10.1.1.1"], &trusted), None);
        // A forged first line and the proxy's own line: the proxy's counts.
        assert_eq!(
            client_ip(proxy, &[b"10.9.9.9", b"198.51.100.4"], &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(proxy, &[b"10.0.0.7, 10.0.0.8"], &trusted),
            ip("10.0.0.7")
        );
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(client_ip(mapped, &[], &trusted), Some(outsider));
    }
}
