//! The test side of the probe (`tests/helpers/probe.rs`, built as the `sandtrace-test-probe`
//! binary), which the tests run as CMD inside a session or outside for comparison. Operations
//! are its arguments; it prints `PROBE-RESULT: ...` (and, for probes that wait for something
//! from outside, `PROBE-PORT: N` first, once their socket is ready) on stdout.
#![allow(dead_code)] // each test crate uses a different subset

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener, UdpSocket},
    process::{Child, ChildStdin, Command, Output, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use crate::common::{Scratch, describe, read_jsonl, sandtrace, wait_until, write_policy};

/// The probe binary.
pub const PROBE: &str = env!("CARGO_BIN_EXE_sandtrace-test-probe");
const RESULT: &str = "PROBE-RESULT: ";
const PORT: &str = "PROBE-PORT: ";

/// How long a test waits for something that must happen (a probe getting ready, a connection
/// that must get through): long enough for a session starting on a loaded machine or in an
/// emulated VM, and spent only when the test is failing anyway.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// How long a probe watches for something that must not arrive, after the test has sent it.
/// A refused connection or datagram is dropped when it is sent, so a longer window would only
/// catch a broken refusal that is also slow.
const QUIET_WINDOW_MS: u32 = 1000;

/// The probe and its arguments running the operations `ops` (separated by `;`), for use as
/// CMD.
pub fn command_line(ops: &str) -> Vec<String> {
    let mut argv = vec![PROBE.to_owned()];
    argv.extend(ops.split(';').map(|op| op.trim().to_owned()));
    argv
}

/// Runs `ops` (operations separated by `;`) outside any session and returns the results, one
/// per operation.
pub fn outside(ops: &str) -> Vec<String> {
    outside_with(ops, |_| {})
}

/// [`outside`], with `prepare` applied to the probe's command first (to start it in a test's
/// own network, say).
pub fn outside_with(ops: &str, prepare: impl FnOnce(&mut Command)) -> Vec<String> {
    let mut cmd = Command::new(PROBE);
    cmd.args(&command_line(ops)[1..]).stdin(Stdio::null());
    prepare(&mut cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running the probe {ops:?}: {e}"));
    results_of(&out).unwrap_or_else(|| panic!("the probe {ops:?} reported nothing: {out:?}"))
}

/// The results of a finished run, one per operation, if it reported any.
pub fn results_of(out: &Output) -> Option<Vec<String>> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(RESULT))
        .map(split_results)
}

fn split_results(line: &str) -> Vec<String> {
    line.split("; ").map(str::to_owned).collect()
}

/// What a test expects to arrive at a waiting probe's socket once it has done its part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The probe waits for it up to [`DEADLINE`].
    Something,
    /// The probe watches for it for a short window.
    Nothing,
}

/// A running probe: reads the port it announces, tells it when to look, reads its result.
pub struct RunningProbe {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl RunningProbe {
    /// Takes over `child`'s piped stdin and stdout.
    pub fn new(mut child: Child) -> Self {
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            stdin,
            lines,
        }
    }

    /// Waits (up to [`DEADLINE`]) for `PROBE-PORT: N`, printed once the probe's socket is
    /// ready.
    pub fn port(&mut self) -> u16 {
        loop {
            let line = match self.lines.recv_timeout(DEADLINE) {
                Ok(line) => line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the probe announced no port within {DEADLINE:?}")
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the probe exited without announcing a port")
                }
            };
            if let Some(port) = line.strip_prefix(PORT) {
                return port.trim().parse().expect("a port number");
            }
            if let Some(result) = line.strip_prefix(RESULT) {
                panic!("the probe finished without announcing a port: {result}");
            }
        }
    }

    /// Tells the waiting probe that the test has done its part and what to expect.
    pub fn look(&mut self, expect: Expect) {
        let wait_ms = match expect {
            Expect::Something => DEADLINE.as_millis() as u32,
            Expect::Nothing => QUIET_WINDOW_MS,
        };
        let mut stdin = self.stdin.take().expect("the probe's stdin is piped");
        writeln!(stdin, "wait {wait_ms}").expect("writing to the probe's stdin");
    }

    /// Waits for the result line and the process.
    pub fn result(mut self) -> Vec<String> {
        let mut result = None;
        loop {
            // The probe's own waits are bounded: it ends within DEADLINE of `look`.
            match self.lines.recv_timeout(2 * DEADLINE) {
                Ok(line) => {
                    if let Some(r) = line.strip_prefix(RESULT) {
                        result = Some(r.to_owned());
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("the probe did not finish within {:?}", 2 * DEADLINE)
                }
            }
        }
        let status = self.child.wait().expect("waiting for the probe");
        let line = result.unwrap_or_else(|| panic!("the probe reported no result ({status})"));
        split_results(&line)
    }
}

/// A finished session that ran the probe.
pub struct Session {
    /// One per operation.
    pub results: Vec<String>,
    pub events: Vec<serde_json::Value>,
    pub stderr: String,
}

/// Runs the probe operations `ops` in a session under `policy` (TOML text), with `flags`
/// before `--`; the session must succeed and the probe report.
pub fn in_session(name: &str, policy: &str, ops: &[String], flags: &[&str]) -> Session {
    in_session_with(name, policy, ops, flags, |_| {})
}

/// [`in_session`], with `prepare` applied to sandtrace's command first (to start the session
/// in a test's own network, say).
pub fn in_session_with(
    name: &str,
    policy: &str,
    ops: &[String],
    flags: &[&str],
    prepare: impl FnOnce(&mut Command),
) -> Session {
    let scratch = Scratch::new(name);
    let policy_file = scratch.path("policy.toml");
    write_policy(&policy_file, policy);
    let log = scratch.path("events.jsonl");
    let mut args = vec![
        "run",
        "--policy",
        policy_file.to_str().unwrap(),
        "-o",
        log.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    args.push("--");
    args.push(PROBE);
    args.extend(ops.iter().map(String::as_str));
    let mut cmd = sandtrace();
    cmd.args(&args).stdin(Stdio::null());
    prepare(&mut cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running sandtrace {args:?}: {e}"));
    let results = results_of(&out)
        .unwrap_or_else(|| panic!("the probe reported nothing:\n{}", describe(&out)));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(results.len(), ops.len(), "{results:?}");
    Session {
        results,
        events: read_jsonl(&log),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `op` (which announces a port) in a session under `policy` with `flags`, lets `poke`
/// talk to that port from outside once the probe's socket is ready, then lets the probe look
/// for what arrived, expecting `expect`; returns the probe's result and the session's events.
pub fn with_announced_port(
    name: &str,
    policy: &str,
    op: &str,
    flags: &[&str],
    expect: Expect,
    poke: impl FnOnce(u16),
) -> (String, Vec<serde_json::Value>) {
    let scratch = Scratch::new(name);
    let policy_file = scratch.path("policy.toml");
    write_policy(&policy_file, policy);
    let log = scratch.path("events.jsonl");
    let mut cmd = sandtrace();
    cmd.args([
        "run",
        "--policy",
        policy_file.to_str().unwrap(),
        "-o",
        log.to_str().unwrap(),
    ])
    .args(flags)
    .arg("--")
    .args(command_line(op))
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut running = RunningProbe::new(cmd.spawn().expect("starting sandtrace"));
    let port = running.port();
    poke(port);
    running.look(expect);
    let result = running.result().remove(0);
    (result, read_jsonl(&log))
}

/// A loopback TCP server that accepts and counts connections, and a UDP socket that counts
/// datagrams (and echoes them), by default on ephemeral ports of 127.0.0.1.
pub struct Servers {
    pub tcp: SocketAddr,
    pub udp: SocketAddr,
    tcp_accepted: Arc<AtomicUsize>,
    udp_received: Arc<Mutex<Vec<SocketAddr>>>,
}

impl Servers {
    pub fn start() -> Self {
        Self::bind("127.0.0.1:0", "127.0.0.1:0")
    }

    /// The servers on the given addresses (`ADDRESS:PORT`).
    pub fn bind(tcp: &str, udp: &str) -> Self {
        let tcp =
            TcpListener::bind(tcp).unwrap_or_else(|e| panic!("binding a TCP server to {tcp}: {e}"));
        let udp =
            UdpSocket::bind(udp).unwrap_or_else(|e| panic!("binding a UDP socket to {udp}: {e}"));
        let tcp_addr = tcp.local_addr().unwrap();
        let udp_addr = udp.local_addr().unwrap();
        let tcp_accepted = Arc::new(AtomicUsize::new(0));
        let udp_received = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::clone(&tcp_accepted);
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                accepted.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        let received = Arc::clone(&udp_received);
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = udp.recv_from(&mut buf) {
                received.lock().unwrap().push(from);
                // Echo, so that probes can test replies.
                let _ = udp.send_to(b"reply", from);
            }
        });
        Self {
            tcp: tcp_addr,
            udp: udp_addr,
            tcp_accepted,
            udp_received,
        }
    }

    /// The connections accepted so far, once there are at least `expected` (waiting up to
    /// [`DEADLINE`]: accepting runs on another thread). Call it after the connecting session
    /// has ended; a refused connect never leaves the session, so nothing is in flight then.
    pub fn tcp_accepted(&self, expected: usize) -> usize {
        wait_until(DEADLINE, || {
            self.tcp_accepted.load(Ordering::SeqCst) >= expected
        });
        self.tcp_accepted.load(Ordering::SeqCst)
    }

    /// The datagrams received so far, once there are at least `expected` (as
    /// [`Self::tcp_accepted`]).
    pub fn udp_received(&self, expected: usize) -> usize {
        wait_until(DEADLINE, || {
            self.udp_received.lock().unwrap().len() >= expected
        });
        self.udp_received.lock().unwrap().len()
    }
}

/// Brings the loopback interface up (the test VM's init leaves it down). Idempotent.
pub fn loopback_up() {
    // SAFETY: plain ioctls on a socket with a zeroed, named ifreq.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(
            libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req),
            0,
            "SIOCGIFFLAGS lo: {}",
            std::io::Error::last_os_error()
        );
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req),
            0,
            "SIOCSIFFLAGS lo up: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// Listens on the abstract socket `@name` (outside any session) until the returned listener
/// is dropped.
pub fn abstract_listener(name: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt as _;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    std::os::unix::net::UnixListener::bind_addr(&addr)
        .unwrap_or_else(|e| panic!("listening on @{name}: {e}"))
}
