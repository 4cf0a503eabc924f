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
/// itself a trusted proxy. Entries a client could forge (left of the first
/// untrusted hop) are never used.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(chain) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !is_trusted(&client) {
                    return client;
                }
            }
            Err(_) => return client,
        }
    }
    client
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
        let chain = Some("203.0.113.9, 192.0.2.1, 10.0.0.5");
        assert_eq!(client_ip(outsider, chain, &trusted), outsider);
        assert_eq!(
            client_ip(proxy, chain, &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, None, &trusted), proxy);
        assert_eq!(client_ip(proxy, Some("junk"), &trusted), proxy);
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(client_ip(mapped, None, &trusted), outsider);
    }
}
