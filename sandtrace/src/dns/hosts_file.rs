//! The host's `/etc/hosts`: CMD's own `getaddrinfo` reads it without asking DNS, so the
//! addresses it gives names that `allow_hosts` covers are admitted when the session starts.

use std::net::IpAddr;

/// The file glibc's `files` source reads.
pub const HOSTS_FILE: &str = "/etc/hosts";

/// The `(address, name)` pairs of a hosts file: `ADDRESS NAME [ALIAS...]` per line, `#` to
/// the end of a line is a comment; lines that do not start with an address are skipped, as
/// glibc skips them. Names are in lower case without a trailing dot.
pub fn entries(text: &str) -> Vec<(IpAddr, String)> {
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        // A scoped address (`fe80::1%eth0`) is not one the resolver hands out.
        let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        for name in fields {
            let name = name.strip_suffix('.').unwrap_or(name);
            entries.push((addr, name.to_ascii_lowercase()));
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        let text = "# comment\n127.0.0.1\tlocalhost\n\n::1 localhost ip6-localhost # x\n\
                    127.0.0.2 Good.Test. alias.test\nnot-an-address name.test\nfe80::1%eth0 l\n";
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            entries(text),
            vec![
                (v4("127.0.0.1"), "localhost".to_owned()),
                (v4("::1"), "localhost".to_owned()),
                (v4("::1"), "ip6-localhost".to_owned()),
                (v4("127.0.0.2"), "good.test".to_owned()),
                (v4("127.0.0.2"), "alias.test".to_owned()),
            ]
        );
    }
}
