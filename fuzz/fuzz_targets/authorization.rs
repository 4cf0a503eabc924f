//! Who is calling: the `Authorization: Bearer` parser and the client
//! address behind trusted proxies (`X-Forwarded-For`).
//!
//! Checks: a token is read only from the bearer scheme, is non-empty
//! printable ASCII taken from the header itself, and reads back the same;
//! the client address is the peer, or the rightmost forwarded hop that is
//! not a trusted proxy with only trusted proxies to its right.
#![no_main]

use arbitrary::Arbitrary;
use ipnet::IpNet;
use keywarden::server::{client_ip, parse_bearer};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

#[derive(Arbitrary, Debug)]
struct Call<'a> {
    authorization: &'a [u8],
    peer: IpAddr,
    forwarded_for: Vec<&'a [u8]>,
    trusted: Vec<(IpAddr, u8)>,
}

fuzz_target!(|call: Call<'_>| {
    if let Some(token) = parse_bearer(call.authorization) {
        assert!(!token.is_empty() && token.iter().all(u8::is_ascii_graphic));
        let header = call.authorization.trim_ascii();
        assert!(header[..6].eq_ignore_ascii_case(b"bearer"));
        assert!(header.ends_with(token));
        let again = [b"Bearer ", token].concat();
        assert_eq!(parse_bearer(&again), Some(token));
    }

    let trusted: Vec<IpNet> = call
        .trusted
        .iter()
        .filter_map(|&(ip, len)| IpNet::new(ip, len).ok())
        .collect();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = call.peer.to_canonical();
    let got = client_ip(call.peer, &call.forwarded_for, &trusted);
    if !is_trusted(&peer) || call.forwarded_for.is_empty() {
        assert_eq!(got, Some(peer), "an untrusted peer is the client");
        return;
    }
    let Some(ip) = got else { return };
    // The oracle: hops in order, parsed on their own.
    let hops: Vec<Option<IpAddr>> = call
        .forwarded_for
        .iter()
        .flat_map(|line| {
            std::str::from_utf8(line)
                .expect("a chain that was read is UTF-8")
                .split(',')
        })
        .map(|h| h.trim().parse::<IpAddr>().ok().map(|ip| ip.to_canonical()))
        .collect();
    match hops
        .iter()
        .rposition(|h| h.is_none_or(|ip| !is_trusted(&ip)))
    {
        Some(at) => {
            assert_eq!(hops[at], Some(ip), "not the rightmost untrusted hop");
        }
        None => assert_eq!(
            hops.first().copied().flatten(),
            Some(ip),
            "all trusted: the leftmost"
        ),
    }
});
