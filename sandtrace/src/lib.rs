//! sandtrace: run an untrusted command under a kernel-enforced policy and record everything
//! it does.
//!
//! A run flows through these modules in order: [`cli`] (flags) → [`policy`] (parse, resolve,
//! compile) → [`plan`] (what this session applies on this kernel, decided in one pure stage) →
//! [`session`], which carries the plan out: [`cgroup`] (the session's cgroup and process limit), [`kernel_btf`] +
//! [`ebpf`] (configure, load and attach the kernel programs), [`spawn`] (CMD inside the
//! session), the event loop, timeout and teardown → [`events`] (ring-buffer records to typed
//! events) → [`output`] (JSONL, terminal, summary). Exit statuses are defined in [`exit`].

pub mod cgroup;
pub mod cli;
pub mod dns;
pub mod ebpf;
pub mod events;
pub mod exit;
pub mod landlock;
pub mod launch;
pub mod learn;
pub mod network;
pub mod open_flags;
pub mod output;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod pty;
pub mod report;
pub mod session;
pub mod sockaddr;
pub mod spawn;

pub mod kernel_btf;
pub mod seccomp;
pub mod syscall_table;

/// `sandtrace run`: finds who CMD runs as, prepares the policy, probes the kernel, plans the
/// session and runs it. Returns CMD's exit status, or why nothing (or not all of it) could run.
pub fn run(options: &plan::RunOptions) -> Result<i32, exit::Error> {
    let process =
        plan::ProcessInputs::gather(options.process.clone()).map_err(exit::Error::Usage)?;
    let prepared = policy::prepare(
        options.policy_file.as_deref(),
        &options.overrides,
        process.identity.home(),
    )?;
    let features = plan::KernelFeatures::probe(!options.mode.trace_only);
    let detail = plan::EventDetail::for_output(
        options.output.is_some() || options.record.is_some(),
        options.verbosity,
    );
    let plan = plan::SessionPlan::new(&prepared, options.mode, detail, &features, &process)
        .map_err(anyhow::Error::from)?;
    session::run(options, &plan)
}
