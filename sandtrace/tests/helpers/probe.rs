//! The network and syscall probe the integration tests run as CMD, inside a session or outside
//! for comparison (see `tests/probe/mod.rs` for the test side). Each argument is one operation
//! (`NAME ARGS...`); the probe makes the raw calls the tests are about (sockets through every
//! path, denied syscalls, forks, keystrokes pushed into the terminal) and prints
//! `PROBE-RESULT: R1; R2; ...` on stdout, one result per operation.
//!
//! Name operations (`resolve NAME`, `tcp-connect-name NAME PORT`, `udp-send-name NAME PORT`)
//! go through the C library's getaddrinfo, as every program does; `dns-query ADDR:PORT NAME`
//! and `dns-query-tcp ADDR:PORT NAME` send one DNS query for NAME's A records straight to a
//! server of the probe's choosing and print the reply's response code and addresses.
//!
//! Operations that wait for something from outside print `PROBE-PORT: N` once their socket is
//! ready (after `listen`, or after the send that binds it), then read one line `wait MS` on
//! stdin, sent by the test once it has done its part, and report whether something arrived
//! within MS milliseconds.
//!
//! Not a test and not installed: built for the tests through the `test-helpers` feature.

// This program is the untrusted command: it makes raw syscalls, with the arguments an escape
// attempt would choose, as its whole purpose. Each call passes pointers to live buffers it owns;
// what the kernel does with the rest is what the tests check.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::{
    ffi::CString,
    io::{BufRead as _, Write as _},
    mem::size_of,
    net::SocketAddr,
};

const RESULT: &str = "PROBE-RESULT: ";
const PORT: &str = "PROBE-PORT: ";

fn main() {
    let ops: Vec<String> = std::env::args().skip(1).collect();
    if ops.is_empty() {
        eprintln!("usage: sandtrace-test-probe OPERATION...  (a helper of sandtrace's tests)");
        std::process::exit(2);
    }
    let results: Vec<String> = ops.iter().map(|op| run_op(op.trim())).collect();
    println!("{RESULT}{}", results.join("; "));
    std::io::stdout().flush().unwrap();
}
/// Runs one operation (`NAME ARGS...`) and returns its outcome.
fn run_op(op: &str) -> String {
    let words: Vec<&str> = op.split_whitespace().collect();
    let addr = |i: usize| -> SocketAddr {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{op:?}: argument {i} is not a socket address"))
    };
    match words.first().copied() {
        Some("tcp-connect") => tcp_connect(addr(1)),
        Some("tcp-fastopen") => tcp_fastopen(addr(1)),
        Some("udp-send") => udp_send(addr(1)),
        Some("udp-connect") => udp_connect(addr(1)),
        Some("resolve") => resolve(words[1]),
        Some("tcp-connect-name") => by_name(words[1], words[2], tcp_connect),
        Some("udp-send-name") => by_name(words[1], words[2], udp_send),
        Some("dns-query") => dns_query_udp(addr(1), words[2]),
        Some("dns-query-tcp") => dns_query_tcp(addr(1), words[2]),
        Some("bind") => bind_tcp(addr(1)),
        Some("socket") => socket(
            words[1].parse().unwrap(),
            words[2].parse().unwrap(),
            words[3].parse().unwrap(),
        ),
        Some("listen-unbound") => listen_unbound(),
        Some("udp-send-receive") => udp_send_receive(addr(1)),
        Some("io-uring-connect") => io_uring_connect(addr(1)),
        Some("io-uring-socket") => io_uring_socket(
            words[1].parse().unwrap(),
            words[2].parse().unwrap(),
            words[3].parse().unwrap(),
        ),
        Some("abstract-connect") => abstract_connect(words[1]),
        Some("abstract-within") => abstract_within(),
        Some("unix-connect") => unix_connect(words[1]),
        Some("unix-send") => unix_send(words[1]),
        Some("syscalls") => syscalls(&words[1..]),
        Some("x32") => x32(words[1]),
        Some("fork-until-refused") => fork_until_refused(),
        Some("push-input") => push_terminal_input(words[1]),
        Some("sethostname") => sethostname(words[1]),
        Some("hostname") => hostname(),
        Some("add-key") => add_key(words[1]),
        Some("mknod-char") => mknod_char(words[1]),
        Some("tiocsti") => tiocsti(words[1].parse().unwrap()),
        Some("tiocsti-new-pty") => tiocsti_new_pty(),
        Some("tioclinux") => tioclinux(words[1].parse().unwrap()),
        Some("tiocsetd-new-pty") => tiocsetd_new_pty(words[1].parse().unwrap()),
        Some("socket-ioctl") => socket_ioctl(parse_hex(words[1])),
        Some("unshare-user") => unshare_user(),
        Some("shm-create") => shm_create(words[1].parse().unwrap()),
        Some("core-limit") => core_limit(),
        other => panic!("unknown probe operation {other:?}"),
    }
}

/// Pushes `text` and a newline into the input queue of the terminal on stdin (TIOCSTI), as if
/// typed there: on the user's terminal, the shell would read and run it after the session.
fn push_terminal_input(text: &str) -> String {
    for byte in text.bytes().chain([b'\n']) {
        if unsafe { libc::ioctl(0, libc::TIOCSTI, &raw const byte) } != 0 {
            return last_errno();
        }
    }
    "ok".into()
}

fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}

fn last_errno() -> String {
    errno_name(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// `0` → `ok`, `-1` → the errno's name.
fn outcome(ret: libc::c_long) -> String {
    if ret < 0 { last_errno() } else { "ok".into() }
}

/// A sockaddr for `addr`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data large enough for both forms.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn family(addr: SocketAddr) -> libc::c_int {
    match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    }
}

/// A new socket, or the errno's name.
fn new_socket(
    family: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> Result<i32, String> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 { Err(last_errno()) } else { Ok(fd) }
}

fn connect_fd(fd: i32, addr: SocketAddr) -> String {
    let (sa, len) = sockaddr(addr);
    // SAFETY: `sa` holds `len` valid bytes.
    outcome(libc::c_long::from(unsafe {
        libc::connect(fd, (&raw const sa).cast(), len)
    }))
}

fn send_to(fd: i32, addr: SocketAddr, flags: libc::c_int) -> String {
    let (sa, len) = sockaddr(addr);
    let data = b"probe";
    // SAFETY: valid buffer and address.
    outcome(unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            flags,
            (&raw const sa).cast(),
            len,
        )
    } as libc::c_long)
}

fn tcp_connect(addr: SocketAddr) -> String {
    match new_socket(family(addr), libc::SOCK_STREAM, 0) {
        Ok(fd) => connect_fd(fd, addr),
        Err(e) => format!("socket:{e}"),
    }
}

/// TCP Fast Open: the connect happens inside `sendto(MSG_FASTOPEN)`.
fn tcp_fastopen(addr: SocketAddr) -> String {
    match new_socket(family(addr), libc::SOCK_STREAM, 0) {
        Ok(fd) => send_to(fd, addr, libc::MSG_FASTOPEN),
        Err(e) => format!("socket:{e}"),
    }
}

/// A datagram on an unconnected UDP socket.
fn udp_send(addr: SocketAddr) -> String {
    match new_socket(family(addr), libc::SOCK_DGRAM, 0) {
        Ok(fd) => send_to(fd, addr, 0),
        Err(e) => format!("socket:{e}"),
    }
}

fn udp_connect(addr: SocketAddr) -> String {
    match new_socket(family(addr), libc::SOCK_DGRAM, 0) {
        Ok(fd) => connect_fd(fd, addr),
        Err(e) => format!("socket:{e}"),
    }
}

fn bind_tcp(addr: SocketAddr) -> String {
    match new_socket(family(addr), libc::SOCK_STREAM, 0) {
        Ok(fd) => {
            let (sa, len) = sockaddr(addr);
            // SAFETY: `sa` holds `len` valid bytes.
            outcome(libc::c_long::from(unsafe {
                libc::bind(fd, (&raw const sa).cast(), len)
            }))
        }
        Err(e) => format!("socket:{e}"),
    }
}

fn socket(family: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> String {
    match new_socket(family, kind, protocol) {
        Ok(_) => "ok".into(),
        Err(e) => e,
    }
}

fn local_port(fd: i32) -> u16 {
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` is large enough for an IPv4 address.
    let ret = unsafe { libc::getsockname(fd, (&raw mut sa).cast(), &mut len) };
    assert_eq!(ret, 0, "getsockname: {}", std::io::Error::last_os_error());
    u16::from_be(sa.sin_port)
}

/// Announces that the socket on `port` is ready, waits for the test's `wait MS` line on stdin
/// and returns whether `fd` becomes readable within MS milliseconds.
fn announce_and_await(fd: i32, port: u16) -> bool {
    println!("{PORT}{port}");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .expect("reading the test's line on stdin");
    let wait_ms: libc::c_int = line
        .trim()
        .strip_prefix("wait ")
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("expected `wait MS` on stdin, got {line:?}"));
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, wait_ms) == 1 }
}

/// `listen` on a TCP socket that was never bound: the kernel binds an ephemeral port without
/// asking the bind hook. Announces the port and reports whether a connection arrived.
fn listen_unbound() -> String {
    let fd = match new_socket(libc::AF_INET, libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    // SAFETY: plain syscall.
    if unsafe { libc::listen(fd, 8) } != 0 {
        return format!("listen:{}", last_errno());
    }
    if announce_and_await(fd, local_port(fd)) {
        "listen:ok accepted".into()
    } else {
        "listen:ok nothing".into()
    }
}

/// A datagram to `addr` from an unconnected UDP socket (which binds it implicitly, even when
/// the send is refused), then whether anything arrives on that socket.
fn udp_send_receive(addr: SocketAddr) -> String {
    let fd = match new_socket(libc::AF_INET, libc::SOCK_DGRAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    let sent = send_to(fd, addr, 0);
    let received = if announce_and_await(fd, local_port(fd)) {
        "received"
    } else {
        "nothing"
    };
    format!("send:{sent} {received}")
}

fn io_uring_connect(addr: SocketAddr) -> String {
    let mut ring = match io_uring::IoUring::new(4) {
        Ok(ring) => ring,
        Err(e) => {
            return format!(
                "io_uring_setup:{}",
                errno_name(e.raw_os_error().unwrap_or(0))
            );
        }
    };
    let fd = match new_socket(family(addr), libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    let (sa, len) = sockaddr(addr);
    let op = io_uring::opcode::Connect::new(io_uring::types::Fd(fd), (&raw const sa).cast(), len)
        .build();
    complete(&mut ring, op)
}

fn io_uring_socket(family: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> String {
    let mut ring = match io_uring::IoUring::new(4) {
        Ok(ring) => ring,
        Err(e) => {
            return format!(
                "io_uring_setup:{}",
                errno_name(e.raw_os_error().unwrap_or(0))
            );
        }
    };
    let op = io_uring::opcode::Socket::new(family, kind | libc::SOCK_CLOEXEC, protocol).build();
    complete(&mut ring, op)
}

/// Submits one operation and returns its outcome.
fn complete(ring: &mut io_uring::IoUring, op: io_uring::squeue::Entry) -> String {
    // SAFETY: the operation's buffers live on the caller's stack until completion below.
    unsafe {
        ring.submission()
            .push(&op)
            .expect("an empty submission queue");
    };
    ring.submit_and_wait(1).expect("io_uring_enter");
    let cqe = ring.completion().next().expect("a completion");
    if cqe.result() < 0 {
        errno_name(-cqe.result())
    } else {
        "ok".into()
    }
}

/// A `sockaddr_un` for the abstract name `@name`.
fn abstract_address(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in name.bytes().enumerate() {
        sun.sun_path[i + 1] = b as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + 1 + name.len();
    (sun, len as libc::socklen_t)
}

/// Connects a stream socket to the abstract socket `@name`.
fn abstract_connect(name: &str) -> String {
    stream_connect(abstract_address(name))
}

/// Connects a new UNIX stream socket to `address`.
fn stream_connect((sun, len): (libc::sockaddr_un, libc::socklen_t)) -> String {
    let fd = match new_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    // SAFETY: `sun` holds `len` valid bytes.
    outcome(libc::c_long::from(unsafe {
        libc::connect(fd, (&raw const sun).cast(), len)
    }))
}

/// Listens on an abstract socket and connects to it from the same process.
fn abstract_within() -> String {
    let name = format!("sandtrace-probe-{}", std::process::id());
    let fd = match new_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    let (sun, len) = abstract_address(&name);
    // SAFETY: `sun` holds `len` valid bytes.
    if unsafe { libc::bind(fd, (&raw const sun).cast(), len) } != 0
        || unsafe { libc::listen(fd, 1) } != 0
    {
        return format!("listen:{}", last_errno());
    }
    abstract_connect(&name)
}

/// A `sockaddr_un` for the socket file `path`.
fn pathname_address(path: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: sockaddr_un is plain data.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (i, b) in path.bytes().enumerate() {
        sun.sun_path[i] = b as libc::c_char;
    }
    let len = size_of::<libc::sa_family_t>() + path.len() + 1;
    (sun, len as libc::socklen_t)
}

/// Connects a stream socket to the socket file `path`.
fn unix_connect(path: &str) -> String {
    stream_connect(pathname_address(path))
}

/// Sends a datagram to the socket file `path` from an unconnected socket.
fn unix_send(path: &str) -> String {
    let fd = match new_socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    let (sun, len) = pathname_address(path);
    let data = b"probe";
    // SAFETY: valid buffer and address.
    outcome(unsafe {
        libc::sendto(
            fd,
            data.as_ptr().cast(),
            data.len(),
            0,
            (&raw const sun).cast(),
            len,
        )
    } as libc::c_long)
}
/// Calls each named syscall with harmless arguments (ones that fail or do nothing when the
/// call is allowed) and reports `name=outcome` for each.
const ZERO_TIME: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;

/// Closes `fd` if the call that returned it succeeded; returns the call's result.
unsafe fn close_fd(fd: libc::c_long) -> libc::c_long {
    if fd >= 0 {
        unsafe { libc::close(fd as i32) };
    }
    fd
}

/// perf_event_open of a system-wide CPU clock counter on CPU 0.
unsafe fn perf_cpu_clock(nr: libc::c_long) -> libc::c_long {
    // struct perf_event_attr's first fields: type, size, config (PERF_VERSION 0 layout).
    let mut attr = [0u64; 16];
    attr[0] = 1 | (64u64 << 32); // PERF_TYPE_SOFTWARE, size 64
    attr[1] = 0; // PERF_COUNT_SW_CPU_CLOCK
    attr[5] = 1; // disabled
    unsafe { libc::syscall(nr, attr.as_ptr(), -1, 0, -1, PERF_FLAG_FD_CLOEXEC) }
}

fn syscalls(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            let nr = libc::c_long::from(
                sandtrace::syscall_table::number(name)
                    .unwrap_or_else(|| panic!("{name} is not a syscall")),
            );
            let path = CString::new("/nonexistent-sandtrace-probe").unwrap();
            let p = path.as_ptr() as libc::c_long;
            // SAFETY: every argument list is harmless for its syscall (see each comment).
            let ret = unsafe {
                match *name {
                    // Bad magic numbers: EINVAL before anything happens.
                    "reboot" => libc::syscall(nr, 0, 0, 0, 0),
                    // An invalid architecture in the flags: EINVAL.
                    "kexec_load" => libc::syscall(nr, 0, 0, 0, libc::c_long::from(0xdead_0000_u32)),
                    // Invalid descriptors and flags: EBADF/EINVAL.
                    "kexec_file_load" => libc::syscall(nr, -1, -1, 0, 0, 0x100),
                    "finit_module" => libc::syscall(nr, -1, 0, 0),
                    // A path that does not exist: ENOENT.
                    "swapon" | "swapoff" | "acct" | "chdir" | "chroot" => libc::syscall(nr, p, 0),
                    "pivot_root" | "umount2" | "mount" => libc::syscall(nr, p, p, 0, 0, 0),
                    // NULL image / name: EFAULT.
                    "init_module" | "delete_module" => libc::syscall(nr, 0, 0, 0),
                    // NULL buffers: EFAULT.
                    "uname" | "getcwd" | "sysinfo" => libc::syscall(nr, 0, 0),
                    // Calls without effect.
                    "getpid" | "getppid" | "sched_yield" => libc::syscall(nr),
                    // A size of 0: EINVAL where clone3 runs (sessions refuse it: ENOSYS).
                    "clone3" => libc::syscall(nr, 0, 0),
                    // PTRACE_PEEKDATA of pid 0: ESRCH.
                    "ptrace" => libc::syscall(nr, libc::PTRACE_PEEKDATA, 0, 0, 0),
                    // A system-wide software counter on CPU 0, closed at once.
                    "perf_event_open" => close_fd(perf_cpu_clock(nr)),
                    // Reads the kernel log into a buffer (SYSLOG_ACTION_READ_ALL).
                    "syslog" => libc::syscall(nr, 3, [0u8; 4096].as_mut_ptr(), 4096),
                    // Access to port 0x80 for this process, given up again.
                    "ioperm" => libc::syscall(nr, 0x80, 1, 1) | libc::syscall(nr, 0x80, 1, 0),
                    // UFFD_USER_MODE_ONLY | O_CLOEXEC, closed at once.
                    "userfaultfd" => close_fd(libc::syscall(nr, 1 | libc::O_CLOEXEC)),
                    // READ_IMPLIES_EXEC for this process, then back to Linux.
                    "personality" => libc::syscall(nr, 0x40_0000) | libc::syscall(nr, 0),
                    // Both NULL: sets nothing.
                    "settimeofday" => libc::syscall(nr, 0, 0),
                    // CLOCK_MONOTONIC cannot be set: EINVAL.
                    "clock_settime" => {
                        let zero = ZERO_TIME;
                        libc::syscall(nr, libc::CLOCK_MONOTONIC, &raw const zero)
                    }
                    // An invalid descriptor: EBADF.
                    "setns" => libc::syscall(nr, -1, 0),
                    // An invalid command: EINVAL.
                    "keyctl" => libc::syscall(nr, 0x7fff_ffff, 0, 0, 0, 0),
                    // Setting RLIMIT_CORE to what it is.
                    "setrlimit" => {
                        let mut limit: libc::rlimit = std::mem::zeroed();
                        libc::getrlimit(libc::RLIMIT_CORE, &raw mut limit);
                        libc::syscall(nr, libc::RLIMIT_CORE, &raw const limit)
                    }
                    other => panic!("no harmless arguments known for {other}"),
                }
            };
            format!("{name}={}", outcome(ret))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Calls `name` through the x32 ABI (number | 0x40000000). The seccomp filter kills the
/// process; without it the call goes through.
fn x32(name: &str) -> String {
    let nr = libc::c_long::from(sandtrace::syscall_table::number(name).unwrap());
    let mut buf = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: the x32 uname/getpid take at most a utsname buffer.
    let ret = unsafe { libc::syscall(nr | 0x4000_0000, buf.as_mut_ptr()) };
    outcome(ret)
}

/// Forks children that wait until the limit refuses a fork; reports how many were forked, how
/// many threads this process has (they count against the limit too) and the refusal's errno.
fn fork_until_refused() -> String {
    let threads: usize = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: in /proc/self/status");
    let mut hold = [0; 2];
    // SAFETY: plain syscalls; the children only block on the pipe and _exit.
    unsafe {
        assert_eq!(libc::pipe2(hold.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let mut forked = 0;
        let errno = loop {
            match libc::fork() {
                -1 => break last_errno(),
                0 => {
                    libc::close(hold[1]);
                    let mut b = 0u8;
                    libc::read(hold[0], (&raw mut b).cast(), 1);
                    libc::_exit(0);
                }
                _ => forked += 1,
            }
            if forked > 1000 {
                break "no limit".into();
            }
        };
        libc::close(hold[1]);
        while libc::wait(std::ptr::null_mut()) > 0 {}
        format!("forked={forked} threads={threads} refused={errno}")
    }
}

// ---- the seccomp baseline ----

fn sethostname(name: &str) -> String {
    outcome(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }.into())
}

/// The UTS namespace's host name.
fn hostname() -> String {
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return last_errno();
    }
    let name = unsafe { std::ffi::CStr::from_ptr(uts.nodename.as_ptr()) };
    name.to_string_lossy().into_owned()
}

/// Adds a `user` key named `description` to the user keyring; prints its serial.
fn add_key(description: &str) -> String {
    const KEY_SPEC_USER_KEYRING: libc::c_long = -4;
    let kind = CString::new("user").unwrap();
    let desc = CString::new(description).unwrap();
    let payload = b"sandtrace";
    let serial = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_USER_KEYRING,
        )
    };
    if serial < 0 {
        last_errno()
    } else {
        format!("key:{serial}")
    }
}

/// A character device 1:3 (what /dev/null is) at `path`.
fn mknod_char(path: &str) -> String {
    let path = CString::new(path).unwrap();
    let dev = libc::makedev(1, 3);
    outcome(unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, dev) }.into())
}

/// Pushes one newline into the input queue of the terminal open as `fd`.
fn tiocsti(fd: i32) -> String {
    let byte = b'\n';
    outcome(unsafe { libc::ioctl(fd, libc::TIOCSTI, &raw const byte) }.into())
}

/// The slave of a new pseudo-terminal the probe opens itself.
fn new_pty() -> Result<i32, String> {
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
    if master < 0 || unsafe { libc::grantpt(master) } != 0 || unsafe { libc::unlockpt(master) } != 0
    {
        return Err(format!("openpt:{}", last_errno()));
    }
    let name = unsafe { libc::ptsname(master) };
    let slave = unsafe { libc::open(name, libc::O_RDWR | libc::O_NOCTTY) };
    if slave < 0 {
        return Err(format!("open-slave:{}", last_errno()));
    }
    Ok(slave)
}

/// TIOCSTI on a pseudo-terminal the probe opens itself.
fn tiocsti_new_pty() -> String {
    new_pty().map_or_else(|e| e, tiocsti)
}

/// TIOCSETD (line discipline `discipline`) on a pseudo-terminal the probe opens itself.
fn tiocsetd_new_pty(discipline: libc::c_int) -> String {
    match new_pty() {
        Ok(slave) => {
            outcome(unsafe { libc::ioctl(slave, libc::TIOCSETD, &raw const discipline) }.into())
        }
        Err(e) => e,
    }
}

/// The socket ioctl `request` (with a zeroed buffer) on a UNIX datagram socket.
fn socket_ioctl(request: u32) -> String {
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return format!("socket:{}", last_errno());
    }
    let mut buf = [0u8; 64];
    outcome(unsafe { libc::ioctl(fd, request.into(), buf.as_mut_ptr()) }.into())
}

fn parse_hex(word: &str) -> u32 {
    u32::from_str_radix(word.trim_start_matches("0x"), 16).unwrap()
}

/// TIOCLINUX on `fd`: on anything but a virtual console the kernel answers ENOTTY, which
/// shows the call reaches it.
fn tioclinux(fd: i32) -> String {
    // TIOCL_GETSHIFTSTATE: reads only.
    let mut subcode = [6u8, 0];
    outcome(unsafe { libc::ioctl(fd, libc::TIOCLINUX, subcode.as_mut_ptr()) }.into())
}

/// unshare(CLONE_NEWUSER) in a child, so that the probe's own later operations are not in
/// the new namespace.
fn unshare_user() -> String {
    match unsafe { libc::fork() } {
        -1 => last_errno(),
        0 => {
            let ret = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            unsafe { libc::_exit(if ret == 0 { 0 } else { errno }) }
        }
        child => {
            let mut status = 0;
            unsafe { libc::waitpid(child, &raw mut status, 0) };
            match libc::WEXITSTATUS(status) {
                0 => "ok".into(),
                errno => errno_name(errno),
            }
        }
    }
}

/// A SysV shared memory segment with `key`.
fn shm_create(key: i32) -> String {
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    if id < 0 { last_errno() } else { "ok".into() }
}

/// RLIMIT_CORE as `soft:hard`.
fn core_limit() -> String {
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_CORE, &raw mut limit) } != 0 {
        return last_errno();
    }
    format!("{}:{}", limit.rlim_cur, limit.rlim_max)
}

// ---- names and DNS ----

/// How long a DNS query waits for its reply: the session's resolver answers at once, so this is
/// spent only when a test fails (and must outlast a slow emulated VM).
const DNS_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The addresses getaddrinfo gives for `name` (sorted, without repeats).
fn lookup(name: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let node = CString::new(name).unwrap();
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = libc::AF_UNSPEC;
    // One entry per address rather than one per socket type.
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    let ret = unsafe {
        libc::getaddrinfo(
            node.as_ptr(),
            std::ptr::null(),
            &raw const hints,
            &raw mut list,
        )
    };
    if ret != 0 {
        return Err(gai_error_name(ret));
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        let info = unsafe { &*entry };
        let address = match info.ai_family {
            libc::AF_INET => {
                let sin = unsafe { &*info.ai_addr.cast::<libc::sockaddr_in>() };
                std::net::IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
            }
            libc::AF_INET6 => {
                let sin6 = unsafe { &*info.ai_addr.cast::<libc::sockaddr_in6>() };
                std::net::IpAddr::from(sin6.sin6_addr.s6_addr)
            }
            _ => {
                entry = info.ai_next;
                continue;
            }
        };
        addresses.push(address);
        entry = info.ai_next;
    }
    unsafe { libc::freeaddrinfo(list) };
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

fn gai_error_name(code: libc::c_int) -> String {
    match code {
        libc::EAI_NONAME => "EAI_NONAME".into(),
        libc::EAI_AGAIN => "EAI_AGAIN".into(),
        libc::EAI_FAIL => "EAI_FAIL".into(),
        libc::EAI_NODATA => "EAI_NODATA".into(),
        libc::EAI_SYSTEM => format!("EAI_SYSTEM:{}", last_errno()),
        other => format!("EAI({other})"),
    }
}

fn joined(addresses: &[std::net::IpAddr]) -> String {
    addresses
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `resolve NAME`: the addresses (comma-separated) or getaddrinfo's error.
fn resolve(name: &str) -> String {
    lookup(name).map_or_else(|e| e, |addresses| joined(&addresses))
}

/// Looks `name` up and runs `op` on its first address and `port`.
fn by_name(name: &str, port: &str, op: fn(SocketAddr) -> String) -> String {
    let port: u16 = port.parse().expect("a port number");
    match lookup(name) {
        Ok(addresses) if !addresses.is_empty() => op(SocketAddr::new(addresses[0], port)),
        Ok(_) => "resolve:no-address".into(),
        Err(e) => format!("resolve:{e}"),
    }
}

/// An encoded query for `name`'s A records and its id.
fn dns_query(name: &str) -> (Vec<u8>, u16) {
    use hickory_proto::{
        op::{Message, Query},
        rr::{Name, RecordType},
    };
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    let name = Name::from_ascii(name).unwrap_or_else(|e| panic!("{name:?} is not a name: {e}"));
    query.add_query(Query::query(name, RecordType::A));
    (query.to_vec().expect("encoding a query"), query.metadata.id)
}

/// `RCODE ADDRESS,...` for the reply `packet` to the query with `id`; ` from=ADDR:PORT` is added
/// when the reply came from another address than the query went to (`from` vs `to`).
fn describe_reply(packet: &[u8], id: u16, from: SocketAddr, to: SocketAddr) -> String {
    use hickory_proto::{op::Message, rr::RData};
    let reply = match Message::from_vec(packet) {
        Ok(reply) => reply,
        Err(e) => return format!("malformed-reply:{e}"),
    };
    if reply.metadata.id != id {
        return "reply-with-another-id".into();
    }
    let addresses: Vec<std::net::IpAddr> = reply
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0.into()),
            RData::AAAA(aaaa) => Some(aaaa.0.into()),
            _ => None,
        })
        .collect();
    let code = u16::from(reply.metadata.response_code);
    let mut text = match code {
        0 => "NOERROR".to_owned(),
        2 => "SERVFAIL".to_owned(),
        3 => "NXDOMAIN".to_owned(),
        5 => "REFUSED".to_owned(),
        other => format!("RCODE{other}"),
    };
    if !addresses.is_empty() {
        text = format!("{text} {}", joined(&addresses));
    }
    if from != to {
        text = format!("{text} from={from}");
    }
    text
}

fn io_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timeout".into(),
        _ => errno_name(e.raw_os_error().unwrap_or(0)),
    }
}

/// `dns-query ADDR:PORT NAME` over UDP, from an unbound, unconnected socket (sendto and
/// recvfrom, as a resolver library may do).
fn dns_query_udp(server: SocketAddr, name: &str) -> String {
    let fd = match new_socket(family(server), libc::SOCK_DGRAM, 0) {
        Ok(fd) => fd,
        Err(e) => return format!("socket:{e}"),
    };
    let timeout = libc::timeval {
        tv_sec: DNS_REPLY_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    let ret = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    assert_eq!(ret, 0, "SO_RCVTIMEO: {}", last_errno());
    let (query, id) = dns_query(name);
    let (to, to_len) = sockaddr(server);
    let sent = unsafe {
        libc::sendto(
            fd,
            query.as_ptr().cast(),
            query.len(),
            0,
            (&raw const to).cast(),
            to_len,
        )
    };
    if sent < 0 {
        return format!("send:{}", last_errno());
    }
    let mut buf = [0u8; 4096];
    let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut from_len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let len = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&raw mut from).cast(),
            &raw mut from_len,
        )
    };
    if len < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return if errno == libc::EAGAIN {
            "receive:timeout".into()
        } else {
            format!("receive:{}", errno_name(errno))
        };
    }
    describe_reply(&buf[..len as usize], id, socket_address(&from), server)
}

/// The address in a sockaddr the kernel filled in.
fn socket_address(storage: &libc::sockaddr_storage) -> SocketAddr {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            let sin = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in>() };
            SocketAddr::new(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes().into(),
                u16::from_be(sin.sin_port),
            )
        }
        libc::AF_INET6 => {
            let sin6 = unsafe { &*(&raw const *storage).cast::<libc::sockaddr_in6>() };
            SocketAddr::new(sin6.sin6_addr.s6_addr.into(), u16::from_be(sin6.sin6_port))
        }
        other => panic!("a reply from address family {other}"),
    }
}

/// `dns-query-tcp ADDR:PORT NAME`: the query over a TCP connection (2-byte length first); the
/// reply's source is the connection's peer (getpeername).
fn dns_query_tcp(server: SocketAddr, name: &str) -> String {
    use std::io::Read as _;
    let mut stream = match std::net::TcpStream::connect(server) {
        Ok(stream) => stream,
        Err(e) => return format!("connect:{}", io_errno(&e)),
    };
    stream.set_read_timeout(Some(DNS_REPLY_TIMEOUT)).unwrap();
    let (query, id) = dns_query(name);
    let len = u16::try_from(query.len()).unwrap().to_be_bytes();
    if let Err(e) = stream
        .write_all(&len)
        .and_then(|()| stream.write_all(&query))
    {
        return format!("send:{}", io_errno(&e));
    }
    let mut len = [0u8; 2];
    if let Err(e) = stream.read_exact(&mut len) {
        return format!("receive:{}", io_errno(&e));
    }
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if let Err(e) = stream.read_exact(&mut reply) {
        return format!("receive:{}", io_errno(&e));
    }
    let peer = stream.peer_addr().expect("getpeername");
    describe_reply(&reply, id, peer, server)
}
