//! The seccomp filter on this host's kernel. Each case forks a child that installs the filter
//! and reports what it saw through its exit status; between fork and exit the child only
//! makes async-signal-safe calls, as sandtrace's own child does.

// The cases are raw syscalls (denied ones, x32 and i386 aliases, fork) made in forked children
// to see what the filter does to them; each passes only pointers to live local buffers, and a
// child ends with `_exit`.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::path::Path;

use sandtrace::{
    output::terminal::Verbosity,
    plan::{
        EventDetail, KernelFeatures, ModeFlags, PidsController, ProcessFlags, ProcessInputs,
        Refusal, SeccompPlan, SeccompReason, SeccompRule, SessionPlan,
    },
    policy::{self, PreparedPolicy},
    seccomp::SeccompFilter,
    syscall_table,
};

/// x32 syscalls are x86_64 numbers with this bit set, under the same audit arch.
const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
/// i386 `getpid`, reached through `int 0x80`.
const I386_GETPID: u32 = 20;
/// The child exits with this when `SeccompFilter::install` fails.
const INSTALL_FAILED: i32 = 200;

/// How a forked child ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The checked call returned without error.
    Succeeded,
    /// The checked call failed with this errno.
    Failed(i32),
    /// The child exited with another status (see the child's code for its meaning).
    Exited(i32),
    /// The kernel killed the child with this signal.
    Killed(i32),
}

fn nr(name: &str) -> u32 {
    syscall_table::number(name).unwrap_or_else(|| panic!("{name} is an x86_64 syscall"))
}

/// The filter of an enforcing session whose policy denies `denied` (the session baseline
/// included), planned as `sandtrace run` plans it.
fn filter(denied: &[&str]) -> SeccompFilter {
    let text = format!("[syscalls]\ndeny = {denied:?}\n");
    let policy =
        policy::parse::parse(Path::new("test.toml"), text).unwrap_or_else(|d| panic!("{d}"));
    let effective = policy::resolve(&policy, &Default::default(), Path::new("/"), None)
        .unwrap_or_else(|d| panic!("{d}"));
    let compiled = policy::compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    let features = KernelFeatures {
        bpf_lsm: Ok(()),
        landlock_abi: Ok(6),
        pids: PidsController::CgroupV2,
        memfd_noexec: true,
        missing_lsm_hooks: Vec::new(),
    };
    let plan = SessionPlan::new(
        &PreparedPolicy {
            effective,
            compiled,
        },
        ModeFlags::default(),
        EventDetail::for_output(false, Verbosity::Quiet),
        &features,
        &ProcessInputs::gather(ProcessFlags::default()).expect("sandtrace's own user"),
    )
    .unwrap_or_else(|e| panic!("planning a session denying {denied:?}: {e}"));
    SeccompFilter::build(
        plan.seccomp
            .as_ref()
            .expect("an enforcing session has a filter"),
    )
    .unwrap_or_else(|e| panic!("building a filter denying {denied:?}: {e:#}"))
}

/// A filter refusing exactly `numbers` with EPERM.
fn raw_filter(numbers: &[u32]) -> anyhow::Result<SeccompFilter> {
    let rules = numbers
        .iter()
        .map(|&nr| SeccompRule {
            nr,
            name: syscall_table::name(nr).unwrap_or("?"),
            refusal: Refusal::Eperm,
            reason: SeccompReason::Policy("test".to_owned()),
        })
        .collect();
    SeccompFilter::build(&SeccompPlan {
        rules,
        arg_rules: Vec::new(),
    })
}

/// Forks; the child installs `filter` (if any), then exits with what `body` returns.
fn in_child(filter: Option<&SeccompFilter>, body: impl FnOnce() -> i32) -> Outcome {
    // SAFETY: the child only runs `install` and `body`, which are async-signal-safe, then _exit.
    match unsafe { libc::fork() } {
        -1 => panic!("fork: {}", std::io::Error::last_os_error()),
        0 => {
            let code = match filter.map(SeccompFilter::install) {
                Some(Err(_)) => INSTALL_FAILED,
                _ => body(),
            };
            unsafe { libc::_exit(code) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
            assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
            if libc::WIFSIGNALED(status) {
                Outcome::Killed(libc::WTERMSIG(status))
            } else {
                let code = libc::WEXITSTATUS(status);
                assert_ne!(
                    code, INSTALL_FAILED,
                    "the child could not install the filter"
                );
                Outcome::Exited(code)
            }
        }
    }
}

/// Runs the syscall `call` in a filtered child (or an unfiltered one with `None`).
fn syscall_outcome(filter: Option<&SeccompFilter>, call: impl FnOnce() -> libc::c_long) -> Outcome {
    match in_child(filter, || match call() {
        -1 => std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(255),
        _ => 0,
    }) {
        Outcome::Exited(0) => Outcome::Succeeded,
        Outcome::Exited(errno) => Outcome::Failed(errno),
        killed => killed,
    }
}

fn uname() -> libc::c_long {
    let mut buf = std::mem::MaybeUninit::<libc::utsname>::uninit();
    // SAFETY: `buf` is a valid utsname buffer.
    unsafe { libc::syscall(libc::SYS_uname, buf.as_mut_ptr()) }
}

fn reboot_with_bad_magic() -> libc::c_long {
    // Wrong magic numbers: without a filter the kernel refuses with EINVAL before anything else.
    unsafe { libc::syscall(libc::SYS_reboot, 0, 0, libc::LINUX_REBOOT_CMD_POWER_OFF, 0) }
}

fn clone3_without_args() -> libc::c_long {
    // Size 0 is invalid: a kernel that runs clone3 answers EINVAL.
    unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::null_mut::<libc::c_void>(),
            0usize,
        )
    }
}

/// A syscall through the i386 entry point (`int 0x80`) from 64-bit code.
fn int80(nr: u32) -> libc::c_long {
    let ret: u32;
    // SAFETY: i386 getpid takes no arguments and touches no memory; the compat entry may
    // clobber r8-r11 on some kernels.
    unsafe {
        std::arch::asm!(
            "int 0x80",
            inlateout("eax") nr => ret,
            lateout("r8") _, lateout("r9") _, lateout("r10") _, lateout("r11") _,
            options(nostack),
        );
    }
    // eax holds a 32-bit result; -errno comes back as a negative i32.
    libc::c_long::from(ret as i32)
}

#[test]
fn denied_syscalls_fail_with_eperm_and_others_work() {
    let f = filter(&["uname", "acct", "reboot", "mount"]);
    assert_eq!(
        syscall_outcome(None, uname),
        Outcome::Succeeded,
        "uname without a filter"
    );
    assert_eq!(
        syscall_outcome(Some(&f), uname),
        Outcome::Failed(libc::EPERM),
        "denied uname"
    );
    // SAFETY (both): acct(NULL) only turns process accounting off, and is refused here.
    let acct_off = || unsafe { libc::syscall(libc::SYS_acct, std::ptr::null::<libc::c_char>()) };
    assert_eq!(
        syscall_outcome(Some(&f), acct_off),
        Outcome::Failed(libc::EPERM),
        "denied acct"
    );
    assert_eq!(
        syscall_outcome(None, reboot_with_bad_magic),
        Outcome::Failed(libc::EINVAL),
        "reboot with bad magic, no filter"
    );
    assert_eq!(
        syscall_outcome(Some(&f), reboot_with_bad_magic),
        Outcome::Failed(libc::EPERM),
        "denied reboot is refused before the kernel sees its arguments"
    );
    let getpid = || unsafe { libc::syscall(libc::SYS_getpid) };
    assert_eq!(
        syscall_outcome(Some(&f), getpid),
        Outcome::Succeeded,
        "allowed getpid"
    );
    let no_new_privs = || match unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } {
        1 => 0,
        _ => -1,
    };
    assert_eq!(
        syscall_outcome(Some(&f), no_new_privs),
        Outcome::Succeeded,
        "no_new_privs is set"
    );
}

/// Execs `/bin/uname` with stdout and stderr on /dev/null in a child, filtered or not.
fn exec_uname(filter: Option<&SeccompFilter>) -> Outcome {
    let uname_bin = c"/bin/uname";
    let argv = [uname_bin.as_ptr(), std::ptr::null()];
    in_child(filter, || unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        libc::dup2(null, 1);
        libc::dup2(null, 2);
        libc::execv(uname_bin.as_ptr(), argv.as_ptr());
        127
    })
}

#[test]
fn filter_survives_exec() {
    assert_eq!(
        exec_uname(None),
        Outcome::Exited(0),
        "/bin/uname without a filter"
    );
    assert_eq!(
        exec_uname(Some(&filter(&["uname"]))),
        Outcome::Exited(1),
        "/bin/uname cannot get the system name when the filter denies uname"
    );
}

#[test]
fn x32_aliases_kill_the_process() {
    let f = filter(&["uname"]);
    let x32_uname = || {
        let mut buf = std::mem::MaybeUninit::<libc::utsname>::uninit();
        unsafe { libc::syscall(libc::SYS_uname | X32_SYSCALL_BIT, buf.as_mut_ptr()) }
    };
    assert_eq!(
        syscall_outcome(Some(&f), x32_uname),
        Outcome::Killed(libc::SIGSYS),
        "x32 uname"
    );
    // Allowed syscalls are refused through the x32 ABI too: it is blocked as a whole.
    let x32_getpid = || unsafe { libc::syscall(libc::SYS_getpid | X32_SYSCALL_BIT) };
    assert_eq!(
        syscall_outcome(Some(&f), x32_getpid),
        Outcome::Killed(libc::SIGSYS),
        "x32 getpid"
    );
}

#[test]
fn i386_entry_kills_the_process() {
    let f = filter(&["uname"]);
    let pid_via_int80 = || match int80(I386_GETPID) {
        ret if ret == libc::c_long::from(unsafe { libc::getpid() }) => 0,
        _ => -1,
    };
    assert_eq!(
        syscall_outcome(None, pid_via_int80),
        Outcome::Succeeded,
        "without a filter, i386 getpid through int 0x80 works on this kernel (IA32 emulation)"
    );
    assert_eq!(
        syscall_outcome(Some(&f), pid_via_int80),
        Outcome::Killed(libc::SIGSYS)
    );
}

#[test]
fn clone3_is_enosys_and_fork_still_works() {
    // clone3 gets ENOSYS whether or not the policy also denies it.
    for f in [filter(&[]), filter(&["clone3", "uname"])] {
        assert_eq!(
            syscall_outcome(None, clone3_without_args),
            Outcome::Failed(libc::EINVAL)
        );
        assert_eq!(
            syscall_outcome(Some(&f), clone3_without_args),
            Outcome::Failed(libc::ENOSYS)
        );

        let fork_and_reap = || unsafe {
            match libc::fork() {
                -1 => 1,
                0 => libc::_exit(7),
                pid => {
                    let mut status = 0;
                    let done = libc::waitpid(pid, &mut status, 0) == pid;
                    if done && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 7 {
                        0
                    } else {
                        2
                    }
                }
            }
        };
        assert_eq!(
            in_child(Some(&f), fork_and_reap),
            Outcome::Exited(0),
            "fork under the filter"
        );

        // glibc's posix_spawn tries clone3 first and falls back to clone on ENOSYS.
        let true_bin = c"/bin/true";
        let argv = [true_bin.as_ptr().cast_mut(), std::ptr::null_mut()];
        let spawn_and_reap = || unsafe {
            let mut pid = 0;
            let env = [std::ptr::null_mut()];
            if libc::posix_spawn(
                &mut pid,
                true_bin.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                argv.as_ptr(),
                env.as_ptr(),
            ) != 0
            {
                return 1;
            }
            let mut status = 0;
            let done = libc::waitpid(pid, &mut status, 0) == pid;
            if done && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                0
            } else {
                2
            }
        };
        assert_eq!(
            in_child(Some(&f), spawn_and_reap),
            Outcome::Exited(0),
            "posix_spawn under the filter"
        );
    }
}

#[test]
fn build_rejects_numbers_that_are_not_syscalls() {
    let err = raw_filter(&[nr("uname"), 9999]).expect_err("9999 is not a syscall");
    assert!(format!("{err:#}").contains("9999"), "{err:#}");
    let x32 = nr("uname") | X32_SYSCALL_BIT as u32;
    assert!(
        raw_filter(&[x32]).is_err(),
        "x32 numbers cannot be denied one by one"
    );
    let twice = raw_filter(&[nr("uname"), nr("uname")]).expect("duplicates are fine");
    assert!(!twice.is_empty());
}
