//! `DatabaseHost` as a list: `host[:port]` entries separated by commas, in order of
//! preference (`db1, db2:3307, [::1]:3306`). An entry without a port uses `DatabasePort`.

use std::fmt;

/// One `DatabaseHost` entry as written: a host name or IP address and an optional port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Host name or IP address, without the brackets of an IPv6 literal.
    pub host: String,
    /// The port given with the entry; `None`: `DatabasePort`.
    pub port: Option<u16>,
}

/// A database node the pool can connect to: host and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbNode {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl DbNode {
    /// A node at `host` and `port`.
    pub fn new(host: impl Into<String>, port: u16) -> DbNode {
        DbNode {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for DbNode {
    /// `host:port`, or `[v6]:port` for an IPv6 address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Most entries `DatabaseHost` may list.
pub const MAX_HOSTS: usize = 16;

/// Parses a comma-separated `host[:port]` list; the error says which entry is wrong and why.
pub fn parse_host_list(text: &str) -> Result<Vec<HostEntry>, String> {
    let mut entries = Vec::new();
    for (index, raw) in text.split(',').enumerate() {
        let entry = raw.trim();
        let number = index + 1;
        let parsed = parse_entry(entry).map_err(|why| {
            format!("entry {number} (\"{entry}\") {why}; expected host[:port] or [IPv6]:port, separated by commas")
        })?;
        if entries.contains(&parsed) {
            return Err(format!("entry {number} (\"{entry}\") is listed twice"));
        }
        entries.push(parsed);
        if entries.len() > MAX_HOSTS {
            return Err(format!("lists more than {MAX_HOSTS} hosts"));
        }
    }
    Ok(entries)
}

/// Resolves the entries' ports: those without one get `default_port`.
pub fn nodes_of(entries: &[HostEntry], default_port: u16) -> Vec<DbNode> {
    entries
        .iter()
        .map(|e| DbNode::new(e.host.clone(), e.port.unwrap_or(default_port)))
        .collect()
}

fn parse_entry(entry: &str) -> Result<HostEntry, String> {
    if entry.is_empty() {
        return Err("is empty".into());
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| "has no closing ']'".to_string())?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "has \"{v6}\" in brackets, which is not an IPv6 address"
            ));
        }
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| format!("has \"{after}\" after ']' instead of :port"))?,
            ),
        };
        (v6, port)
    } else if entry.matches(':').count() > 1 {
        return Err("looks like an IPv6 address without brackets (write [addr]:port)".into());
    } else {
        match entry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if host.is_empty() {
        return Err("has no host".into());
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/' || c == '@')
    {
        return Err("has a character a host name cannot hold".into());
    }
    let port = match port {
        None => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("has port \"{text}\", not a TCP port (1 to 65535)"))?,
        ),
    };
    Ok(HostEntry {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(host: &str, port: Option<u16>) -> HostEntry {
        HostEntry {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn a_single_host_is_one_entry_without_port() {
        assert_eq!(parse_host_list("db1"), Ok(vec![entry("db1", None)]));
    }

    #[test]
    fn a_list_keeps_its_order_ports_and_ipv6() {
        assert_eq!(
            parse_host_list(" db1 , 10.0.0.2:3307,[::1]:3308, [fe80::1]"),
            Ok(vec![
                entry("db1", None),
                entry("10.0.0.2", Some(3307)),
                entry("::1", Some(3308)),
                entry("fe80::1", None),
            ])
        );
    }

    #[test]
    fn entries_without_port_use_the_default_port() {
        let nodes = nodes_of(&parse_host_list("a,b:1,[::1]").unwrap(), 3306);
        let shown: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["a:3306", "b:1", "[::1]:3306"]);
    }

    #[test]
    fn bad_entries_are_named_with_their_cause() {
        for (text, cause) in [
            ("db1,", "entry 2 (\"\") is empty"),
            ("db1:0", "not a TCP port"),
            ("db1:70000", "not a TCP port"),
            ("db1:x", "port \"x\""),
            ("::1", "without brackets"),
            ("[::1", "no closing"),
            ("[db1]:3306", "not an IPv6 address"),
            ("[::1]3306", "after ']'"),
            (":3306", "has no host"),
            ("a b", "cannot hold"),
            ("db1,db1", "listed twice"),
        ] {
            let err = parse_host_list(text).unwrap_err();
            assert!(err.contains(cause), "{text:?}: {err:?} lacks {cause:?}");
        }
    }

    #[test]
    fn too_many_hosts_are_refused() {
        let text: Vec<String> = (0..=MAX_HOSTS).map(|i| format!("h{i}")).collect();
        assert!(parse_host_list(&text.join(",")).is_err());
    }
}
