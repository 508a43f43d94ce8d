//! A test's own offline network with its own names, so that the DNS tests never depend on or
//! touch the machine's network or files:
//! - [`TestNetwork`]: a new network namespace (loopback up) in which the test's servers listen
//!   on 127.0.0.x, and name configuration of the test's own (`/etc/hosts`, `/etc/resolv.conf`,
//!   `/etc/nsswitch.conf`) that every process the test starts in it sees, bound over the
//!   machine's files in a private mount namespace of that process (the machine's stay as
//!   they are);
//! - [`DnsServer`]: the `sandtrace-test-dns` helper running in it, with its query log;
//! - [`World`]: the names every DNS test uses (`good.test`, `evil.test`) and their servers.
//!
//! Needs root (namespaces, port 53), which the host tests and the VM have.
#![allow(dead_code)] // each test crate uses a different subset

use std::{
    ffi::CString,
    fs::File,
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
};

use crate::{
    common::Scratch,
    probe::{self, DEADLINE},
};

/// The test DNS server binary.
pub const DNS_SERVER: &str = env!("CARGO_BIN_EXE_sandtrace-test-dns");

/// A network namespace of the test's own and the name configuration its processes see.
pub struct TestNetwork {
    /// Keeps the namespace alive (it has no process of its own) and lets processes and threads
    /// enter it.
    namespace: File,
    /// The test's `/etc` files, and the servers' logs.
    pub scratch: Scratch,
    /// What each process started in the network binds over what (source, target).
    binds: Vec<(CString, CString)>,
}

impl TestNetwork {
    /// A new network whose processes resolve names with `nameserver` (port 53) and find
    /// `localhost` and the lines `hosts` (`ADDRESS NAME`) in `/etc/hosts`.
    pub fn new(name: &str, nameserver: std::net::IpAddr, hosts: &[&str]) -> Self {
        let namespace = std::thread::spawn(|| {
            // SAFETY: plain syscall; it moves only this short-lived thread into the new
            // namespace, and the descriptor opened below keeps the namespace alive.
            let ret = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                ret,
                0,
                "unshare(CLONE_NEWNET): {} (the DNS tests run as root)",
                std::io::Error::last_os_error()
            );
            probe::loopback_up();
            File::open("/proc/thread-self/ns/net").expect("opening the new network namespace")
        })
        .join()
        .expect("creating the test's network namespace");
        // Not `name` itself: a session's scratch directory may be named after the test too.
        let scratch = Scratch::new(&format!("{name}-network"));
        let files = [
            (
                "/etc/hosts",
                format!("127.0.0.1 localhost\n::1 localhost\n{}\n", hosts.join("\n")),
            ),
            // Generous timeouts: a reply that must come may be slow in an emulated VM.
            (
                "/etc/resolv.conf",
                format!("nameserver {nameserver}\noptions timeout:30 attempts:2\n"),
            ),
            // Names from the files above and DNS, not from a resolver daemon of the machine.
            (
                "/etc/nsswitch.conf",
                "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n".to_owned(),
            ),
        ];
        let mut binds = Vec::new();
        for (target, text) in files {
            let source = scratch.path(Path::new(target).file_name().unwrap().to_str().unwrap());
            std::fs::write(&source, text).unwrap();
            // A symlink (resolv.conf often is one) is bound over the file it points to.
            let target = std::fs::canonicalize(target).unwrap_or_else(|e| {
                panic!("{target}: {e} (the test binds its own file over it, so it must exist)")
            });
            binds.push((c_path(&source), c_path(&target)));
        }
        Self {
            namespace,
            scratch,
            binds,
        }
    }

    /// Runs `f` on a thread inside the network: the sockets it creates belong to it (and stay
    /// there when other threads use them).
    pub fn inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let namespace = self.namespace.as_raw_fd();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // SAFETY: plain syscall on a namespace descriptor this value owns; it
                    // moves only this thread, which ends with the scope.
                    let ret = unsafe { libc::setns(namespace, libc::CLONE_NEWNET) };
                    assert_eq!(ret, 0, "setns: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("a thread inside the test's network panicked")
        })
    }

    /// Makes `cmd` start inside the network, in a private mount namespace where the test's
    /// `/etc` files are bound over the machine's.
    pub fn enter(&self, cmd: &mut Command) {
        let namespace = self.namespace.as_raw_fd();
        let binds = self.binds.clone();
        let root = c_path(Path::new("/"));
        // SAFETY: the closure runs in the child between fork and exec and makes only raw
        // syscalls on data prepared before the fork (no allocation, no locks).
        unsafe {
            cmd.pre_exec(move || {
                let check = |ret: libc::c_int| {
                    if ret == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                };
                check(libc::setns(namespace, libc::CLONE_NEWNET))?;
                check(libc::unshare(libc::CLONE_NEWNS))?;
                // Nothing mounted below reaches the machine's mount namespace.
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (source, target) in &binds {
                    check(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                Ok(())
            });
        }
    }

    /// A command for `program` that starts inside the network (see [`Self::enter`]).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        self.enter(&mut cmd);
        cmd
    }
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).expect("a path without NUL")
}

/// A running `sandtrace-test-dns` in a [`TestNetwork`]; killed when dropped.
pub struct DnsServer {
    pub address: SocketAddr,
    child: Child,
    log: PathBuf,
}

impl DnsServer {
    /// Starts a server on `address` (UDP and TCP) answering `records` (`NAME=ADDRESS`, `*` for
    /// every name) and waits until it is ready.
    pub fn start(net: &TestNetwork, address: SocketAddr, records: &[&str]) -> Self {
        let log = net
            .scratch
            .path(&format!("dns-{}-{}.log", address.ip(), address.port()));
        std::fs::write(&log, "").unwrap();
        let mut cmd = Command::new(DNS_SERVER);
        cmd.arg("--listen")
            .arg(address.to_string())
            .arg("--log")
            .arg(&log);
        for record in records {
            cmd.args(["--record", record]);
        }
        // It needs the network only: the machine's files are fine.
        let namespace = net.namespace.as_raw_fd();
        // SAFETY: one raw syscall between fork and exec on a descriptor the network owns.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(namespace, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting sandtrace-test-dns");
        let stdout = child.stdout.take().unwrap();
        let (ready, is_ready) = mpsc::channel();
        std::thread::spawn(move || {
            let first = BufReader::new(stdout).lines().next();
            let _ = ready.send(matches!(first, Some(Ok(line)) if line == "ready"));
        });
        let server = Self {
            address,
            child,
            log,
        };
        assert_eq!(
            is_ready.recv_timeout(DEADLINE),
            Ok(true),
            "the test DNS server on {address} did not get ready (its stderr is above)"
        );
        server
    }

    /// The queries it received since it started or since the last call (`TRANSPORT NAME
    /// TYPE`), taken out of its log.
    pub fn take_queries(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).expect("reading the DNS server's log");
        // The server appends (O_APPEND), so emptying the file loses nothing written later.
        std::fs::write(&self.log, "").unwrap();
        text.lines().map(str::to_owned).collect()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The allowed name and the address its server listens on.
pub const GOOD: &str = "good.test";
pub const GOOD_ADDRESS: &str = "127.0.0.2";
/// A name the policy does not allow, and its address.
pub const EVIL: &str = "evil.test";
pub const EVIL_ADDRESS: &str = "127.0.0.3";
/// An alias (CNAME) whose target no entry covers, and the address at the end of the chain.
pub const ALIAS: &str = "www.good.test";
pub const ALIAS_TARGET: &str = "edge.cdn.test";
pub const ALIAS_ADDRESS: &str = "127.0.0.6";
/// Names only the test's `/etc/hosts` knows, and their addresses.
pub const PINNED: &str = "pinned.test";
pub const PINNED_ADDRESS: &str = "127.0.0.7";
pub const EVIL_PINNED: &str = "evil-pinned.test";
pub const EVIL_PINNED_ADDRESS: &str = "127.0.0.8";
/// The DNS server the test's `/etc/resolv.conf` names: it knows the names above except the
/// `/etc/hosts` ones.
pub const UPSTREAM: &str = "127.0.0.4:53";
/// Another DNS server, which a command could pick itself: it answers every name with
/// [`OTHER_ANSWER`].
pub const OTHER_RESOLVER: &str = "127.0.0.5:53";
pub const OTHER_ANSWER: &str = "127.0.0.9";
/// Where a test may start another such server on IPv6.
pub const OTHER_RESOLVER_6: &str = "[::1]:53";

/// A [`TestNetwork`] with the two DNS servers every DNS test uses.
pub struct World {
    pub upstream: DnsServer,
    pub other: DnsServer,
    pub net: TestNetwork,
}

impl World {
    pub fn new(name: &str) -> Self {
        let upstream: SocketAddr = UPSTREAM.parse().unwrap();
        let net = TestNetwork::new(
            name,
            upstream.ip(),
            &[
                &format!("{PINNED_ADDRESS} {PINNED}"),
                &format!("{EVIL_PINNED_ADDRESS} {EVIL_PINNED}"),
            ],
        );
        let upstream = DnsServer::start(
            &net,
            upstream,
            &[
                &format!("{GOOD}={GOOD_ADDRESS}"),
                &format!("{EVIL}={EVIL_ADDRESS}"),
                &format!("{ALIAS}=CNAME:{ALIAS_TARGET}"),
                &format!("{ALIAS_TARGET}={ALIAS_ADDRESS}"),
            ],
        );
        let other = DnsServer::start(
            &net,
            OTHER_RESOLVER.parse().unwrap(),
            &[&format!("*={OTHER_ANSWER}")],
        );
        Self {
            upstream,
            other,
            net,
        }
    }

    /// TCP and UDP servers on ephemeral ports of `ip` (see [`probe::Servers`]).
    pub fn servers(&self, ip: &str) -> probe::Servers {
        let address: SocketAddr = format!("{ip}:0").parse().unwrap();
        self.servers_at(address)
    }

    /// TCP and UDP servers on `address` (both protocols, same port).
    pub fn servers_at(&self, address: SocketAddr) -> probe::Servers {
        let address = address.to_string();
        self.net.inside(|| probe::Servers::bind(&address, &address))
    }

    /// Runs the probe operations `ops` (separated by `;`) in the network, without sandtrace.
    pub fn outside(&self, ops: &str) -> Vec<String> {
        probe::outside_with(ops, |cmd| self.net.enter(cmd))
    }
}
