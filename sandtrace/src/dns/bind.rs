//! The session resolver's sockets, bound before the kernel programs load: the programs are
//! configured with the port (`Config::dns`).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
};

use anyhow::{Context as _, Result, anyhow};
use sandtrace_common::network::DnsRedirect;

/// Tries at binding TCP to the port the kernel chose for UDP, which another program may hold.
const BIND_ATTEMPTS: usize = 8;

/// UDP and TCP sockets on one loopback port, IPv4 and (where the host has IPv6 loopback)
/// IPv6. Std sockets are close-on-exec (`SOCK_CLOEXEC`), and the session's init closes every
/// descriptor it does not need: none reaches CMD.
#[derive(Debug)]
pub struct BoundResolver {
    pub(super) port: u16,
    pub(super) v4: (UdpSocket, TcpListener),
    pub(super) v6: Option<(UdpSocket, TcpListener)>,
}

impl BoundResolver {
    /// Binds `127.0.0.1` (and `[::1]`) on one ephemeral port for UDP and TCP.
    pub fn bind() -> Result<Self> {
        let mut last_error = None;
        for _ in 0..BIND_ATTEMPTS {
            match Self::try_bind() {
                Ok(bound) => return Ok(bound),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
                Err(e) => {
                    return Err(e).context("binding the session's resolver on 127.0.0.1");
                }
            }
        }
        Err(anyhow!(
            "binding the session's resolver: no port free for both UDP and TCP on 127.0.0.1 in \
             {BIND_ATTEMPTS} attempts ({})",
            last_error.map(|e| e.to_string()).unwrap_or_default()
        ))
    }

    fn try_bind() -> io::Result<Self> {
        let udp4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp4.local_addr()?.port();
        let tcp4 = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        // A socket bound to ::1 never receives IPv4 traffic, so IPV6_V6ONLY changes nothing
        // for it. A host without IPv6 loopback fails here with another error than AddrInUse:
        // the resolver then has no IPv6 address, and the kernel refuses IPv6-only queries.
        let v6 = match UdpSocket::bind((Ipv6Addr::LOCALHOST, port))
            .and_then(|udp| Ok((udp, TcpListener::bind((Ipv6Addr::LOCALHOST, port))?)))
        {
            Ok(v6) => Some(v6),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Err(e),
            Err(_) => None,
        };
        Ok(Self {
            port,
            v4: (udp4, tcp4),
            v6,
        })
    }

    /// Where the kernel programs send DNS traffic: for `Config::dns`.
    pub fn redirect(&self) -> DnsRedirect {
        DnsRedirect {
            addr4: crate::network::words(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            addr6: match self.v6 {
                Some(_) => crate::network::words(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                None => [0; 4],
            },
            port: self.port,
            _pad: 0,
            _pad2: 0,
        }
    }

    /// The IPv4 address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use sandtrace_common::network::V4_MAPPED_WORD;

    use super::*;

    #[test]
    fn one_port_for_udp_and_tcp_and_close_on_exec() {
        let bound = BoundResolver::bind().unwrap();
        let redirect = bound.redirect();
        assert_ne!(redirect.port, 0);
        assert_eq!(bound.v4.0.local_addr().unwrap(), bound.addr());
        assert_eq!(bound.v4.1.local_addr().unwrap(), bound.addr());
        assert_eq!(
            redirect.addr4,
            [0, 0, V4_MAPPED_WORD, u32::from_ne_bytes([127, 0, 0, 1])]
        );
        let mut fds = vec![bound.v4.0.as_raw_fd(), bound.v4.1.as_raw_fd()];
        match &bound.v6 {
            Some((udp, tcp)) => {
                assert_eq!(udp.local_addr().unwrap().port(), redirect.port);
                assert_eq!(tcp.local_addr().unwrap().port(), redirect.port);
                assert_eq!(redirect.addr6, [0, 0, 0, u32::from_ne_bytes([0, 0, 0, 1])]);
                fds.extend([udp.as_raw_fd(), tcp.as_raw_fd()]);
            }
            None => assert_eq!(redirect.addr6, [0; 4]),
        }
        for fd in fds {
            // SAFETY: F_GETFD on a descriptor this test owns.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "fd {fd}");
        }
    }
}
