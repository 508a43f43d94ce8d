//! The session plan's refused syscalls ([`SeccompPlan`]) as a seccomp filter, installed in the
//! child before exec. Which syscalls are refused, and why, is the plan's decision
//! (`plan/seccomp_rules.rs`); this module only builds and installs the program.
//!
//! libseccomp generates the BPF program, because it also emits the architecture checks a
//! hand-written filter tends to get wrong. The filter:
//! - returns `EPERM` or `ENOSYS` (as the plan's [`Refusal`] says) for every refused x86_64
//!   syscall and allows the rest;
//! - returns `EPERM` for the syscalls the plan refuses for some arguments only ([`ArgRule`]:
//!   `ioctl` TIOCSTI, `socket` families that load modules, `clone` with CLONE_NEW*, ...), one
//!   conditional rule per case;
//! - kills the whole process (`SIGSYS`) on any other syscall ABI, so a denied syscall cannot
//!   be reached under another number: x32 syscalls (`nr | 0x40000000`, same audit arch as
//!   x86_64) and foreign-architecture entry such as i386 `int 0x80`. Killing rather than
//!   failing with an errno makes such an attempt visible, and a 32-bit program could not run
//!   under the filter anyway.
//!
//! The program is generated in the parent ([`SeccompFilter::build`]); the child only makes two
//! raw syscalls ([`SeccompFilter::install`]), which is safe between `clone` and `exec` in a
//! multithreaded parent.

use std::{
    fs::File,
    io::{Read as _, Seek as _, SeekFrom},
};

use anyhow::{Context as _, Result, bail, ensure};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::{
    errno::Errno,
    sys::memfd::{MFdFlags, memfd_create},
};

use crate::{
    plan::{ArgCheck, ArgRule, Refusal, SeccompPlan},
    syscall_table,
};

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;

/// A seccomp BPF program, ready to install.
pub struct SeccompFilter {
    program: Box<[libc::sock_filter]>,
}

impl SeccompFilter {
    /// Builds the filter of `plan`. A number that is not an x86_64 syscall is an error.
    ///
    /// Allocates: call it in the parent, before forking the child.
    pub fn build(plan: &SeccompPlan) -> Result<Self> {
        if let Some(unknown) = plan
            .rules
            .iter()
            .find(|rule| syscall_table::name(rule.nr).is_none())
        {
            bail!(
                "cannot refuse syscall number {}: it is not an x86_64 syscall",
                unknown.nr
            );
        }
        let refused = |nr: u32| plan.rules.iter().any(|rule| rule.nr == nr);
        let mut ctx = ScmpFilterContext::new(ScmpAction::Allow)
            .context("creating a libseccomp filter context")?;
        ensure!(
            ctx.is_arch_present(ScmpArch::X8664)
                .context("querying the filter's architectures")?,
            "libseccomp did not target x86_64; sandtrace's seccomp filter only supports x86_64"
        );
        // The bad-arch action also covers x32 numbers on an x86_64 filter.
        ctx.set_act_badarch(ScmpAction::KillProcess)
            .context("setting the seccomp action for foreign syscall ABIs")?;
        for rule in &plan.rules {
            let errno = match rule.refusal {
                Refusal::Eperm => libc::EPERM,
                Refusal::Enosys => libc::ENOSYS,
            };
            ctx.add_rule(ScmpAction::Errno(errno), syscall(rule.nr))
                .with_context(|| format!("adding a seccomp rule refusing {}", rule.name))?;
        }
        for rule in plan.arg_rules.iter().filter(|rule| !refused(rule.nr)) {
            add_arg_rule(&mut ctx, rule)?;
        }

        let program = export(&ctx)?;
        ensure!(
            program.len() <= MAX_INSTRUCTIONS,
            "the seccomp filter has {} instructions, more than the kernel's limit of \
             {MAX_INSTRUCTIONS}",
            program.len()
        );
        Ok(Self { program })
    }

    /// Number of BPF instructions in the filter.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Always false: a built filter at least checks the architecture.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Sets `no_new_privs` and installs the filter on the calling thread.
    ///
    /// Async-signal-safe (two raw syscalls, no allocation, no locks): meant for the child
    /// between `clone` and `exec`. The filter stays in force across `exec` and is inherited
    /// by every descendant.
    pub fn install(&self) -> Result<(), Errno> {
        let program = libc::sock_fprog {
            // `build` keeps the length within MAX_INSTRUCTIONS.
            len: self.program.len() as u16,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: plain syscalls; `program` points into `self.program`, which outlives them,
        // and the kernel copies the filter before returning.
        unsafe {
            // Required for an unprivileged filter, and stops a setuid exec from shedding it.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(Errno::last());
            }
            let flags: libc::c_uint = 0;
            if libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &raw const program,
            ) != 0
            {
                return Err(Errno::last());
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for SeccompFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompFilter")
            .field("instructions", &self.program.len())
            .finish()
    }
}

/// One conditional rule per case of `rule`, each refusing with `EPERM`.
fn add_arg_rule(ctx: &mut ScmpFilterContext, rule: &ArgRule) -> Result<()> {
    for case in &rule.cases {
        let comparisons: Vec<ScmpArgCompare> = case
            .iter()
            .map(|check| match *check {
                ArgCheck::Masked { arg, mask, value } => ScmpArgCompare::new(
                    u32::from(arg),
                    ScmpCompareOp::MaskedEqual(u64::from(mask)),
                    u64::from(value),
                ),
                ArgCheck::Above { arg, value } => {
                    ScmpArgCompare::new(u32::from(arg), ScmpCompareOp::Greater, u64::from(value))
                }
            })
            .collect();
        ctx.add_rule_conditional(
            ScmpAction::Errno(libc::EPERM),
            syscall(rule.nr),
            &comparisons,
        )
        .with_context(|| {
            format!(
                "adding a seccomp rule refusing {} for {}",
                rule.name, rule.refused
            )
        })?;
    }
    Ok(())
}

fn syscall(nr: u32) -> ScmpSyscall {
    // x86_64 syscall numbers are below 1024, so the cast is exact.
    ScmpSyscall::from(nr as i32)
}

/// The filter's BPF program. libseccomp 2.5 (Debian 12) can only export to a file
/// descriptor; a memfd has no size limit, unlike a pipe that nobody drains.
fn export(ctx: &ScmpFilterContext) -> Result<Box<[libc::sock_filter]>> {
    let mut file = File::from(
        memfd_create(c"sandtrace-seccomp", MFdFlags::MFD_CLOEXEC)
            .context("creating a memfd for the seccomp program")?,
    );
    ctx.export_bpf(&file)
        .context("generating the seccomp BPF program")?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .context("reading back the generated seccomp BPF program")?;
    let instruction_len = size_of::<libc::sock_filter>();
    ensure!(
        bytes.len().is_multiple_of(instruction_len) && !bytes.is_empty(),
        "libseccomp produced a {}-byte program, not a whole number of {instruction_len}-byte \
         BPF instructions",
        bytes.len()
    );
    Ok(bytes
        .chunks_exact(instruction_len)
        .map(|insn| libc::sock_filter {
            code: u16::from_ne_bytes([insn[0], insn[1]]),
            jt: insn[2],
            jf: insn[3],
            k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{
        EventDetail, Identity, ProcessPlan, SessionPlan,
        process::{Account, EnvironmentPlan, IdentitySource, Privileges},
    };

    /// The baseline's conditional rules stay well within the kernel's program size.
    #[test]
    fn the_baseline_filter_fits() {
        let detail = EventDetail {
            syscalls: false,
            all_decisions: false,
        };
        let root = Account {
            name: None,
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: None,
            shell: None,
        };
        let process = ProcessPlan {
            identity: Identity {
                account: root,
                source: IdentitySource::Caller,
            },
            privileges: Privileges::Confined(Vec::new()),
            environment: EnvironmentPlan {
                vars: Vec::new(),
                removed: Vec::new(),
            },
        };
        let plan = SessionPlan::trace_only(std::time::Duration::from_secs(1), detail, process);
        let filter = SeccompFilter::build(plan.seccomp.as_ref().unwrap()).unwrap();
        assert!(
            filter.len() < MAX_INSTRUCTIONS / 2,
            "{} instructions",
            filter.len()
        );
    }
}
