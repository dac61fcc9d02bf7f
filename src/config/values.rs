//! The config's values that check themselves while they are read: where
//! prices come from (`SourceUrl`), `"all"` or a list of names
//! (`Selection`), and a host the API answers to (`HostName`). Each is a
//! serde type, so a bad value is an error at its position in the file.
//! Pure parsing of one value: the sections that hold them are `schema`'s,
//! rules that tie fields together `validate`'s; no I/O.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// Where prices come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum SourceUrl {
    /// Start the built-in price server in-process on a loopback port.
    Builtin,
    /// Any server that speaks the crypto price API.
    Remote(Url),
}

impl From<SourceUrl> for String {
    fn from(s: SourceUrl) -> String {
        s.to_string()
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceUrl::Builtin => f.write_str("builtin"),
            SourceUrl::Remote(url) => f.write_str(url.as_str()),
        }
    }
}

impl std::str::FromStr for SourceUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        if raw == "builtin" {
            return Ok(SourceUrl::Builtin);
        }
        let url =
            Url::parse(raw).map_err(|e| format!("{raw:?} is not \"builtin\" or a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{raw:?}: expected an http:// or https:// URL, or \"builtin\""
            ));
        }
        if url.host().is_none() {
            return Err(format!("{raw:?}: the URL has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "{raw:?}: the URL must not have a query or fragment"
            ));
        }
        Ok(SourceUrl::Remote(url))
    }
}

impl<'de> Deserialize<'de> for SourceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// `"all"` (ask the source) or an explicit list of names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Selection<T> {
    #[serde(serialize_with = "serialize_all")]
    All,
    List(Vec<T>),
}

impl<T> Selection<T> {
    pub(super) fn all() -> Self {
        Selection::All
    }

    /// The listed names, or `None` for "all".
    pub fn list(&self) -> Option<&[T]> {
        match self {
            Selection::All => None,
            Selection::List(items) => Some(items),
        }
    }
}

fn serialize_all<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("all")
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Selection<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = Selection<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"all\" or a list of names such as [\"kraken\", \"bitstamp\"]")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                if v == "all" {
                    Ok(Selection::All)
                } else {
                    Err(E::custom(format!(
                        "expected \"all\" or a list of names, found the string {v:?}"
                    )))
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Selection::List(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A host as a `Host` header or `api.allowed_hosts` names it: a DNS name or
/// an IP address (IPv6 in brackets), lowercase, and a port if one was
/// given (`pricegrid.lan`, `192.168.1.5:9180`, `[fd00::5]:9180`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct HostName {
    /// As `url` normalises it: lowercase, IDNA, IPv6 in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl HostName {
    /// The host of `addr`, with its port.
    pub fn of_addr(addr: SocketAddr) -> Self {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        Self {
            host,
            port: Some(addr.port()),
        }
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl From<HostName> for String {
    fn from(h: HostName) -> String {
        h.to_string()
    }
}

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        raw.parse()
    }
}

impl std::str::FromStr for HostName {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("{raw:?} is not a host name or address with an optional port: {why}")
        };
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(c) = raw
            .chars()
            .find(|c| matches!(c, '/' | '@' | '?' | '#' | '\\') || c.is_whitespace())
        {
            return Err(bad(&format!("{c:?} is not allowed")));
        }
        let url = Url::parse(&format!("http://{raw}/")).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        // `url` drops a port equal to the scheme's default: tell "name:80"
        // from "name" by the text itself.
        let has_port = raw.rsplit_once(':').is_some_and(|(before, port)| {
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!before.contains(':') || before.ends_with(']'))
        });
        Ok(Self {
            host: host.to_owned(),
            port: if has_port {
                url.port_or_known_default()
            } else {
                None
            },
        })
    }
}
