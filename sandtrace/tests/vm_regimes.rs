//! `[[after_exec]]` regimes on a real BPF-LSM kernel (run by `cargo xtask vm-test`): a stand-in
//! package manager (bash, holding a token and the network) runs its "install script" through
//! dash, as npm runs `sh -c`; every attempt the script makes is checked from outside the
//! session, and the same attempts made by the package manager itself succeed.
//!
//! Compiled only with the `vm-tests` feature.

mod common;
mod probe;

use std::{fs, io::Read as _, net::TcpListener, path::Path, time::Duration};

use common::*;
use sandtrace::{
    output::terminal::Verbosity,
    plan::{EventDetail, KernelFeatures, ModeFlags, ProcessFlags, ProcessInputs},
};
use sandtrace_common::{
    config::{FLAG_REGIMES, REGIME_NET_RESTRICTED, RegimeConfig},
    network::{NET_LIST_CONNECT, NET_LIST_COUNT},
    policy::KIND_WRITE,
};
use serde_json::Value;

const BASH: &str = "/usr/bin/bash";
const DASH: &str = "/usr/bin/dash";

fn denials<'a>(events: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    of_type(events, event_type)
        .into_iter()
        .filter(|e| e["action"] == "deny")
        .collect()
}

/// What reached `listener` once the session is over: one string per connection.
fn received(listener: &TcpListener) -> Vec<String> {
    listener.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    while let Ok((mut stream, _)) = listener.accept() {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut text = String::new();
        let _ = stream.read_to_string(&mut text);
        got.push(text.trim().to_owned());
    }
    got
}

#[test]
fn install_scripts_are_held_tighter_than_the_package_manager() {
    for program in [BASH, DASH] {
        if !Path::new(program).exists() {
            skip("regime test", &format!("no {program}"), InCi::Guaranteed);
            return;
        }
    }
    probe::loopback_up();
    let scratch = Scratch::new("vm-regime");
    let s = scratch.0.to_str().unwrap().to_owned();
    let home = scratch.path("home");
    let project = scratch.path("project");
    for dir in [
        "home/.config/systemd/user",
        "project/node_modules/pkg",
        "cron.d",
    ] {
        fs::create_dir_all(scratch.path(dir)).unwrap();
    }
    fs::write(home.join(".npmrc"), "//registry/:_authToken=TOKEN-1234\n").unwrap();
    fs::write(project.join(".env.local"), "AWS_SECRET=abc\n").unwrap();
    fs::write(home.join(".bashrc"), "# rc\n").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = probe::PROBE;
    let policy = format!(
        "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/usr/bin\", \"/usr/lib\", \"{probe}\"]\n\
         allow_write = [\"{s}\", \"/dev/null\"]\ndeny = [\"**/.env\", \"**/.env.*\"]\n\
         [network]\nallow = false\nallow_connect = [\"127.0.0.1:{port}\"]\n\
         [[after_exec]]\nname = \"install scripts\"\nprograms = [\"{DASH}\"]\n\
         [after_exec.filesystem]\nallow_read = [\"/usr\", \"/lib\", \"/lib64\", \"/etc\", \"/dev\", \
         \"/proc\", \"{s}/project\", \"{probe}\"]\n\
         allow_write = [\"{s}/project/node_modules\", \"/dev/null\"]\n\
         allow_exec = [\"{DASH}\", \"/usr/bin/cat\", \"/usr/bin/touch\", \"/usr/bin/grep\", \
         \"{probe}\"]\n\
         deny = [\"{s}/home/.bashrc\"]\n\
         [after_exec.network]\nallow = false\n"
    );
    let policy_file = scratch.path("policy.toml");
    fs::write(&policy_file, policy).unwrap();
    // Each attempt of the script leaves a file named after it when it succeeded.
    let script = format!(
        "cd {s}/project\n\
         cat {s}/home/.npmrc > /dev/null && touch node_modules/pkg/read-token\n\
         cat .env.local > /dev/null && touch node_modules/pkg/read-env\n\
         echo \"$NPM_TOKEN\" | grep -q TOKEN && touch node_modules/pkg/env-token\n\
         cat /proc/$PPID/environ > /dev/null && touch node_modules/pkg/read-manager-environ\n\
         echo evil >> {s}/home/.bashrc && touch node_modules/pkg/wrote-bashrc\n\
         touch {s}/cron.d/evil && touch node_modules/pkg/wrote-cron\n\
         touch {s}/home/.config/systemd/user/evil.service && touch node_modules/pkg/wrote-unit\n\
         {BASH} -c true && touch node_modules/pkg/ran-bash\n\
         {probe} 'tcp-connect 127.0.0.1:{port}' | grep -q 'RESULT: ok' && touch node_modules/pkg/connected\n\
         touch node_modules/pkg/built\n"
    );
    fs::write(project.join("install.sh"), &script).unwrap();
    // The package manager: reads its token, runs the script through dash, then uses the
    // network and the token itself.
    let manager = format!(
        "cd {s}/project\n\
         cat {s}/home/.npmrc > /dev/null && touch {s}/manager-read-token\n\
         {DASH} {s}/project/install.sh\n\
         echo BASE > /dev/tcp/127.0.0.1/{port} && touch {s}/manager-connected\n\
         echo done\n"
    );
    let log = scratch.path("events.jsonl");
    let out = sandtrace()
        .args(["run", "--policy"])
        .arg(&policy_file)
        .arg("-o")
        .arg(&log)
        .args(["--pass-env", "NPM_TOKEN", "--", BASH, "-c", &manager])
        .env("NPM_TOKEN", "TOKEN-1234")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let events = read_jsonl(&log);
    let files = denials(&events, "file");
    let context = format!("{}\nfile denials: {files:#?}", describe(&out));
    assert!(out.status.success(), "{context}");
    // The package manager keeps its token and its network.
    assert!(scratch.path("manager-read-token").exists(), "{context}");
    assert!(scratch.path("manager-connected").exists(), "{context}");
    assert_eq!(
        received(&listener),
        ["BASE"],
        "only the manager reached the listener: {context}"
    );
    // The script ran, and only what a build needs succeeded.
    let pkg = project.join("node_modules/pkg");
    assert!(
        pkg.join("built").exists(),
        "the script ran to its end: {context}"
    );
    for attempt in [
        "read-token",
        "read-env",
        "read-manager-environ",
        "wrote-bashrc",
        "wrote-cron",
        "wrote-unit",
        "ran-bash",
        "connected",
    ] {
        assert!(
            !pkg.join(attempt).exists(),
            "the script could {attempt}: {context}"
        );
    }
    assert_eq!(fs::read_to_string(home.join(".bashrc")).unwrap(), "# rc\n");
    assert!(!scratch.path("cron.d/evil").exists());
    // NPM_TOKEN passed on purpose reaches the script's environment: only the kernel's rules
    // are the regime's (see the README); the examples do not pass it.
    assert!(pkg.join("env-token").exists(), "{context}");
    // The record: the exec that entered the regime, and denials naming it.
    let entered = of_type(&events, "process")
        .into_iter()
        .find(|e| e["action"] == "exec" && e["path"] == DASH)
        .unwrap_or_else(|| panic!("no exec of dash: {context}"));
    assert_eq!(
        entered["regimes"],
        serde_json::json!(["install scripts"]),
        "{context}"
    );
    let by_regime = |path: &str| {
        files
            .iter()
            .any(|e| e["path"] == path && e["regime"] == "install scripts")
    };
    assert!(by_regime(&format!("{s}/home/.npmrc")), "{context}");
    assert!(by_regime(&format!("{s}/home/.bashrc")), "{context}");
    assert!(
        files.iter().any(|e| e["operation"] == "ptrace"),
        "reading the manager's environment is refused: {context}"
    );
    let network = denials(&events, "network");
    assert!(
        network
            .iter()
            .any(|e| e["port"] == port && e["regime"] == "install scripts"),
        "the script's connect is refused by the regime: {network:#?}"
    );
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
