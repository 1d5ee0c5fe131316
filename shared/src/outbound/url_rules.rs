//! Where Herald may send a tenant's events. An endpoint URL is https, holds no
//! user name or password, is at most `MAX_URL_CHARS` long, and its host is neither a
//! forbidden address (loopback, private, link-local and the cloud metadata address,
//! shared, multicast, reserved, documentation ranges, and those same addresses inside
//! IPv6: mapped, compatible, NAT64, 6to4, Teredo) nor a name resolving to one. The URL
//! parser (WHATWG, the `url` crate) reads decimal, octal, hex and short IPv4 forms as
//! the address they mean, so `http://2130706433/` is 127.0.0.1 here as in a client.
//! In a dev stack, and only there, the host `127.0.0.1` is allowed (by http too), so
//! the local cloud can deliver to a receiver on loopback.
//!
//! The same rules run twice: when the endpoint is registered or changed
//! (`check_registration`) and when a delivery connects (`resolve_for_delivery`), since
//! a name can change what it resolves to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

pub const MAX_URL_CHARS: usize = 2048;
/// How long a registration waits for a name to resolve before taking it as unresolved.
const REGISTRATION_LOOKUP: Duration = Duration::from_secs(2);
/// The one loopback address a dev stack may deliver to.
const DEV_HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Names that are never a tenant's endpoint, whatever they resolve to where Herald runs.
const FORBIDDEN_NAMES: &[&str] = &[
    "localhost",
    "metadata",
    "metadata.google.internal",
    "instance-data",
    "instance-data.ec2.internal",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlProblem {
    #[error("must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("is not an absolute URL")]
    Unparseable,
    #[error("must use https")]
    NotHttps,
    #[error("must not hold a user name or password")]
    Userinfo,
    #[error("must name a host")]
    NoHost,
    #[error("must not be a {0} address")]
    ForbiddenAddress(&'static str),
    #[error("must not name a local or metadata host")]
    ForbiddenName,
    #[error("resolves to a {0} address")]
    ResolvesForbidden(&'static str),
    #[error("does not resolve")]
    Unresolved,
}

/// An endpoint URL that passed the rules that need no lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(Url);

impl EndpointUrl {
    /// `raw` as an endpoint URL, by the rules that need no lookup. `dev`: the stack's
    /// environment is dev.
    pub fn parse(raw: &str, dev: bool) -> Result<Self, UrlProblem> {
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(UrlProblem::TooLong);
        }
        let url = Url::parse(raw).map_err(|_| UrlProblem::Unparseable)?;
        // Spelled as `127.0.0.1`: another spelling of it (`2130706433`) is refused
        // like any loopback address, so dev accepts no more than it must.
        let dev_host = dev
            && url.host() == Some(Host::Ipv4(DEV_HOST))
            && url.host_str() == Some("127.0.0.1")
            && raw.contains("//127.0.0.1");
        match url.scheme() {
            "https" => {}
            "http" if dev_host => {}
            _ => return Err(UrlProblem::NotHttps),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlProblem::Userinfo);
        }
        match url.host() {
            None => return Err(UrlProblem::NoHost),
            Some(_) if dev_host => {}
            Some(Host::Ipv4(ip)) => refuse(IpAddr::V4(ip), UrlProblem::ForbiddenAddress)?,
            Some(Host::Ipv6(ip)) => refuse(IpAddr::V6(ip), UrlProblem::ForbiddenAddress)?,
            Some(Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if FORBIDDEN_NAMES.contains(&name.as_str()) || name.ends_with(".localhost") {
                    return Err(UrlProblem::ForbiddenName);
                }
            }
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn url(&self) -> &Url {
        &self.0
    }

    /// The name to look up, when the host is a name and not an address.
    fn name(&self) -> Option<&str> {
        match self.0.host() {
            Some(Host::Domain(name)) => Some(name),
            _ => None,
        }
    }

    fn port(&self) -> u16 {
        self.0.port_or_known_default().unwrap_or(443)
    }

    /// At registration: a name resolving to any forbidden address is refused. A name
    /// that does not resolve (yet) is accepted: every delivery checks again.
    pub async fn check_registration(&self) -> Result<(), UrlProblem> {
        let Some(name) = self.name() else {
            return Ok(());
        };
        let lookup = tokio::net::lookup_host((name, self.port()));
        match tokio::time::timeout(REGISTRATION_LOOKUP, lookup).await {
            Ok(Ok(addresses)) => check_resolved(addresses),
            Ok(Err(_)) | Err(_) => Ok(()),
        }
    }

    /// At connect time: the addresses to connect to, all allowed. An address host is
    /// itself (checked by `parse`); a name must resolve, and to allowed addresses only.
    pub async fn resolve_for_delivery(&self) -> Result<Vec<SocketAddr>, UrlProblem> {
        match self.0.host() {
            Some(Host::Ipv4(ip)) => Ok(vec![SocketAddr::new(IpAddr::V4(ip), self.port())]),
            Some(Host::Ipv6(ip)) => Ok(vec![SocketAddr::new(IpAddr::V6(ip), self.port())]),
            _ => {
                let name = self.name().ok_or(UrlProblem::NoHost)?;
                let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name, self.port()))
                    .await
                    .map_err(|_| UrlProblem::Unresolved)?
                    .collect();
                check_resolved(addresses.iter().copied())?;
                if addresses.is_empty() {
                    return Err(UrlProblem::Unresolved);
                }
                Ok(addresses)
            }
        }
    }
}

fn check_resolved(addresses: impl IntoIterator<Item = SocketAddr>) -> Result<(), UrlProblem> {
    addresses
        .into_iter()
        .try_for_each(|a| refuse(a.ip(), UrlProblem::ResolvesForbidden))
}

fn refuse(ip: IpAddr, problem: fn(&'static str) -> UrlProblem) -> Result<(), UrlProblem> {
    match forbidden(ip) {
        Some(kind) => Err(problem(kind)),
        None => Ok(()),
    }
}

/// What kind of address no tenant endpoint may be, if `ip` is one.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "metadata",
        (0, ..) => "unspecified",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared",
        (192, 0, 0) | (198, 18..=19, _) => "reserved",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible): the IPv4 address inside.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return forbidden_v4(embedded_v4(s[6], s[7])).or(Some("reserved"));
    }
    match s[0] {
        // NAT64 (64:ff9b::/96): the IPv4 address it translates to.
        0x64 if s[1] == 0xff9b => forbidden_v4(embedded_v4(s[6], s[7])),
        // 6to4 (2002::/16): the IPv4 address in bits 16..48.
        0x2002 => forbidden_v4(embedded_v4(s[1], s[2])),
        // Teredo (2001::/32) hides an IPv4 address behind a relay: never allowed.
        0x2001 if s[1] == 0 => Some("tunnel"),
        0x2001 if s[1] == 0xdb8 => Some("documentation"),
        x if x & 0xfe00 == 0xfc00 => Some("private"),
        x if x & 0xffc0 == 0xfe80 => Some("link-local"),
        x if x & 0xffc0 == 0xfec0 => Some("private"),
        x if x & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> UrlProblem {
        EndpointUrl::parse(raw, false).expect_err(raw)
    }

    #[test]
    fn public_https_urls_pass() {
        for raw in [
            "https://hooks.example.com/herald",
            "https://93.184.215.14:8443/x?y=1",
            "https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in",
        ] {
            assert!(EndpointUrl::parse(raw, false).is_ok(), "{raw}");
        }
    }

    #[test]
    fn forbidden_addresses_are_refused_in_every_spelling() {
        for (raw, kind) in [
            ("https://127.0.0.1/", "loopback"),
            ("https://2130706433/", "loopback"),
            ("https://0x7f000001/", "loopback"),
            ("https://0177.0.0.1/", "loopback"),
            ("https://127.1/", "loopback"),
            ("https://10.1.2.3/", "private"),
            ("https://172.20.0.1/", "private"),
            ("https://192.168.1.1/", "private"),
            ("https://169.254.169.254/latest/meta-data/", "metadata"),
            ("https://2852039166/", "metadata"),
            ("https://169.254.10.1/", "link-local"),
            ("https://100.64.0.1/", "shared"),
            ("https://224.0.0.1/", "multicast"),
            ("https://0.0.0.0/", "unspecified"),
            ("https://[::1]/", "loopback"),
            ("https://[::ffff:127.0.0.1]/", "loopback"),
            ("https://[::ffff:169.254.169.254]/", "metadata"),
            ("https://[::ffff:a9fe:a9fe]/", "metadata"),
            ("https://[::10.0.0.1]/", "private"),
            ("https://[64:ff9b::a00:1]/", "private"),
            ("https://[2002:7f00:1::]/", "loopback"),
            ("https://[fd00:ec2::254]/", "private"),
            ("https://[fe80::1]/", "link-local"),
            ("https://[ff02::1]/", "multicast"),
            ("https://[2001::1]/", "tunnel"),
        ] {
            assert_eq!(refused(raw), UrlProblem::ForbiddenAddress(kind), "{raw}");
        }
    }

    #[test]
    fn schemes_userinfo_names_and_lengths() {
        assert_eq!(refused("http://hooks.example.com/"), UrlProblem::NotHttps);
        assert_eq!(refused("ftp://hooks.example.com/"), UrlProblem::NotHttps);
        assert_eq!(refused("file:///etc/passwd"), UrlProblem::NotHttps);
        assert_eq!(refused("hooks.example.com/x"), UrlProblem::Unparseable);
        assert_eq!(
            refused("https://user:pw@hooks.example.com/"),
            UrlProblem::Userinfo
        );
        assert_eq!(
            refused("https://user@hooks.example.com/"),
            UrlProblem::Userinfo
        );
        assert_eq!(refused("https://localhost/"), UrlProblem::ForbiddenName);
        assert_eq!(refused("https://LOCALHOST./"), UrlProblem::ForbiddenName);
        assert_eq!(refused("https://api.localhost/"), UrlProblem::ForbiddenName);
        assert_eq!(
            refused("https://metadata.google.internal/"),
            UrlProblem::ForbiddenName
        );
        let long = format!("https://hooks.example.com/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(refused(&long), UrlProblem::TooLong);
    }

    #[test]
    fn only_a_dev_stack_may_use_127_0_0_1_and_only_that_address() {
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(EndpointUrl::parse("https://127.0.0.1:8080/hook", true).is_ok());
        assert_eq!(
            EndpointUrl::parse("http://127.0.0.1:8080/hook", false),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("https://127.0.0.1:8080/hook", false),
            Err(UrlProblem::ForbiddenAddress("loopback"))
        );
        assert_eq!(
            EndpointUrl::parse("http://2130706433/", true),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("https://2130706433/", true),
            Err(UrlProblem::ForbiddenAddress("loopback"))
        );
        assert_eq!(
            EndpointUrl::parse("http://127.0.0.2/", true),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("http://localhost:8080/", true),
            Err(UrlProblem::NotHttps)
        );
        assert_eq!(
            EndpointUrl::parse("https://[::1]/", true),
            Err(UrlProblem::ForbiddenAddress("loopback"))
        );
    }

    #[tokio::test]
    async fn a_name_is_checked_by_what_it_resolves_to() {
        // What a name resolves to decides: one forbidden address among many refuses it.
        let public: SocketAddr = "93.184.215.14:443".parse().unwrap();
        let private: SocketAddr = "10.0.0.7:443".parse().unwrap();
        assert_eq!(check_resolved([public]), Ok(()));
        assert_eq!(
            check_resolved([public, private]),
            Err(UrlProblem::ResolvesForbidden("private"))
        );
        // An address host needs no lookup; a name that does not resolve is accepted
        // at registration and refused at delivery.
        let unresolved = EndpointUrl::parse("https://no-such-host.invalid/x", false).unwrap();
        assert_eq!(unresolved.check_registration().await, Ok(()));
        assert_eq!(
            unresolved.resolve_for_delivery().await,
            Err(UrlProblem::Unresolved)
        );
        let dev = EndpointUrl::parse("http://127.0.0.1:9/x", true).unwrap();
        assert_eq!(
            dev.resolve_for_delivery().await.unwrap(),
            vec!["127.0.0.1:9".parse().unwrap()]
        );
    }
}
