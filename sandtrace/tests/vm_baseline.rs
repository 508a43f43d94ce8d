//! Module autoload, in kernels with BPF LSM: socket families and protocols that make the
//! kernel run modprobe (as root, outside the session) without sandtrace do not with it, in
//! `--trace-only` as in an enforcing session (`--allow-degraded` enforces on these kernels).
//! The module requests are seen through a logging helper written into
//! /proc/sys/kernel/modprobe, inside the VM only, and restored afterwards.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU.

mod common;
mod probe;

use std::{fs, os::unix::fs::PermissionsExt as _, path::PathBuf};

const MODPROBE: &str = "/proc/sys/kernel/modprobe";

/// Points the kernel's modprobe at a script that logs its arguments; restores the old path
/// and removes the files when dropped.
struct LoggingModprobe {
    previous: String,
    script: PathBuf,
    log: PathBuf,
}

impl LoggingModprobe {
    /// The kernel starts modprobe in the initial mount namespace, where the tests' chroot is
    /// not the root; devtmpfs is one file system wherever it is mounted, so the script and its
    /// log live in /dev.
    fn install() -> Self {
        let name = format!("sandtrace-test-modprobe-{}", std::process::id());
        let script = PathBuf::from(format!("/dev/{name}"));
        let log = PathBuf::from(format!("/dev/{name}.log"));
        fs::write(
            &script,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let previous = fs::read_to_string(MODPROBE).unwrap();
        fs::write(MODPROBE, script.to_str().unwrap()).unwrap();
        Self {
            previous,
            script,
            log,
        }
    }

    /// The module requests logged since the last call.
    fn take(&self) -> String {
        let logged = fs::read_to_string(&self.log).unwrap_or_default();
        let _ = fs::remove_file(&self.log);
        logged
    }
}

impl Drop for LoggingModprobe {
    fn drop(&mut self) {
        let _ = fs::write(MODPROBE, self.previous.trim_end());
        let _ = fs::remove_file(&self.script);
        let _ = fs::remove_file(&self.log);
    }
}

#[test]
fn sockets_that_load_modules_request_none_from_a_session() {
    let modprobe = LoggingModprobe::install();
    // AppleTalk, X.25 and SCTP over IPv4: modules in distribution kernels, not loaded here
    // (the helper only logs), so every attempt asks again.
    let ops = ["socket 5 2 0", "socket 9 5 0", "socket 2 1 132"];
    let outside = probe::outside(&ops.join(";"));
    let requested = modprobe.take();
    for (op, want) in ops
        .iter()
        .zip(["net-pf-5", "net-pf-9", "net-pf-2-proto-132"])
    {
        assert!(
            requested.contains(want),
            "outside, {op} ({outside:?}) requests {want}: {requested:?}"
        );
    }
    let policy = "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\n";
    for mode in ["--trace-only", "--allow-degraded"] {
        let ops: Vec<String> = ops.iter().map(|op| (*op).to_owned()).collect();
        let s = probe::in_session("vm-autoload", policy, &ops, &[mode]);
        assert_eq!(s.results, ["EPERM", "EPERM", "EPERM"], "{mode}");
        assert_eq!(modprobe.take(), "", "{mode}: no module was requested");
    }
}
