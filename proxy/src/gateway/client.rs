//! The client's address, as rate limits, `X-Forwarded-For` and the access
//! log see it.

use std::net::IpAddr;

use ipnet::IpNet;
use pingora::prelude::Session;

use super::forwarding::Seen;

/// The peer, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not one. A client cannot choose its
/// address by sending the header: only hops the operator trusts are read.
pub(crate) fn client_ip(session: &Session, trusted_proxies: &[IpNet]) -> Option<IpAddr> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())?;
    let forwarded = session.req_header().headers.get_all("x-forwarded-for");
    Some(from_forwarded_for(peer, forwarded.iter().map(|v| v.as_bytes()), trusted_proxies))
}

/// What portcullis saw of the connection, for the forwarding headers.
pub(super) fn seen(session: &Session, trusted_proxies: &[IpNet], client: Option<IpAddr>) -> Option<Seen> {
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())?;
    let trusted = trusted_proxies.iter().any(|net| net.contains(&peer));
    let tls = session.digest().is_some_and(|digest| digest.ssl_digest.is_some());
    Some(Seen { peer, client: client.unwrap_or(peer), trusted, tls })
}

/// [`client_ip`] over the header values, last value first.
fn from_forwarded_for<'a, I>(peer: IpAddr, values: I, trusted_proxies: &[IpNet]) -> IpAddr
where
    I: DoubleEndedIterator<Item = &'a [u8]>,
{
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for value in values.rev() {
        let Ok(text) = std::str::from_utf8(value) else { return client };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !trusted(&ip) {
                        return ip;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(peer: &str, values: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let values = values.iter().map(|v| v.as_bytes());
        from_forwarded_for(peer.parse().unwrap(), values, &trusted).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        assert_eq!(resolve("203.0.113.9", &["10.0.0.1"], &["10.0.0.0/8"]), "203.0.113.9");
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(resolve("10.0.0.2", &["198.51.100.7, 10.0.0.5"], &trusted), "198.51.100.7");
        assert_eq!(resolve("10.0.0.2", &["198.51.100.7", "10.0.0.5"], &trusted), "198.51.100.7");
        // A spoofed left-most entry does not matter: the first untrusted from the right wins.
        assert_eq!(resolve("10.0.0.2", &["1.2.3.4, 198.51.100.7"], &trusted), "198.51.100.7");
    }

    #[test]
    fn garbage_stops_at_the_last_address_read() {
        let trusted = ["10.0.0.0/8"];
        assert_eq!(resolve("10.0.0.2", &["nonsense, 10.0.0.5"], &trusted), "10.0.0.5");
        assert_eq!(resolve("10.0.0.2", &[], &trusted), "10.0.0.2");
    }
}
