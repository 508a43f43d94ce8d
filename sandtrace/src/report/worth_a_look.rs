//! The short list of things an auditor should look at first: shells and downloaders started
//! inside the run, writes to places that make a program run again later (shell start-up
//! files, cron, systemd units, autostart, editor and agent settings, git hooks, SSH keys),
//! reads of credential-looking files (allowed or denied), and processes that outlived CMD and
//! were killed when the session ended.
//!
//! "Started inside the run" is every exec of a shell or downloader except CMD's own first
//! one: the log cannot tell an install script's shell from any other, so the report names the
//! program that started it and the package manager above it, if there is one, and leaves the
//! judgement to the reader.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use serde::Serialize;

use super::{FileRow, ProcessNode, ProcessRef, log::FileLine};

const SHELLS: &[&str] = &[
    "sh", "dash", "bash", "zsh", "fish", "ksh", "mksh", "ash", "csh", "tcsh", "busybox",
];
const DOWNLOADERS: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "telnet", "ftp", "tftp", "aria2c", "scp",
    "sftp", "rsync", "ssh",
];
const PACKAGE_MANAGERS: &[&str] = &[
    "npm", "npx", "pnpm", "pnpx", "yarn", "bun", "composer", "pip", "pip3", "pipx", "uv", "poetry",
    "gem", "bundle", "cargo", "go", "mvn", "gradle", "apt", "apt-get", "dpkg",
];

/// One item of the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorthALook {
    /// A shell or downloader executed by a process of the run (not CMD's own first exec).
    ProgramStarted {
        /// `shell` or `downloader`.
        program_kind: &'static str,
        /// The process, with the command line of this exec.
        process: ProcessRef,
        /// The program that started it: the process's previous program, or its parent.
        #[serde(skip_serializing_if = "Option::is_none")]
        started_by: Option<ProcessRef>,
        /// The nearest package manager among its ancestors.
        #[serde(skip_serializing_if = "Option::is_none")]
        under_package_manager: Option<ProcessRef>,
    },
    /// A write to (or change of) a file that makes something run later.
    PersistenceWrite {
        path: PathBuf,
        /// `shell start-up file`, `cron`, `systemd unit`, ...
        place: &'static str,
        /// The kernel refused it.
        denied: bool,
        processes: Vec<ProcessRef>,
    },
    /// A read of a credential-looking file.
    CredentialRead {
        path: PathBuf,
        denied: bool,
        processes: Vec<ProcessRef>,
    },
    /// A process still running when CMD's process had exited, killed by the session's end.
    KilledAtEnd { process: ProcessRef },
}

/// The base name of a program path, e.g. `dash` for `/usr/bin/dash`.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `shell` or `downloader`, for a program path (a script counts by its interpreter).
pub fn program_kind(path: &str) -> Option<&'static str> {
    let name = base_name(path);
    if SHELLS.contains(&name) {
        Some("shell")
    } else if DOWNLOADERS.contains(&name) {
        Some("downloader")
    } else {
        None
    }
}

/// Whether an exec runs a package manager: by its program, or by the script its interpreter
/// runs (`node .../npm-cli.js`, `php composer.phar`).
fn is_package_manager(path: &str, argv: &[String]) -> bool {
    let script = argv.get(1).map(String::as_str).unwrap_or_default();
    [
        path,
        argv.first().map(String::as_str).unwrap_or_default(),
        script,
    ]
    .into_iter()
    .map(|p| {
        let name = base_name(p);
        let name = [".js", ".cjs", ".mjs", ".phar", ".py"]
            .iter()
            .find_map(|ext| name.strip_suffix(ext))
            .unwrap_or(name);
        name.strip_suffix("-cli").unwrap_or(name)
    })
    .any(|name| PACKAGE_MANAGERS.contains(&name))
}

/// The kind of place, when writing `path` makes a program run later (at login, on a timer,
/// when an editor or agent opens the project, on a git operation, over SSH).
pub fn persistence_place(path: &Path) -> Option<&'static str> {
    let text = path.to_str()?;
    let name = base_name(text);
    let under = |dir: &str| text.starts_with(dir);
    let within = |dir: &str| text.contains(dir);
    let shell_start_up = [
        ".bashrc",
        ".bash_profile",
        ".bash_login",
        ".bash_logout",
        ".profile",
        ".zshrc",
        ".zshenv",
        ".zprofile",
        ".zlogin",
        ".kshrc",
        ".cshrc",
        ".tcshrc",
    ];
    if shell_start_up.contains(&name)
        || within("/.config/fish/")
        || under("/etc/profile")
        || under("/etc/bash.bashrc")
        || under("/etc/zsh/")
        || under("/etc/environment")
    {
        Some("shell start-up file")
    } else if under("/etc/cron") || under("/var/spool/cron") || under("/etc/anacrontab") {
        Some("cron")
    } else if within("/.config/systemd/")
        || under("/etc/systemd/")
        || under("/lib/systemd/")
        || under("/usr/lib/systemd/")
    {
        Some("systemd unit")
    } else if within("/.config/autostart/") || under("/etc/xdg/autostart/") {
        Some("autostart")
    } else if name == ".envrc" {
        // direnv runs it on entering the directory.
        Some("direnv script")
    } else if within("/.git/hooks/") || name == ".gitconfig" || within("/.config/git/") {
        Some("git hooks or configuration")
    } else if within("/.vscode/")
        || within("/.idea/")
        || within("/.claude/")
        || name == ".claude.json"
        || within("/.cursor/")
        || within("/.config/Code/User/")
    {
        Some("editor or agent settings")
    } else if within("/.ssh/authorized_keys") || within("/.ssh/rc") {
        Some("ssh login")
    } else if text == "/etc/ld.so.preload" || text == "/etc/rc.local" {
        Some("system start-up")
    } else {
        None
    }
}

/// Whether `path` looks like it holds credentials: package-registry and cloud tokens, SSH and
/// TLS private keys, `.env` files, the shadow password files.
pub fn is_credential(path: &Path) -> bool {
    let Some(text) = path.to_str() else {
        return false;
    };
    let name = base_name(text);
    let within = |dir: &str| text.contains(dir);
    let by_name = [
        ".npmrc",
        ".yarnrc.yml",
        ".pypirc",
        ".netrc",
        ".git-credentials",
        ".pgpass",
        ".my.cnf",
        ".env",
    ];
    let by_place = [
        "/.config/composer/auth.json",
        "/.composer/auth.json",
        "/.aws/credentials",
        "/.aws/config",
        "/.docker/config.json",
        "/.kube/config",
        "/.config/gh/hosts.yml",
        "/.config/gcloud/",
        "/.azure/",
        "/.gnupg/",
        "/.cargo/credentials",
        "/.gem/credentials",
        "/.terraform.d/credentials",
        "/.password-store/",
    ];
    // Public CA bundles are `.pem` too.
    let public_certificates = text.starts_with("/usr/") || within("/ssl/certs/");
    let private_key = [".pem", ".key", ".p12", ".pfx"]
        .iter()
        .any(|ext| name.ends_with(ext))
        && !public_certificates;
    let ssh_key = within("/.ssh/") && name.starts_with("id_") && !name.ends_with(".pub");
    // Composer also reads an `auth.json` beside `composer.json`.
    let project_auth = text == "./auth.json";
    let shadow = ["/etc/shadow", "/etc/gshadow"].contains(&text);
    by_name.contains(&name)
        || project_auth
        || shadow
        || (name.starts_with(".env.") && name != ".env.example")
        || by_place.iter().any(|p| within(p))
        || private_key
        || ssh_key
}

/// Denied file decisions of the kernel programs on the paths this list cares about (the
/// replay sees only successful calls).
#[derive(Debug, Default)]
pub struct DeniedAccesses {
    credential_reads: BTreeMap<PathBuf, BTreeSet<u32>>,
    persistence_writes: BTreeMap<PathBuf, BTreeSet<u32>>,
}

impl DeniedAccesses {
    pub fn record(&mut self, f: &FileLine) {
        if f.action != "deny" {
            return;
        }
        let path = Path::new(&f.path);
        let needs = |access: &str| f.access.iter().any(|a| a == access);
        if needs("read") && is_credential(path) {
            let pids = self.credential_reads.entry(path.to_owned()).or_default();
            pids.insert(f.tgid);
        }
        if needs("write") && persistence_place(path).is_some() {
            let pids = self.persistence_writes.entry(path.to_owned()).or_default();
            pids.insert(f.tgid);
        }
    }
}

/// The list for a run, in this order: programs started (in the order they first ran),
/// persistence writes, credential reads, processes killed at the end.
pub fn find(
    nodes: &[ProcessNode],
    files: &[FileRow],
    denied: &DeniedAccesses,
    killed_at_end: &[u32],
) -> Vec<WorthALook> {
    let by_pid: HashMap<u32, &ProcessNode> = nodes.iter().map(|n| (n.pid, n)).collect();
    let process = |pid: u32| ProcessRef::find(&by_pid, pid);
    let processes = |pids: &BTreeSet<u32>| pids.iter().map(|&pid| process(pid)).collect();
    let mut list = programs_started(nodes, &by_pid);
    for (path, place, pids, denied) in files
        .iter()
        .filter(|f| f.usage.write > 0)
        .filter_map(|f| {
            Some((
                &f.path,
                persistence_place(&f.path)?,
                &f.usage.written_by,
                false,
            ))
        })
        .chain(
            denied
                .persistence_writes
                .iter()
                .filter_map(|(path, pids)| Some((path, persistence_place(path)?, pids, true))),
        )
    {
        list.push(WorthALook::PersistenceWrite {
            path: path.clone(),
            place,
            denied,
            processes: processes(pids),
        });
    }
    let read = files
        .iter()
        .filter(|f| f.usage.read > 0 && is_credential(&f.path))
        .map(|f| (&f.path, &f.usage.read_by, false));
    let refused = denied
        .credential_reads
        .iter()
        .map(|(path, pids)| (path, pids, true));
    for (path, pids, denied) in read.chain(refused) {
        list.push(WorthALook::CredentialRead {
            path: path.clone(),
            denied,
            processes: processes(pids),
        });
    }
    list.extend(killed_at_end.iter().map(|&pid| WorthALook::KilledAtEnd {
        process: process(pid),
    }));
    list
}

fn programs_started(nodes: &[ProcessNode], by_pid: &HashMap<u32, &ProcessNode>) -> Vec<WorthALook> {
    let root = nodes.first().map(|n| n.pid);
    let mut list = Vec::new();
    for node in nodes {
        for (i, exec) in node.execs.iter().enumerate() {
            if Some(node.pid) == root && i == 0 {
                continue;
            }
            let Some(program_kind) = program_kind(&exec.path)
                .or_else(|| exec.interpreter.as_deref().and_then(program_kind))
            else {
                continue;
            };
            // The programs that ran before this exec, in this process and up its ancestors,
            // each as `(process, programs it had executed by then)`, nearest first.
            let before = std::iter::successors(Some((node, i)), |(n, _)| {
                let parent = n.parent.and_then(|p| by_pid.get(&p).copied())?;
                Some((parent, n.parent_execs))
            })
            .take(nodes.len());
            let started_by = before
                .clone()
                .find(|(n, done)| n.pid != node.pid || *done > 0)
                .map(|(n, done)| n.reference_after(done));
            let under_package_manager = before
                .flat_map(|(n, done)| (1..=done).rev().map(move |k| (n, k)))
                .find(|(n, k)| {
                    let e = &n.execs[k - 1];
                    is_package_manager(&e.path, &e.argv)
                })
                .map(|(n, k)| n.reference_after(k));
            list.push(WorthALook::ProgramStarted {
                program_kind,
                process: node.reference_after(i + 1),
                started_by,
                under_package_manager,
            });
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persistence_places() {
        let place = |p: &str| persistence_place(Path::new(p));
        assert_eq!(place("/root/.bashrc"), Some("shell start-up file"));
        assert_eq!(
            place("/home/a/.config/fish/config.fish"),
            Some("shell start-up file")
        );
        assert_eq!(place("/etc/cron.d/x"), Some("cron"));
        assert_eq!(place("/var/spool/cron/crontabs/root"), Some("cron"));
        assert_eq!(
            place("/home/a/.config/systemd/user/x.service"),
            Some("systemd unit")
        );
        assert_eq!(place("/etc/xdg/autostart/x.desktop"), Some("autostart"));
        assert_eq!(
            place("./.vscode/tasks.json"),
            Some("editor or agent settings")
        );
        assert_eq!(
            place("/home/a/.claude/settings.json"),
            Some("editor or agent settings")
        );
        assert_eq!(
            place("./.git/hooks/pre-commit"),
            Some("git hooks or configuration")
        );
        assert_eq!(place("/root/.ssh/authorized_keys"), Some("ssh login"));
        assert_eq!(place("./.envrc"), Some("direnv script"));
        assert_eq!(place("/tmp/bashrc"), None);
        assert_eq!(place("./node_modules/x/index.js"), None);
    }

    #[test]
    fn credential_files() {
        for yes in [
            "/root/.npmrc",
            "/home/a/.config/composer/auth.json",
            "./.env",
            "./.env.local",
            "/home/a/.ssh/id_ed25519",
            "/home/a/.aws/credentials",
            "/home/a/.docker/config.json",
            "/etc/ssl/private/server.key",
            "/etc/shadow",
            "./auth.json",
        ] {
            assert!(is_credential(Path::new(yes)), "{yes}");
        }
        for no in [
            "/home/a/.ssh/id_ed25519.pub",
            "./.env.example",
            "/usr/lib/python3/dist-packages/certifi/cacert.pem",
            "/etc/ssl/certs/ISRG_Root_X1.pem",
            "/etc/passwd",
            "./environment.js",
            "./node_modules/x/auth.json",
            "./node_modules/shadow",
        ] {
            assert!(!is_credential(Path::new(no)), "{no}");
        }
    }

    fn node(pid: u32, parent: Option<u32>, parent_execs: usize, argvs: &[&[&str]]) -> ProcessNode {
        ProcessNode {
            pid,
            parent,
            comm: "x".to_owned(),
            execs: argvs
                .iter()
                .map(|argv| crate::report::ExecRecord {
                    path: format!("/usr/bin/{}", argv[0]),
                    interpreter: None,
                    argv: argv.iter().map(ToString::to_string).collect(),
                    argv_truncated: false,
                    cwd: None,
                    uid: None,
                })
                .collect(),
            threads: 0,
            exit_code: Some(0),
            signal: None,
            children: Vec::new(),
            parent_execs,
        }
    }

    /// A program is named as started by what its parent ran when it forked, not by what the
    /// parent ran later.
    #[test]
    fn started_by_the_parent_program_of_the_fork() {
        let nodes = [
            node(1, None, 0, &[&["npm", "install"], &["node", "later.js"]]),
            node(2, Some(1), 1, &[&["sh", "-c", "make"], &["curl", "x"]]),
        ];
        let list = find(&nodes, &[], &DeniedAccesses::default(), &[]);
        let started = |i: usize| match &list[i] {
            WorthALook::ProgramStarted {
                process,
                started_by,
                under_package_manager,
                ..
            } => (
                process.command.clone(),
                started_by.as_ref().map(|p| p.command.clone()),
                under_package_manager.as_ref().map(|p| p.command.clone()),
            ),
            other => panic!("{other:?}"),
        };
        let npm = Some("npm install".to_owned());
        assert_eq!(
            started(0),
            ("sh -c make".to_owned(), npm.clone(), npm.clone())
        );
        assert_eq!(
            started(1),
            ("curl x".to_owned(), Some("sh -c make".to_owned()), npm)
        );
        assert_eq!(list.len(), 2);
    }

    #[test]
    fn programs() {
        assert_eq!(program_kind("/usr/bin/dash"), Some("shell"));
        assert_eq!(program_kind("curl"), Some("downloader"));
        assert_eq!(program_kind("/usr/bin/node"), None);
        let argv = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert!(is_package_manager(
            "/usr/bin/node",
            &argv(&[
                "node",
                "/usr/lib/node_modules/npm/bin/npm-cli.js",
                "install"
            ])
        ));
        assert!(is_package_manager(
            "/usr/bin/php",
            &argv(&["php", "composer.phar", "install"])
        ));
        assert!(!is_package_manager(
            "/usr/bin/node",
            &argv(&["node", "build.js"])
        ));
    }
}
