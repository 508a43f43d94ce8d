//! The programs the benchmark runs: a start-up probe, two syscall-bound microbenchmarks, a
//! file-tree walk (once, and five times in a row), a many-process workload and a compile,
//! built from tools every Debian machine has (perl, find, gcc) so that nothing is compiled for
//! the benchmark itself.

use std::{ffi::OsString, fmt::Write as _, fs, path::Path};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::runner::Variant;

/// What a workload stands for, which decides the targets its ratios are held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `/bin/true`: measures sandtrace's own start-up and teardown, nothing else.
    StartUp,
    /// As many of one syscall as possible: the worst case for per-syscall tracing.
    Micro,
    /// What people run under sandtrace: walks, builds, many processes.
    Realistic,
}

/// How big each workload is. The host's sizes take about a second natively; the VM's are
/// smaller because software emulation is 5 to 20 times slower.
#[derive(Debug, Clone)]
pub struct Sizes {
    getppid_calls: u64,
    open_close_pairs: u64,
    walk_root: &'static str,
    forks: u64,
    compile_functions: u32,
}

impl Sizes {
    pub fn host(quick: bool) -> Self {
        if quick {
            Self {
                getppid_calls: 10_000,
                open_close_pairs: 2_000,
                walk_root: "/usr/include/linux",
                forks: 20,
                compile_functions: 5,
            }
        } else {
            Self {
                getppid_calls: 1_000_000,
                open_close_pairs: 200_000,
                walk_root: "/usr",
                forks: 2_000,
                compile_functions: 200,
            }
        }
    }

    pub fn vm() -> Self {
        Self {
            getppid_calls: 500_000,
            open_close_pairs: 20_000,
            walk_root: "/usr/include",
            forks: 100,
            compile_functions: 20,
        }
    }
}

/// One program to measure.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Short and stable: the key in the JSON results and the row label of the tables.
    pub name: &'static str,
    /// What it does, with its size.
    pub description: String,
    pub kind: Kind,
    pub argv: Vec<OsString>,
    /// Variants it does not run under.
    pub skip: &'static [Variant],
}

impl Workload {
    /// Those of `variants` it runs under, in that order.
    pub fn variants(&self, variants: &[Variant]) -> Vec<Variant> {
        variants
            .iter()
            .copied()
            .filter(|v| !self.skip.contains(v))
            .collect()
    }
}

/// The workloads at `sizes`, with their input files created in `scratch` (which must exist).
pub fn prepare(sizes: &Sizes, scratch: &Path) -> Result<Vec<Workload>> {
    let open_target = scratch.join("open-close-target");
    fs::write(&open_target, b"sandtrace benchmark\n")
        .with_context(|| format!("writing {}", open_target.display()))?;
    let source = scratch.join("compile.c");
    fs::write(&source, c_program(sizes.compile_functions))
        .with_context(|| format!("writing {}", source.display()))?;
    let binary = scratch.join("compile.out");

    Ok(vec![
        Workload {
            name: "start-up",
            description: "/bin/true".to_owned(),
            kind: Kind::StartUp,
            argv: vec!["/bin/true".into()],
            skip: &[],
        },
        Workload {
            name: EVENT_RATE_WORKLOAD,
            description: format!("{} getppid calls (perl)", sizes.getppid_calls),
            kind: Kind::Micro,
            argv: perl(&format!(
                "syscall({GETPPID}) for 1..{}",
                sizes.getppid_calls
            )),
            skip: &[],
        },
        Workload {
            name: "open-close",
            description: format!("{} open+close of one file (perl)", sizes.open_close_pairs),
            kind: Kind::Micro,
            argv: with_args(
                perl(&format!(
                    "use POSIX; my $f = shift; for (1..{}) {{ \
                     my $fd = POSIX::open($f, O_RDONLY) // die \"open $f: $!\"; \
                     POSIX::close($fd) }}",
                    sizes.open_close_pairs
                )),
                [open_target.into_os_string()],
            ),
            skip: &[],
        },
        Workload {
            name: "file-walk",
            description: format!("find {} -type f", sizes.walk_root),
            kind: Kind::Realistic,
            argv: ["find", sizes.walk_root, "-type", "f"]
                .map(OsString::from)
                .to_vec(),
            skip: &[],
        },
        Workload {
            name: FILE_WALK_X5_WORKLOAD,
            description: format!("find {} -type f, five times in a row (sh)", sizes.walk_root),
            kind: Kind::Realistic,
            argv: [
                "sh",
                "-c",
                "for i in 1 2 3 4 5; do find \"$0\" -type f >/dev/null || exit 1; done",
                sizes.walk_root,
            ]
            .map(OsString::from)
            .to_vec(),
            // strace -f would add minutes (five times file-walk's 30 s) and no target.
            skip: &[Variant::Strace],
        },
        Workload {
            name: "fork-exec",
            description: format!("{} fork+exec+wait of /bin/true (perl)", sizes.forks),
            kind: Kind::Realistic,
            argv: perl(&format!(
                "use POSIX; for (1..{}) {{ my $p = fork // die \"fork: $!\"; \
                 if (!$p) {{ exec {{ '/bin/true' }} 'true'; POSIX::_exit(127) }} \
                 waitpid($p, 0); $? == 0 or die \"/bin/true failed: $?\" }}",
                sizes.forks
            )),
            skip: &[],
        },
        Workload {
            name: "compile",
            description: format!(
                "gcc -O2 of a generated C file ({} functions), linked",
                sizes.compile_functions
            ),
            kind: Kind::Realistic,
            argv: with_args(
                ["gcc", "-O2", "-o"].map(OsString::from).to_vec(),
                [binary.into_os_string(), source.into_os_string()],
            ),
            skip: &[],
        },
    ])
}

/// The workload whose `-o` runs measure the event rate: one event per syscall, as fast as
/// one process can make them.
pub const EVENT_RATE_WORKLOAD: &str = "getppid";

/// The workload issue 16 times end to end, as a user would time a capture of a busy command:
/// five file walks in a row, sandtrace's start-up and drain included.
pub const FILE_WALK_X5_WORKLOAD: &str = "file-walk-x5";

/// The x86_64 syscall number of getppid (perl's `syscall` takes numbers).
const GETPPID: u32 = 110;

fn perl(script: &str) -> Vec<OsString> {
    vec!["perl".into(), "-e".into(), script.into()]
}

fn with_args(mut argv: Vec<OsString>, args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    argv.extend(args);
    argv
}

/// A C program of `functions` small loop functions, all called from `main` so that none is
/// optimised away: compile time grows linearly with `functions`.
fn c_program(functions: u32) -> String {
    let mut source = String::new();
    for i in 0..functions {
        let _ = writeln!(
            source,
            "int f{i}(int n) {{ int s = {i}; for (int j = 0; j < n; j++) s += (j * {}) ^ (s >> 3); return s; }}",
            i + 1
        );
    }
    source.push_str("int main(int argc, char **argv) {\n    (void)argv;\n    int t = 0;\n");
    for i in 0..functions {
        let _ = writeln!(source, "    t += f{i}(argc + {i});");
    }
    source.push_str("    return t == 42;\n}\n");
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_c_program_compiles_and_runs() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-c-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let source = dir.join("p.c");
        fs::write(&source, c_program(3)).unwrap();
        let binary = dir.join("p");
        let status = std::process::Command::new("gcc")
            .args(["-O2", "-Wall", "-Werror", "-o"])
            .arg(&binary)
            .arg(&source)
            .status()
            .expect("running gcc");
        assert!(status.success(), "gcc failed on:\n{}", c_program(3));
        let status = std::process::Command::new(&binary).status().unwrap();
        assert!(status.code().is_some(), "the generated program crashed");
        fs::remove_dir_all(&dir).unwrap();
    }
}
