//! Real npm, pnpm and composer under the example policies (`examples/*_audit.toml`, unchanged)
//! on a real BPF-LSM kernel (run by `cargo xtask vm-test`, which installs the three managers;
//! see `cargo xtask setup`'s package-manager step). The packages are prepared as local
//! tarballs and path repositories, so the guest needs no network.
//!
//! For each manager: a benign package whose install script writes into its own directory and
//! runs node (php for composer) installs with no denial at all; a malicious one's script tries
//! to read secrets, reach the network, persist and leave a process behind. Every attempt is
//! made first without sandtrace (the control: each one succeeds), then under the policy, and
//! checked from outside the session: the script leaves a marker file for each attempt that
//! succeeded, the home directory and `/etc/cron.d` are inspected, a listener counts
//! connections and `/proc` is searched for the process it left.
//!
//! Compiled only with the `vm-tests` feature.

mod common;
mod probe;

use std::{
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use common::*;
use serde_json::Value;

/// The registry token in `~/.npmrc` and the environment.
const TOKEN: &str = "npm_t0kenThatMustStayWithTheManager";

#[derive(Clone, Copy, Debug)]
enum Manager {
    Npm,
    Pnpm,
    Composer,
}

impl Manager {
    fn program(self) -> &'static str {
        match self {
            Manager::Npm => "npm",
            Manager::Pnpm => "pnpm",
            Manager::Composer => "composer",
        }
    }

    fn policy(self) -> PathBuf {
        let name = match self {
            Manager::Npm => "npm_audit.toml",
            Manager::Pnpm => "pnpm_audit.toml",
            Manager::Composer => "composer_audit.toml",
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name)
    }

    /// The install command, run in the project directory; it reaches no registry.
    fn install_argv(self) -> Vec<&'static str> {
        match self {
            Manager::Npm => vec!["npm", "install", "--offline", "--no-audit", "--no-fund"],
            Manager::Pnpm => vec!["pnpm", "install", "--offline"],
            Manager::Composer => vec!["composer", "install", "--no-interaction", "--no-progress"],
        }
    }

    /// The directory the package's install script runs in (where it may write).
    fn script_dir(self, project: &Path) -> PathBuf {
        match self {
            Manager::Npm | Manager::Pnpm => project.join("node_modules/pkg"),
            // Composer runs only the root package's scripts, in the project directory.
            Manager::Composer => project.join("vendor"),
        }
    }

    /// The interpreter the script uses to build, to reach the network and to stay behind.
    fn interpreter(self) -> &'static str {
        match self {
            Manager::Npm | Manager::Pnpm => "node",
            Manager::Composer => "php",
        }
    }

    /// A command line that writes `ok` to `file` with the interpreter.
    fn write_with_interpreter(self, file: &str) -> String {
        match self {
            Manager::Npm | Manager::Pnpm => {
                format!("node -e \"require('fs').writeFileSync('{file}', 'ok')\"")
            }
            Manager::Composer => format!("php -r \"file_put_contents('{file}', 'ok');\""),
        }
    }

    /// A command line that connects to 127.0.0.1:`port` and touches `marker` when it could.
    fn connect(self, port: u16, marker: &str) -> String {
        match self {
            Manager::Npm | Manager::Pnpm => format!(
                "node -e \"require('net').connect({port}, '127.0.0.1')\
                 .on('connect', () => {{ require('fs').writeFileSync('{marker}', ''); process.exit(0) }})\
                 .on('error', () => process.exit(1))\""
            ),
            Manager::Composer => {
                format!("php -r \"if (@fsockopen('127.0.0.1', {port})) touch('{marker}');\"")
            }
        }
    }

    /// A command line that starts a process which would outlive the install, its command line
    /// carrying `marker`, in the background of a subshell (so that nothing waits for it), and
    /// writes its pid to `pid_file`.
    fn detach(self, marker: &str, pid_file: &str) -> String {
        let sleeper = match self {
            Manager::Npm | Manager::Pnpm => {
                format!("node -e 'setTimeout(() => {{}}, 3600000)' {marker}")
            }
            Manager::Composer => format!("php -r 'sleep(3600);' {marker}"),
        };
        format!("({sleeper} < /dev/null > /dev/null 2>&1 & echo $! > {pid_file})")
    }

    /// The manager's own credential file, which its scripts must not read.
    fn credentials(self, home: &Path) -> PathBuf {
        match self {
            Manager::Npm | Manager::Pnpm => home.join(".npmrc"),
            Manager::Composer => home.join(".config/composer/auth.json"),
        }
    }

    /// Writes the project: a manifest depending on one package whose install script is
    /// `script` (composer: the root package's `post-install-cmd`, and `post-update-cmd`, which
    /// an install without a lock file runs instead).
    fn write_project(self, project: &Path, script: &str) {
        let json = |s: &str| serde_json::to_string(s).unwrap();
        match self {
            Manager::Npm | Manager::Pnpm => {
                let source = project.join("packages/pkg");
                fs::create_dir_all(&source).unwrap();
                fs::write(
                    source.join("package.json"),
                    format!(
                        "{{\"name\":\"pkg\",\"version\":\"1.0.0\",\
                         \"scripts\":{{\"postinstall\":{}}}}}",
                        json(script)
                    ),
                )
                .unwrap();
                let out = Command::new("npm")
                    .args(["pack", "--quiet", "--pack-destination", ".."])
                    .current_dir(&source)
                    .output()
                    .unwrap();
                assert!(out.status.success(), "npm pack: {}", describe(&out));
                fs::write(
                    project.join("package.json"),
                    "{\"name\":\"project\",\"version\":\"1.0.0\",\"private\":true,\
                     \"dependencies\":{\"pkg\":\"file:packages/pkg-1.0.0.tgz\"}}",
                )
                .unwrap();
                // pnpm runs no dependency's build script unless told; an audit runs them.
                fs::write(
                    project.join("pnpm-workspace.yaml"),
                    "dangerouslyAllowAllBuilds: true\n",
                )
                .unwrap();
                fs::write(
                    project.join(".npmrc"),
                    "update-notifier=false\nfund=false\naudit=false\n",
                )
                .unwrap();
            }
            Manager::Composer => {
                let library = project.join("packages/lib");
                fs::create_dir_all(&library).unwrap();
                fs::write(
                    library.join("composer.json"),
                    "{\"name\":\"test/lib\",\"version\":\"1.0.0\",\
                     \"autoload\":{\"files\":[\"lib.php\"]}}",
                )
                .unwrap();
                fs::write(library.join("lib.php"), "<?php\n").unwrap();
                fs::write(
                    project.join("composer.json"),
                    format!(
                        "{{\"name\":\"test/project\",\
                         \"repositories\":[{{\"packagist.org\":false}},\
                         {{\"type\":\"path\",\"url\":\"packages/lib\",\
                         \"options\":{{\"symlink\":false}}}}],\
                         \"require\":{{\"test/lib\":\"1.0.0\"}},\
                         \"scripts\":{{\"post-install-cmd\":[{0}],\
                         \"post-update-cmd\":[{0}]}}}}",
                        json(script)
                    ),
                )
                .unwrap();
            }
        }
    }
}

/// A home with the manager's credentials and shell start-up files, a project, and (for the
/// malicious script) a listener and a cron directory, all fresh for one install.
struct Install {
    manager: Manager,
    scratch: Scratch,
    home: PathBuf,
    project: PathBuf,
}

impl Install {
    fn new(manager: Manager, name: &str) -> Self {
        let scratch = Scratch::new(name);
        let home = scratch.path("home");
        let project = scratch.path("project");
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::create_dir_all(home.join(".config/composer")).unwrap();
        fs::create_dir_all(&project).unwrap();
        fs::write(
            home.join(".npmrc"),
            format!("//registry.npmjs.org/:_authToken={TOKEN}\n"),
        )
        .unwrap();
        fs::write(
            home.join(".config/composer/auth.json"),
            format!("{{\"github-oauth\":{{\"github.com\":\"{TOKEN}\"}}}}\n"),
        )
        .unwrap();
        fs::write(home.join(".ssh/id_rsa"), "PRIVATE KEY\n").unwrap();
        fs::write(home.join(".bashrc"), "# rc\n").unwrap();
        fs::write(project.join(".env"), "AWS_SECRET_ACCESS_KEY=abc\n").unwrap();
        fs::write(project.join(".env.local"), "DB_PASSWORD=def\n").unwrap();
        Self {
            manager,
            scratch,
            home,
            project,
        }
    }

    /// The install without sandtrace.
    fn run_natively(&self) -> Output {
        let argv = self.manager.install_argv();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..]);
        self.in_project(&mut cmd).output().unwrap()
    }

    /// The install under the manager's example policy; returns its output and event log.
    fn run_sandboxed(&self) -> (Output, Vec<Value>) {
        let log = self.scratch.path("events.jsonl");
        let mut cmd = sandtrace();
        cmd.args(["run", "--policy"])
            .arg(self.manager.policy())
            .arg("-o")
            .arg(&log)
            .arg("--")
            .args(self.manager.install_argv());
        let out = self.in_project(&mut cmd).output().unwrap();
        let events = read_jsonl(&log);
        (out, events)
    }

    fn in_project<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.current_dir(&self.project)
            .env("HOME", &self.home)
            .env("NPM_TOKEN", TOKEN)
            // Composer run as root (as here) runs no script without it.
            .env("COMPOSER_ALLOW_SUPERUSER", "1")
            .env_remove("COMPOSER_HOME")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::null())
    }
}

/// The managers this guest has, or a skip for the test (the VM suite's setup installs all).
fn available(test: &str, manager: Manager) -> bool {
    if !runs_in_this_guest(test, GuestShare::Second) {
        return false;
    }
    if find_program(manager.program()).is_none() || find_program("npm").is_none() {
        skip(
            test,
            &format!("{} is not installed", manager.program()),
            InCi::Guaranteed,
        );
        return false;
    }
    true
}

fn denials(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["action"] == "deny").collect()
}

fn benign_install_has_no_denial(test: &str, manager: Manager) {
    if !available(test, manager) {
        return;
    }
    let install = Install::new(manager, &format!("pm-{}-benign", manager.program()));
    let dir = manager.script_dir(&install.project);
    let built = dir.join("built.txt");
    let built = built.display();
    let script = format!(
        "{} && test -s {built}",
        manager.write_with_interpreter(&built.to_string())
    );
    manager.write_project(&install.project, &script);
    let (out, events) = install.run_sandboxed();
    let context = format!("{}\ndenials: {:#?}", describe(&out), denials(&events));
    assert!(out.status.success(), "{context}");
    assert_eq!(
        fs::read_to_string(dir.join("built.txt")).ok().as_deref(),
        Some("ok"),
        "the script ran and wrote its build output: {context}"
    );
    assert!(denials(&events).is_empty(), "{context}");
    assert_eq!(summary(&events)["denied_count"], 0, "{context}");
}

/// What the malicious script tries, each attempt touching a marker in `markers` when it
/// succeeds; `cron` is a file name of this test's own in `/etc/cron.d`.
fn malicious_script(manager: Manager, install: &Install, port: u16, cron: &str) -> String {
    let m = install.scratch.path("markers");
    let m = m.display();
    let home = install.home.display();
    let project = install.project.display();
    let credentials = manager.credentials(&install.home);
    let credentials = credentials.display();
    [
        format!("mkdir -p {m}"),
        format!("cat {credentials} > /dev/null && touch {m}/read-credentials"),
        format!("cat {project}/.env > /dev/null && touch {m}/read-env"),
        format!("cat {project}/.env.local > /dev/null && touch {m}/read-env-local"),
        format!("cat {home}/.ssh/id_rsa > /dev/null && touch {m}/read-ssh-key"),
        format!("[ -n \"$NPM_TOKEN\" ] && touch {m}/env-token"),
        manager.connect(port, &format!("{m}/connected")),
        format!("echo evil >> {home}/.bashrc && touch {m}/wrote-bashrc"),
        format!("echo evil > /etc/cron.d/{cron} && touch {m}/wrote-cron"),
        format!(
            "mkdir -p {home}/.config/systemd/user && \
             touch {home}/.config/systemd/user/evil.service && touch {m}/wrote-unit"
        ),
        format!("curl --version > /dev/null && touch {m}/ran-curl"),
        format!("wget --version > /dev/null && touch {m}/ran-wget"),
        format!("bash -c true && touch {m}/ran-bash"),
        manager.detach(cron, &format!("{m}.pid")),
        format!("touch {m}/done"),
    ]
    .join("; ")
}

/// Every attempt the script makes, by its marker's name.
const ATTEMPTS: [&str; 12] = [
    "read-credentials",
    "read-env",
    "read-env-local",
    "read-ssh-key",
    "env-token",
    "connected",
    "wrote-bashrc",
    "wrote-cron",
    "wrote-unit",
    "ran-curl",
    "ran-wget",
    "ran-bash",
];

fn markers(install: &Install) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(install.scratch.path("markers"))
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn kill_all(marker: &str) {
    for pid in processes_with(marker) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn malicious_script_is_held(test: &str, manager: Manager) {
    if !available(test, manager) {
        return;
    }
    probe::loopback_up();
    fs::create_dir_all("/etc/cron.d").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    // The control: without sandtrace, every attempt succeeds.
    let control = Install::new(manager, &format!("pm-{}-control", manager.program()));
    let control_cron = format!("sandtrace-test-{}-control-{}", manager.program(), port);
    manager.write_project(
        &control.project,
        &malicious_script(manager, &control, port, &control_cron),
    );
    let out = control.run_natively();
    let left = processes_with(&control_cron);
    kill_all(&control_cron);
    let _ = fs::remove_file(Path::new("/etc/cron.d").join(&control_cron));
    assert!(out.status.success(), "control: {}", describe(&out));
    let mut expected: Vec<String> = ATTEMPTS.iter().map(ToString::to_string).collect();
    expected.push("done".to_owned());
    expected.sort();
    assert_eq!(markers(&control), expected, "control: {}", describe(&out));
    assert!(
        !left.is_empty(),
        "control: the process outlived the install"
    );
    listener.set_nonblocking(true).unwrap();
    while listener.accept().is_ok() {}

    // Under the example policy: every attempt fails, the install still succeeds.
    let install = Install::new(manager, &format!("pm-{}-evil", manager.program()));
    let cron = format!("sandtrace-test-{}-evil-{}", manager.program(), port);
    manager.write_project(
        &install.project,
        &malicious_script(manager, &install, port, &cron),
    );
    let (out, events) = install.run_sandboxed();
    let found = denials(&events);
    let context = format!("{}\ndenials: {found:#?}", describe(&out));
    let left = processes_with(&cron);
    kill_all(&cron);
    let cron_written = Path::new("/etc/cron.d").join(&cron).exists();
    let _ = fs::remove_file(Path::new("/etc/cron.d").join(&cron));
    assert!(out.status.success(), "{context}");
    assert_eq!(markers(&install), ["done"], "{context}");
    assert!(
        listener.accept().is_err(),
        "a connection arrived: {context}"
    );
    assert_eq!(
        fs::read_to_string(install.home.join(".bashrc")).unwrap(),
        "# rc\n"
    );
    assert!(!cron_written, "{context}");
    assert!(
        !install
            .home
            .join(".config/systemd/user/evil.service")
            .exists(),
        "{context}"
    );
    assert!(left.is_empty(), "processes outlived the session: {left:?}");

    // Each attempt is on record: denied file accesses and execs, the refused connect, and
    // the token removed from the environment.
    let denied_path = |path: &Path| {
        let path = path.to_str().unwrap();
        found.iter().any(|e| e["path"] == path)
    };
    for path in [
        manager.credentials(&install.home),
        install.project.join(".env"),
        install.project.join(".env.local"),
        install.home.join(".ssh/id_rsa"),
        install.home.join(".bashrc"),
        Path::new("/etc/cron.d").join(&cron),
        install.home.join(".config/systemd"),
    ] {
        assert!(
            denied_path(&path)
                || found.iter().any(|e| e["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with(path.to_str().unwrap()))),
            "no denial of {}: {context}",
            path.display()
        );
    }
    // The manager may read its credentials: the scripts' regime is what refused them.
    let credentials = manager.credentials(&install.home);
    assert!(
        found
            .iter()
            .any(|e| e["path"] == credentials.to_str().unwrap() && e["regime"].is_string()),
        "the credentials' denial names the regime: {context}"
    );
    for program in ["curl", "wget", "bash"] {
        assert!(
            found.iter().any(|e| e["operation"] == "exec"
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&format!("/{program}")))),
            "no denied exec of {program}: {context}"
        );
    }
    assert!(
        found
            .iter()
            .any(|e| e["event_type"] == "network" && e["port"] == port),
        "no denied connect to {port}: {context}"
    );
    assert!(
        summary(&events)["removed_environment"]
            .as_array()
            .is_some_and(|names| names.iter().any(|n| n == "NPM_TOKEN")),
        "{context}"
    );
    // The process left behind: started (its pid, in the session's pid namespace, is in the
    // file the script wrote), and killed (SIGKILL) when the session ended; the record has the
    // exec of the interpreter and that exit.
    assert!(
        install.scratch.path("markers.pid").exists(),
        "the script started no process: {context}"
    );
    let interpreter = manager.interpreter();
    let execs = |tgid: &Value| {
        of_type(&events, "process").into_iter().any(|e| {
            e["action"] == "exec"
                && e["tgid"] == *tgid
                && e["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with(&interpreter))
        })
    };
    assert!(
        of_type(&events, "process")
            .into_iter()
            .any(|e| e["action"] == "exited" && e["signal"] == 9 && execs(&e["tgid"])),
        "no {interpreter} killed at the session's end: {context}"
    );
}

#[test]
fn npm_installs_a_package_with_a_build_script_without_a_denial() {
    benign_install_has_no_denial(
        "npm_installs_a_package_with_a_build_script_without_a_denial",
        Manager::Npm,
    );
}

#[test]
fn pnpm_installs_a_package_with_a_build_script_without_a_denial() {
    benign_install_has_no_denial(
        "pnpm_installs_a_package_with_a_build_script_without_a_denial",
        Manager::Pnpm,
    );
}

#[test]
fn composer_runs_a_project_script_without_a_denial() {
    benign_install_has_no_denial(
        "composer_runs_a_project_script_without_a_denial",
        Manager::Composer,
    );
}

#[test]
fn npm_install_script_attempts_all_fail_and_are_recorded() {
    malicious_script_is_held(
        "npm_install_script_attempts_all_fail_and_are_recorded",
        Manager::Npm,
    );
}

#[test]
fn pnpm_install_script_attempts_all_fail_and_are_recorded() {
    malicious_script_is_held(
        "pnpm_install_script_attempts_all_fail_and_are_recorded",
        Manager::Pnpm,
    );
}

#[test]
fn composer_script_attempts_all_fail_and_are_recorded() {
    malicious_script_is_held(
        "composer_script_attempts_all_fail_and_are_recorded",
        Manager::Composer,
    );
}
