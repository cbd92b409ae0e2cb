//! Where a request goes: `host`, `host:port`, `*.domain` or `service:NAME`, parsed once into a
//! typed value. A URL given as a destination is reduced to its host (and port when not 443).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// `host:port`, matched first.
    HostPort(String, u16),
    /// `host` (any port).
    Host(String),
    /// `*.domain`: any name below `domain`, at any depth (not `domain` itself).
    Wildcard(String),
    /// `service:NAME`: a named service's binding.
    Service(String),
}

/// A parsed destination, and what the user should be told about how it was read.
pub struct Parsed {
    pub destination: Destination,
    /// Set when the input was a URL that was reduced ("https://a.example/x" -> "a.example").
    pub reduced_from: Option<String>,
}

impl Destination {
    pub fn parse(input: &str) -> Result<Parsed, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("the destination is empty".into());
        }
        if let Some(name) = text.strip_prefix("service:") {
            if !super::names::is_valid_name(name) {
                return Err(format!("'{name}' is not a valid service name (letters, digits, '.', '_', '-')"));
            }
            return Ok(Parsed { destination: Destination::Service(name.to_string()), reduced_from: None });
        }
        if text.contains("://") {
            let url = url::Url::parse(text).map_err(|e| format!("'{text}' is not a valid URL ({e})"))?;
            let host = url.host_str().ok_or_else(|| format!("the URL '{text}' has no host"))?;
            let host = normalize_host(host)?;
            let port = url.port_or_known_default().unwrap_or(443);
            if port == 0 {
                return Err(format!("the URL '{text}' has port 0 (ports are 1-65535)"));
            }
            let destination = if url.port().is_some() && port != 443 {
                Destination::HostPort(host, port)
            } else {
                Destination::Host(host)
            };
            return Ok(Parsed { destination, reduced_from: Some(text.to_string()) });
        }
        if let Some(domain) = text.strip_prefix("*.") {
            let domain = normalize_host(domain)?;
            if !domain.contains('.') && domain.parse::<std::net::IpAddr>().is_err() && domain.len() < 2 {
                return Err(format!("'*.{domain}' is too broad"));
            }
            return Ok(Parsed { destination: Destination::Wildcard(domain), reduced_from: None });
        }
        let (host, port) = split_host_port(text)?;
        let host = normalize_host(&host)?;
        Ok(Parsed {
            destination: match port {
                Some(p) => Destination::HostPort(host, p),
                None => Destination::Host(host),
            },
            reduced_from: None,
        })
    }

    /// The text stored and shown: `host`, `host:port`, `*.domain`, `service:NAME`. A host
    /// that would not read back from `host:port` is bracketed: an IPv6 address, and a host
    /// named `service` (`service:8080` is the named service "8080"; `[service]:8080` is the
    /// host, as a container network names one).
    pub fn key(&self) -> String {
        match self {
            Destination::HostPort(h, p) if h.contains(':') || h == "service" => format!("[{h}]:{p}"),
            Destination::HostPort(h, p) => format!("{h}:{p}"),
            Destination::Host(h) => h.clone(),
            Destination::Wildcard(d) => format!("*.{d}"),
            Destination::Service(n) => format!("service:{n}"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("'{text}': missing ']'"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host.to_string(), Some(parse_port(p, text)?))),
            None if after.is_empty() => Ok((host.to_string(), None)),
            None => Err(format!("'{text}' is not host, host:port or [ipv6]:port")),
        };
    }
    if text.matches(':').count() > 1 {
        return Ok((text.to_string(), None)); // a bare IPv6 address
    }
    match text.split_once(':') {
        Some((h, p)) => Ok((h.to_string(), Some(parse_port(p, text)?))),
        None => Ok((text.to_string(), None)),
    }
}

fn parse_port(p: &str, whole: &str) -> Result<u16, String> {
    match p.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(format!("'{whole}': '{p}' is not a port (1-65535)")),
    }
}

/// Lowercase, no trailing dot, only characters a DNS name or an IP address can have.
pub fn normalize_host(host: &str) -> Result<String, String> {
    // International names become their ASCII (punycode) form, as DNS and certificates use.
    let ascii;
    let host = if host.is_ascii() {
        host
    } else {
        ascii = match url::Host::parse(host.trim_end_matches('.')) {
            Ok(url::Host::Domain(d)) => d,
            _ => return Err(format!("'{host}' is not a host name")),
        };
        ascii.as_str()
    };
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    let h = h.trim_start_matches('[').trim_end_matches(']').to_string();
    if h.is_empty() || h.len() > 253 {
        return Err(format!("'{host}' is not a host name"));
    }
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h);
    }
    let ok = h.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if ok {
        Ok(h)
    } else {
        Err(format!("'{host}' is not a host name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        Destination::parse(s).unwrap().destination.key()
    }

    /// Found by CI's run of fuzz/fuzz_targets/parsers.rs: `https://service:8080/` was stored as
    /// `service:8080`, which reads back as the named service "8080".
    #[test]
    fn a_host_named_service_with_a_port_is_not_a_named_service() {
        for input in ["https://service:8080/", "SERVICE:8080", "[service]:8080", "Service.:8080"] {
            let parsed = Destination::parse(input).unwrap().destination;
            assert_eq!(parsed, Destination::HostPort("service".into(), 8080), "{input}");
            assert_eq!(parsed.key(), "[service]:8080", "{input}");
            assert_eq!(Destination::parse(&parsed.key()).unwrap().destination, parsed, "{input}");
        }
        assert_eq!(Destination::parse("service:8080").unwrap().destination, Destination::Service("8080".into()));
        assert_eq!(key("https://service/"), "service");
    }

    /// Found by fuzz/fuzz_targets/parsers.rs: a URL with port 0 was reduced to `host:0`, a
    /// destination the plain form refuses (it did not read back).
    #[test]
    fn a_url_with_port_zero_is_refused_like_host_port_zero() {
        let e = Destination::parse("http1://a.\0\0\0\"mp~e:scr@ivee:0?x=?y").err().expect("refused");
        assert!(e.contains("port 0"), "{e}");
        assert!(Destination::parse("https://ivee:0/").err().is_some_and(|e| e.contains("port 0")));
        assert!(Destination::parse("ivee:0").is_err());
        assert_eq!(key("https://ivee:8443/"), "ivee:8443");
    }

    #[test]
    fn parses_every_destination_form() {
        assert_eq!(key("API.Partner.example."), "api.partner.example");
        assert_eq!(key("api.partner.example:8443"), "api.partner.example:8443");
        assert_eq!(key("*.partner.example"), "*.partner.example");
        assert_eq!(key("service:Billing.InvoiceService"), "service:Billing.InvoiceService");
        assert_eq!(key("127.0.0.1:9443"), "127.0.0.1:9443");
        assert_eq!(key("[::1]:9443"), "[::1]:9443");
    }

    #[test]
    fn reduces_urls_to_host_and_non_default_port() {
        let p = Destination::parse("https://api.partner.example/soap/x?y=1").unwrap();
        assert_eq!(p.destination.key(), "api.partner.example");
        assert!(p.reduced_from.is_some());
        assert_eq!(key("https://api.partner.example:8443/x"), "api.partner.example:8443");
        assert_eq!(key("https://api.partner.example:443/x"), "api.partner.example");
    }

    #[test]
    fn international_names_become_punycode() {
        assert_eq!(key("bücher.example"), "xn--bcher-kva.example");
    }

    #[test]
    fn refuses_nonsense() {
        for bad in ["", "a b", "host:0", "host:99999", "service:", "service:a/b", "[::1"] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }
}
