//! The seccomp baseline and the session's own namespaces on this host's kernel (no BPF LSM
//! needed), in trace-only and degraded sessions alike: each attempt reaches the kernel
//! outside sandtrace (run first, where that is harmless) and fails inside, checked from
//! outside the session. CMD runs as root here, so the kernel's own permission checks would
//! let every one of these through.

// The test makes raw syscalls of its own (ptys, keyrings, SysV IPC) to check from outside
// what the session did; each passes pointers to live local buffers.
#![allow(clippy::undocumented_unsafe_blocks)]

mod common;
mod probe;

use std::{
    ffi::{CStr, CString},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    process::Stdio,
};

use common::*;
use probe::{PROBE, Session, outside, results_of};
use serde_json::Value;

/// Both modes that run on this host; the baseline is the same in each.
const MODES: [&str; 2] = ["--trace-only", "--allow-degraded"];
const POLICY: &str = "[network]\nallow = true\n";

fn in_session(name: &str, mode: &str, ops: &[&str]) -> Session {
    let ops: Vec<String> = ops.iter().map(|op| (*op).to_owned()).collect();
    probe::in_session(name, POLICY, &ops, &[mode])
}

/// The syscall events the filter refused.
fn denied_syscalls(events: &[Value]) -> Vec<&str> {
    of_type(events, "syscall")
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .map(|e| e["syscall"].as_str().unwrap())
        .collect()
}

#[test]
fn calls_outside_the_session_reach_the_kernel_and_are_refused_inside() {
    // Each with harmless arguments (see the probe): the clock is "set" with nothing or a clock
    // that cannot be set, port access is given up again, counters and descriptors closed.
    let names = [
        "perf_event_open",
        "syslog",
        "ioperm",
        "userfaultfd",
        "personality",
        "settimeofday",
        "clock_settime",
        "setns",
        "keyctl",
        "setrlimit",
    ];
    let op = format!("syscalls {}", names.join(" "));
    let results = outside(&op).remove(0);
    for (name, got) in names.iter().zip(results.split(' ')) {
        assert!(
            got.starts_with(&format!("{name}=")) && !got.ends_with("=EPERM"),
            "outside the session {name} reaches the kernel: {results}"
        );
    }
    for mode in MODES {
        let s = in_session("baseline-calls", mode, &[&op, "unshare-user", "core-limit"]);
        let want: Vec<String> = names.iter().map(|n| format!("{n}=EPERM")).collect();
        assert_eq!(s.results[0], want.join(" "), "{mode}");
        assert_eq!(s.results[1], "EPERM", "{mode}: unshare(CLONE_NEWUSER)");
        assert_eq!(s.results[2], "1:1", "{mode}: RLIMIT_CORE");
        let denied = denied_syscalls(&s.events);
        for name in names.iter().chain(&["unshare"]) {
            assert!(denied.contains(name), "{mode}: {name} reported: {denied:?}");
        }
        let summary = summary(&s.events);
        // The calls above and unshare, at least.
        let counted = summary["denials"]["syscalls"].as_u64().unwrap();
        assert!(counted > names.len() as u64, "{mode}: {summary}");
    }
    assert_eq!(
        outside("unshare-user"),
        ["ok"],
        "outside: a new user namespace"
    );
}

#[test]
fn a_hostname_set_inside_stays_inside() {
    // Not tried outside: CMD is root, the call would rename this host. That it succeeds inside
    // shows it reaches the kernel; the session's own UTS namespace keeps it there. Root with
    // its capabilities (--as-root): without CAP_SYS_ADMIN the call fails before that.
    let host = || std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let before = host();
    for mode in MODES {
        let ops = [
            "sethostname sandtrace-inside".to_owned(),
            "hostname".to_owned(),
        ];
        let s = probe::in_session("baseline-hostname", POLICY, &ops, &[mode, "--as-root"]);
        assert_eq!(s.results, ["ok", "sandtrace-inside"], "{mode}");
        assert_eq!(host(), before, "{mode}: the host's name is unchanged");
    }
}

const KEY_SPEC_USER_KEYRING: libc::c_long = -4;

/// The serial of the `user` key `description` in the user keyring, if there is one.
fn user_key(description: &str) -> Option<libc::c_long> {
    const KEYCTL_SEARCH: libc::c_long = 10;
    let kind = CString::new("user").unwrap();
    let desc = CString::new(description).unwrap();
    let serial = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SEARCH,
            KEY_SPEC_USER_KEYRING,
            kind.as_ptr(),
            desc.as_ptr(),
            0,
        )
    };
    (serial >= 0).then_some(serial)
}

#[test]
fn no_key_is_added_to_the_user_keyring() {
    const KEYCTL_INVALIDATE: libc::c_long = 21;
    let description = format!("sandtrace-test-{}", std::process::id());
    let added = outside(&format!("add-key {description}")).remove(0);
    assert!(added.starts_with("key:"), "outside: {added}");
    let serial = user_key(&description).expect("the key outside is in the user keyring");
    assert_eq!(
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, serial) },
        0,
        "removing the test's key: {}",
        std::io::Error::last_os_error()
    );
    for mode in MODES {
        let description = format!("{description}-{}", &mode[2..]);
        let s = in_session("baseline-keys", mode, &[&format!("add-key {description}")]);
        assert_eq!(s.results, ["EPERM"], "{mode}");
        assert_eq!(user_key(&description), None, "{mode}: no key appeared");
    }
}

#[test]
fn no_device_node_is_created() {
    let scratch = Scratch::new("baseline-mknod");
    let outside_node = scratch.path("outside-null");
    let made = outside(&format!("mknod-char {}", outside_node.display()));
    assert_eq!(made, ["ok"], "outside: mknod of 1:3");
    {
        use std::os::unix::fs::FileTypeExt as _;
        assert!(
            std::fs::symlink_metadata(&outside_node)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
    std::fs::remove_file(&outside_node).unwrap();
    for mode in MODES {
        let node = scratch.path(&format!("inside-null{mode}"));
        let s = in_session(
            "baseline-mknod",
            mode,
            &[&format!("mknod-char {}", node.display())],
        );
        assert_eq!(s.results, ["EPERM"], "{mode}");
        assert!(
            std::fs::symlink_metadata(&node).is_err(),
            "{mode}: {} exists",
            node.display()
        );
    }
}

/// A pseudo-terminal the test owns, its slave in raw mode (so that one pushed byte is one
/// readable byte).
struct Pty {
    _master: OwnedFd,
    slave: OwnedFd,
}

impl Pty {
    fn open() -> Self {
        let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY) };
        assert!(
            master >= 0,
            "posix_openpt: {}",
            std::io::Error::last_os_error()
        );
        let master = unsafe { OwnedFd::from_raw_fd(master) };
        assert_eq!(unsafe { libc::grantpt(master.as_raw_fd()) }, 0);
        assert_eq!(unsafe { libc::unlockpt(master.as_raw_fd()) }, 0);
        let name = unsafe { CStr::from_ptr(libc::ptsname(master.as_raw_fd())) }.to_owned();
        let slave = unsafe { libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        assert!(
            slave >= 0,
            "opening {name:?}: {}",
            std::io::Error::last_os_error()
        );
        let slave = unsafe { OwnedFd::from_raw_fd(slave) };
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        assert_eq!(
            unsafe { libc::tcgetattr(slave.as_raw_fd(), &raw mut termios) },
            0
        );
        unsafe { libc::cfmakeraw(&raw mut termios) };
        assert_eq!(
            unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &raw const termios) },
            0
        );
        Self {
            _master: master,
            slave,
        }
    }

    /// Bytes waiting in the terminal's input queue, as the user's shell would read them.
    fn queued_input(&self) -> i32 {
        let mut n: libc::c_int = 0;
        assert_eq!(
            unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &raw mut n) },
            0
        );
        n
    }

    fn stdin(&self) -> Stdio {
        Stdio::from(self.slave.try_clone().unwrap())
    }
}

/// TIOCSTI on the terminal given as stdin and on a new pseudo-terminal, TIOCLINUX.
const TERMINAL_OPS: [&str; 3] = ["tiocsti 0", "tiocsti-new-pty", "tioclinux 0"];

#[test]
fn nothing_is_typed_into_the_terminal() {
    let pty = Pty::open();
    let out = std::process::Command::new(PROBE)
        .args(TERMINAL_OPS)
        .stdin(pty.stdin())
        .output()
        .unwrap();
    // TIOCLINUX reaches the kernel, which serves it on virtual consoles only.
    assert_eq!(
        results_of(&out).unwrap(),
        ["ok", "ok", "ENOTTY"],
        "outside: {}",
        describe(&out)
    );
    assert_eq!(pty.queued_input(), 1, "outside: TIOCSTI queued a byte");
    let mut byte = [0u8];
    assert_eq!(
        unsafe { libc::read(pty.slave.as_raw_fd(), byte.as_mut_ptr().cast(), 1) },
        1
    );
    for mode in MODES {
        let scratch = Scratch::new("baseline-tty");
        let log = scratch.path("events.jsonl");
        let policy = scratch.path("policy.toml");
        write_policy(&policy, POLICY);
        let out = sandtrace()
            .args(["run", mode, "--policy", policy.to_str().unwrap()])
            .args(["-o", log.to_str().unwrap(), "--", PROBE])
            .args(TERMINAL_OPS)
            .stdin(pty.stdin())
            .output()
            .unwrap();
        assert!(out.status.success(), "{mode}: {}", describe(&out));
        assert_eq!(
            results_of(&out).unwrap(),
            ["EPERM", "EPERM", "EPERM"],
            "{mode}: {}",
            describe(&out)
        );
        assert_eq!(
            pty.queued_input(),
            0,
            "{mode}: nothing reached the terminal"
        );
        let denied = denied_syscalls(&read_jsonl(&log))
            .into_iter()
            .filter(|s| *s == "ioctl")
            .count();
        assert_eq!(denied, 3, "{mode}: each refusal is reported");
    }
}

#[test]
fn sockets_the_kernel_would_load_a_module_for_are_refused() {
    // Not tried outside: there the kernel would run modprobe on this host for the missing
    // families and protocols, which a test must not cause. The VM test `module_autoload`
    // watches the module requests happen without sandtrace and not with it.
    let refused = [
        "socket 5 2 0",   // AF_APPLETALK
        "socket 9 5 0",   // AF_X25
        "socket 2 1 132", // SCTP over IPv4
        "socket 16 3 16", // NETLINK_GENERIC: genetlink families load modules by name
    ];
    let allowed = [
        "socket 1 1 0",
        "socket 2 1 6",
        "socket 10 2 17",
        "socket 16 3 0",
    ];
    for mode in MODES {
        let ops: Vec<&str> = refused.iter().chain(&allowed).copied().collect();
        let s = in_session("baseline-sockets", mode, &ops);
        let want: Vec<&str> = refused
            .iter()
            .map(|_| "EPERM")
            .chain(allowed.iter().map(|_| "ok"))
            .collect();
        assert_eq!(s.results, want, "{mode}");
        let network = of_type(&s.events, "network");
        let reported: Vec<&Value> = network
            .iter()
            .copied()
            .filter(|e| e["operation"] == "socket" && e["action"] == "deny")
            .collect();
        assert_eq!(reported.len(), refused.len(), "{mode}: {reported:#?}");
        assert!(
            reported.iter().all(|e| e["reason"]
                .as_str()
                .unwrap()
                .contains("the kernel could load a module")),
            "{mode}: {reported:#?}"
        );
    }
}

#[test]
fn sysv_ipc_stays_in_the_session() {
    let key = 0x5a7d_0000 | (std::process::id() as i32 & 0xffff);
    let find = || unsafe { libc::shmget(key, 0, 0) };
    assert_eq!(outside(&format!("shm-create {key}")), ["ok"]);
    let id = find();
    assert!(id >= 0, "outside: the segment is visible");
    assert_eq!(
        unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) },
        0
    );
    for mode in MODES {
        let s = in_session("baseline-ipc", mode, &[&format!("shm-create {key}")]);
        assert_eq!(s.results, ["ok"], "{mode}");
        assert!(
            find() < 0,
            "{mode}: the session's segment is not visible outside"
        );
    }
}
