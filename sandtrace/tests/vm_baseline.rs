//! Helpers the kernel starts as root outside the session, in kernels with BPF LSM: socket
//! families and protocols that make the kernel run modprobe without sandtrace do not with it,
//! and a crash starts no core dump helper, in `--trace-only` as in an enforcing session
//! (`--allow-degraded` enforces on these kernels). The helpers are logging scripts written
//! into /proc/sys/kernel/modprobe and core_pattern, inside the VM only, and restored
//! afterwards.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU.

mod common;
mod probe;

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf};

/// The modes that confine; both apply the baseline.
const MODES: [&str; 2] = ["--trace-only", "--allow-degraded"];
/// Everything readable and executable; pseudo-terminals writable (TIOCSETD's terminal).
const POLICY: &str = "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\n\
                      allow_write = [\"/dev/ptmx\", \"/dev/pts\"]\n";

/// Points a kernel helper setting (`sysctl`, written as `prefix` + the script's path) at a
/// script that logs its arguments; restores the old value and removes the files when dropped.
struct LoggingHelper {
    sysctl: &'static str,
    previous: String,
    script: PathBuf,
    log: PathBuf,
}

impl LoggingHelper {
    /// The kernel starts its helpers in the initial mount namespace, where the tests' chroot
    /// is not the root; devtmpfs is one file system wherever it is mounted, so the script and
    /// its log live in /dev.
    fn install(sysctl: &'static str, prefix: &str, args: &str) -> Self {
        let name = format!(
            "sandtrace-test-{}-{}",
            sysctl.rsplit('/').next().unwrap(),
            std::process::id()
        );
        let script = PathBuf::from(format!("/dev/{name}"));
        let log = PathBuf::from(format!("/dev/{name}.log"));
        fs::write(
            &script,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let previous = fs::read_to_string(sysctl).unwrap();
        let value = format!("{prefix}{} {args}", script.display());
        fs::write(sysctl, value.trim_end()).unwrap();
        Self {
            sysctl,
            previous,
            script,
            log,
        }
    }

    /// The helper's runs logged since the last call.
    fn take(&self) -> String {
        let logged = fs::read_to_string(&self.log).unwrap_or_default();
        let _ = fs::remove_file(&self.log);
        logged
    }
}

impl Drop for LoggingHelper {
    fn drop(&mut self) {
        let _ = fs::write(self.sysctl, self.previous.trim_end());
        let _ = fs::remove_file(&self.script);
        let _ = fs::remove_file(&self.log);
    }
}

#[test]
fn sockets_and_ioctls_that_load_modules_request_none_from_a_session() {
    let modprobe = LoggingHelper::install("/proc/sys/kernel/modprobe", "", "");
    // AppleTalk, X.25 and SCTP over IPv4, and the bridge and 802.1q ioctls, which any
    // process may make on any socket: modules in distribution kernels, not loaded here (the
    // helper only logs), so every attempt asks again. A line discipline (N_HDLC) is loaded
    // for an unprivileged TIOCSETD only where dev.tty.ldisc_autoload is on.
    let mut expected = vec![
        ("socket 5 2 0", "net-pf-5"),
        ("socket 9 5 0", "net-pf-9"),
        ("socket 2 1 132", "net-pf-2-proto-132"),
        ("socket-ioctl 0x8940", "bridge"),
        ("socket-ioctl 0x8982", "8021q"),
    ];
    if fs::read_to_string("/proc/sys/dev/tty/ldisc_autoload").is_ok_and(|v| v.trim() == "1") {
        expected.push(("tiocsetd-new-pty 13", "tty-ldisc-13"));
    }
    let ops: Vec<String> = expected.iter().map(|(op, _)| (*op).to_owned()).collect();
    let outside = probe::outside(&ops.join(";"));
    let requested = modprobe.take();
    for (op, want) in &expected {
        assert!(
            requested.contains(want),
            "outside, {op} ({outside:?}) requests {want}: {requested:?}"
        );
    }
    for mode in MODES {
        let s = probe::in_session("vm-autoload", POLICY, &ops, &[mode]);
        assert!(
            s.results.iter().all(|r| r == "EPERM"),
            "{mode}: {:?}",
            s.results
        );
        assert_eq!(modprobe.take(), "", "{mode}: no module was requested");
    }
}

#[test]
fn a_crash_in_the_session_starts_no_core_dump_helper() {
    let helper = LoggingHelper::install("/proc/sys/kernel/core_pattern", "|", "%p");
    // A shell that kills itself with SIGSEGV, whose default action dumps core.
    let crash = ["/bin/sh", "-c", "kill -SEGV $$"];
    let status = std::process::Command::new(crash[0])
        .args(&crash[1..])
        .status()
        .unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(11)
    );
    // The dump goes through a pipe the helper closes when it exits, so the crash ends after
    // it ran; the wait only covers a slow write of the log.
    let mut logged = String::new();
    common::wait_until(probe::DEADLINE, || {
        logged.push_str(&helper.take());
        !logged.is_empty()
    });
    assert_ne!(logged, "", "outside, the crash started the helper");
    for mode in MODES {
        let scratch = common::Scratch::new("vm-core");
        let policy = scratch.path("policy.toml");
        fs::write(&policy, POLICY).unwrap();
        let out = common::sandtrace()
            .args(["run", mode, "--policy", policy.to_str().unwrap(), "--"])
            .args(crash)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(139),
            "{mode}: {}",
            common::describe(&out)
        );
        assert_eq!(helper.take(), "", "{mode}: no core dump helper ran");
    }
}
