//! The kernel side of `[[after_exec]]` regimes, driven without the policy syntax: the test
//! plans an ordinary enforcing session, then sets in the plan what the regime compiler will
//! (one regime, the program that enters it marked `KIND_ENTER` in the path automaton) and
//! runs the session in-process through the library.
//!
//! Compiled only with the `vm-tests` feature; `cargo xtask vm-test` runs it in QEMU.

mod common;
mod probe;

use std::{fs, net::TcpListener, path::Path};

use common::*;
use sandtrace::{
    output::terminal::Verbosity,
    plan::{EventDetail, KernelFeatures, ModeFlags, ProcessFlags, ProcessInputs, RunOptions},
    policy::CompiledPaths,
};
use sandtrace_common::{
    config::{FLAG_REGIMES, REGIME_NET_RESTRICTED, RegimeConfig},
    network::{NET_LIST_CONNECT, NET_LIST_COUNT},
    policy::{KIND_ENTER, KIND_WRITE},
};
use serde_json::Value;

const BASH: &str = "/usr/bin/bash";

/// The automaton state `path` ends in.
fn state_of(paths: &CompiledPaths, path: &str) -> usize {
    let (class_of, transitions, n_classes) =
        (paths.class_of(), paths.transitions(), paths.n_classes());
    path.bytes().fold(paths.header().start as usize, |s, b| {
        transitions[s * n_classes + class_of[b as usize] as usize] as usize
    })
}

/// Runs `script` with /bin/sh under `policy` in an enforcing session in which executing
/// `enter` puts a process into the one regime `regime`; returns the event log.
fn run_with_regime(
    scratch: &Scratch,
    policy: &str,
    regime: RegimeConfig,
    enter: &str,
    script: &str,
) -> Vec<Value> {
    let policy_file = scratch.path("policy.toml");
    fs::write(&policy_file, policy).unwrap();
    let log = scratch.path("events.jsonl");
    let options = RunOptions {
        policy_file: Some(policy_file),
        overrides: Default::default(),
        mode: ModeFlags::default(),
        output: Some(log.clone()),
        verbosity: Verbosity::Quiet,
        no_color: true,
        follow_forks: true,
        ring_buffer_bytes: sandtrace::ebpf::DEFAULT_RING_BUFFER_BYTES,
        process: ProcessFlags::default(),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
    };
    let process = ProcessInputs::gather(options.process.clone()).expect("sandtrace's own user");
    let prepared = sandtrace::policy::prepare(
        options.policy_file.as_deref(),
        &options.overrides,
        process.identity.home(),
    )
    .unwrap_or_else(|e| panic!("the test policy: {e:?}"));
    let features = KernelFeatures::probe(true);
    let detail = EventDetail::for_output(true, options.verbosity);
    let mut plan =
        sandtrace::plan::SessionPlan::new(&prepared, options.mode, detail, &features, &process)
            .unwrap_or_else(|e| panic!("planning: {e}"));
    plan.programs.config_flags |= FLAG_REGIMES;
    plan.programs.regimes = vec![regime];
    let paths = &mut plan
        .programs
        .paths
        .as_mut()
        .expect("an enforcing session")
        .paths;
    let state = state_of(paths, enter);
    paths.accept_mut()[state].regime_kinds[0] |= KIND_ENTER;
    sandtrace::session::run(&options, &plan).unwrap_or_else(|e| panic!("the session: {e:?}"));
    read_jsonl(&log)
}

fn denials<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    of_type(events, event_type)
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .collect()
}

/// A closed TCP port on 127.0.0.1.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_regime_entered_by_exec_confines_the_process_and_its_children_only() {
    if !Path::new(BASH).exists() {
        skip("regime test", "no /usr/bin/bash", InCi::Guaranteed);
        return;
    }
    probe::loopback_up();
    let scratch = Scratch::new("vm-regime");
    let s = scratch.0.to_str().unwrap().to_owned();
    let (dropped, kept) = (closed_port(), closed_port());
    // `/usr/bin/bash` first, so that it has an automaton state of its own.
    let policy = format!(
        "[filesystem]\nallow_read = [\"{BASH}\", \"/\"]\nallow_exec = [\"/\"]\n\
         allow_write = [\"{s}\"]\n\
         [network]\nallow = false\nallow_connect = [\"127.0.0.1:{dropped}\", \"127.0.0.1:{kept}\"]\n"
    );
    let mut keep_rules = [0; NET_LIST_COUNT];
    // Kernel rule 1 (the second entry) only.
    keep_rules[NET_LIST_CONNECT as usize] = 1 << 1;
    let regime = RegimeConfig {
        narrows: KIND_WRITE,
        network: REGIME_NET_RESTRICTED,
        _pad: 0,
        keep_rules,
    };
    let script = format!(
        "echo base > {s}/base.txt\n\
         bash -c 'echo r > {s}/regime.txt; dash -c \"echo c > {s}/child.txt\"; \
           cat /proc/$PPID/environ | wc -c; \
           (echo > /dev/tcp/127.0.0.1/{dropped}); \
           (echo > /dev/tcp/127.0.0.1/{kept})' 2> {s}/regime.err\n\
         echo after > {s}/after.txt\n"
    );
    let events = run_with_regime(&scratch, &policy, regime, BASH, &script);
    let exists = |name: &str| scratch.path(name).exists();
    let stderr = fs::read_to_string(scratch.path("regime.err")).unwrap_or_default();
    let files = denials(&events, "file");
    let network = denials(&events, "network");
    let context = format!(
        "stderr of the regime: {stderr}\nfile denials: {files:#?}\nnetwork denials: {network:#?}"
    );
    assert!(
        exists("base.txt"),
        "the base process writes before: {context}"
    );
    assert!(
        exists("after.txt"),
        "and after, never in the regime: {context}"
    );
    assert!(
        !exists("regime.txt"),
        "the regime's process may not write: {context}"
    );
    assert!(!exists("child.txt"), "nor its child: {context}");
    for name in ["regime.txt", "child.txt"] {
        let path = format!("{s}/{name}");
        assert!(
            files.iter().any(|e| e["path"] == path.as_str()),
            "no denial of {path}: {context}"
        );
    }
    assert!(
        files.iter().any(|e| e["operation"] == "ptrace"),
        "reading the base process's environment is refused: {context}"
    );
    assert!(
        stderr.contains("Operation not permitted"),
        "the connect the regime does not keep fails with EPERM: {context}"
    );
    assert!(
        stderr.contains("Connection refused"),
        "the connect it keeps reaches the (closed) port: {context}"
    );
    let refused: Vec<_> = network
        .iter()
        .filter(|e| e["operation"] == "connect")
        .collect();
    assert_eq!(refused.len(), 1, "{context}");
    assert_eq!(refused[0]["port"], dropped, "{context}");
}

/// Every program loads with regimes on, in each network mode: the configuration is in the
/// frozen .rodata, so the verifier skips the code of flags that are off, and a session without
/// regimes proves nothing about theirs.
#[test]
fn the_programs_load_with_regimes_in_every_network_mode() {
    use sandtrace::{
        ebpf::{Enforcement, SessionPrograms},
        kernel_btf,
    };
    use sandtrace_common::config::{
        Config, FLAG_BASE_NETWORK_OPEN, FLAG_FILE_EVENTS_ALL, FLAG_NETWORK_EVENTS_ALL,
        FLAG_SESSION_DNS,
    };
    use std::os::fd::AsFd as _;

    let scratch = Scratch::new("vm-regime-load");
    let policy_file = scratch.path("policy.toml");
    fs::write(
        &policy_file,
        "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/usr\"]\nallow_write = [\"/tmp\"]\n\
         deny = [\"/etc/shadow\"]\n\
         [network]\nallow = false\nallow_connect = [\"127.0.0.1:80\", \"*:443\"]\n\
         allow_bind = [\"127.0.0.1:8080\"]\nallow_hosts = [\"example.com\"]\n",
    )
    .unwrap();
    let process = ProcessInputs::gather(ProcessFlags::default()).expect("sandtrace's own user");
    let prepared = sandtrace::policy::prepare(
        Some(&policy_file),
        &Default::default(),
        process.identity.home(),
    )
    .unwrap_or_else(|e| panic!("the test policy: {e:?}"));
    let features = KernelFeatures::probe(true);
    let detail = EventDetail::for_output(true, Verbosity::Processes);
    // Without BPF LSM (run by hand on a host without it), the degraded layout alone.
    let mode = ModeFlags {
        allow_degraded: true,
        ..ModeFlags::default()
    };
    let plan = sandtrace::plan::SessionPlan::new(&prepared, mode, detail, &features, &process)
        .unwrap_or_else(|e| panic!("planning: {e}"));
    let btf = kernel_btf::KernelBtf::from_sys_fs().unwrap();
    let offsets = kernel_btf::kernel_offsets(&btf).unwrap();
    let compiled = prepared.compiled.clone();
    let lsm_programs: Vec<_> = plan
        .programs
        .lsm_programs()
        .into_iter()
        .map(|hook| (hook, sandtrace::ebpf::program_for(hook, &btf)))
        .collect();
    let with_lsm = plan.programs.paths.is_some();
    if !with_lsm {
        eprintln!("no BPF LSM here: loading the degraded layout only");
    }
    // A cgroup of its own, which nothing runs in: the cgroup programs attach to it.
    let v2_root = fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<_> = l.split(' ').collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_owned())
        })
        .expect("a cgroup v2 mount");
    let cgroup_dir =
        Path::new(&v2_root).join(format!("sandtrace-regime-load-{}", std::process::id()));
    fs::create_dir(&cgroup_dir).unwrap_or_else(|e| panic!("{}: {e}", cgroup_dir.display()));
    let cgroup = fs::File::open(&cgroup_dir).unwrap();
    let mut keep_rules = [0; NET_LIST_COUNT];
    keep_rules[NET_LIST_CONNECT as usize] = 0b10;
    let restricting = RegimeConfig {
        narrows: KIND_WRITE,
        network: REGIME_NET_RESTRICTED,
        _pad: 0,
        keep_rules,
    };
    let open = RegimeConfig {
        narrows: 0,
        network: 0,
        _pad: 0,
        keep_rules: [0; NET_LIST_COUNT],
    };
    let base =
        plan.programs.config_flags | FLAG_REGIMES | FLAG_FILE_EVENTS_ALL | FLAG_NETWORK_EVENTS_ALL;
    let mut failures = Vec::new();
    let layouts = [
        ("restricted base network", base & !FLAG_SESSION_DNS),
        (
            "restricted base network with allow_hosts",
            base | FLAG_SESSION_DNS,
        ),
        (
            "open base network",
            (base & !FLAG_SESSION_DNS) | FLAG_BASE_NETWORK_OPEN,
        ),
    ];
    let lsm_variants: &[bool] = if with_lsm { &[true, false] } else { &[false] };
    for (&lsm, (name, flags)) in lsm_variants
        .iter()
        .flat_map(|lsm| layouts.iter().map(move |l| (lsm, *l)))
    {
        let flags = if lsm {
            flags
        } else {
            flags & !sandtrace_common::config::FLAG_ENFORCE_FILES
        };
        let mut config = Config::UNSET;
        // A level and id no task has: the programs are verified whole, and decide nothing.
        config.session_cgroup_id = u64::MAX;
        config.session_cgroup_level = 1;
        config.flags = flags;
        config.session_pid_ns_level = 1;
        config.n_regimes = 2;
        config.regimes[0] = restricting;
        config.regimes[1] = open;
        config.offsets = offsets;
        let mut programs = plan.programs.clone();
        programs.config_flags = flags;
        programs.regime_paths = Some(compiled.clone());
        if !lsm {
            programs.paths = None;
        }
        let enforcement = Enforcement {
            paths: &compiled,
            launch_chain: Vec::new(),
            dynamic_loaders: Vec::new(),
            lsm_programs: lsm_programs.clone(),
        };
        if let Err(e) = SessionPrograms::load(
            &config,
            sandtrace::ebpf::DEFAULT_RING_BUFFER_BYTES,
            &programs,
            lsm.then_some(&enforcement),
            cgroup.as_fd(),
        ) {
            failures.push(format!("{name}, BPF LSM {lsm}: {e:#}"));
        }
    }
    drop(cgroup);
    let _ = fs::remove_dir(&cgroup_dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
