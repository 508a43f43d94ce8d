//! The malformed-policy corpus in `tests/policies/`: every file must be rejected by
//! `sandtrace policy check` with exit status 2, and with exactly the errors (position, wording
//! and hint) its `# expect:` comments list.
//!
//! Header format, one block per expected error, in file order:
//! `# expect: LINE:COLUMN: MESSAGE` (or `# expect: file: MESSAGE` for the whole file, or
//! `# expect-prefix: LINE:COLUMN: START` where the wording comes from the TOML parser),
//! optionally followed by `# hint: HINT`.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use sandtrace::cli::{Cli, Command};
use sandtrace::exit::USAGE as EXIT_INVALID_POLICY;
use sandtrace::plan::{KernelFeatures, PidsController};
use sandtrace::policy::command::execute;
use sandtrace::policy::diagnostic::Position;

const CORPUS: &str = "tests/policies";

#[derive(Debug)]
struct Expected {
    position: Option<Position>,
    message: String,
    exact: bool,
    hint: Option<String>,
}

fn expectations(path: &Path, text: &str) -> Vec<Expected> {
    if text.is_empty() {
        // A zero-byte file cannot carry its expectation.
        return vec![Expected {
            position: None,
            message: "the policy file is empty".to_owned(),
            exact: true,
            hint: Some(
                "write at least one section, e.g. [filesystem]; without --policy the built-in \
                 default applies (`sandtrace policy show --default` prints it)"
                    .to_owned(),
            ),
        }];
    }
    let mut expected: Vec<Expected> = Vec::new();
    for line in text.lines() {
        if let Some(hint) = line.strip_prefix("# hint: ") {
            let last = expected
                .last_mut()
                .unwrap_or_else(|| panic!("{}: `# hint:` before any `# expect:`", path.display()));
            last.hint = Some(hint.to_owned());
            continue;
        }
        let (rest, exact) = if let Some(rest) = line.strip_prefix("# expect: ") {
            (rest, true)
        } else if let Some(rest) = line.strip_prefix("# expect-prefix: ") {
            (rest, false)
        } else {
            continue;
        };
        let (position, message) = match rest.strip_prefix("file: ") {
            Some(message) => (None, message),
            None => {
                let mut parts = rest.splitn(3, ':');
                let mut number = || -> usize {
                    let part = parts.next().unwrap_or_default();
                    part.parse()
                        .unwrap_or_else(|_| panic!("{}: bad position in {line:?}", path.display()))
                };
                let (line_no, column) = (number(), number());
                let message = parts.next().unwrap_or_default().trim_start();
                (
                    Some(Position {
                        line: line_no,
                        column,
                    }),
                    message,
                )
            }
        };
        expected.push(Expected {
            position,
            message: message.to_owned(),
            exact,
            hint: None,
        });
    }
    assert!(
        !expected.is_empty(),
        "{} has no `# expect:` line",
        path.display()
    );
    expected
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("cannot read {CORPUS}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_is_large_enough() {
    let n = corpus_files().len();
    assert!(n >= 25, "the malformed corpus has only {n} files");
}

#[test]
fn load_reports_exactly_the_expected_errors() {
    for path in corpus_files() {
        let text = std::fs::read_to_string(&path).expect("corpus file is readable");
        let expected = expectations(&path, &text);
        let diagnostics = match sandtrace::policy::load(&path) {
            Ok(policy) => panic!("{} was accepted: {policy:?}", path.display()),
            Err(diagnostics) => diagnostics,
        };
        let found: Vec<_> = diagnostics.iter().collect();
        assert_eq!(
            found.len(),
            expected.len(),
            "{}: expected {} errors, got:\n{diagnostics}",
            path.display(),
            expected.len()
        );
        for (diagnostic, expected) in found.iter().zip(&expected) {
            let context = || {
                format!(
                    "{}: expected {expected:?}, got:\n{diagnostic}",
                    path.display()
                )
            };
            assert_eq!(diagnostic.position(), expected.position, "{}", context());
            if expected.exact {
                assert_eq!(diagnostic.message, expected.message, "{}", context());
                assert_eq!(diagnostic.hint, expected.hint, "{}", context());
            } else {
                assert!(
                    diagnostic.message.starts_with(&expected.message),
                    "{}",
                    context()
                );
            }
        }
    }
}

#[test]
fn policy_check_exits_2_and_prints_positions() {
    for path in corpus_files() {
        let text = std::fs::read_to_string(&path).expect("corpus file is readable");
        let expected = expectations(&path, &text);
        let file = path.to_str().expect("corpus paths are UTF-8");
        let cli = Cli::try_parse_from(["sandtrace", "policy", "check", file])
            .unwrap_or_else(|e| panic!("command line does not parse: {e}"));
        let Command::Policy(command) = cli.command else {
            panic!("`policy check` parsed as another command");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = execute(&command.to_request(), &bpf_lsm_kernel(), &mut out, &mut err);
        let err = String::from_utf8(err).expect("diagnostics are UTF-8");
        assert_eq!(
            status, EXIT_INVALID_POLICY,
            "{file}: exit status; stderr:\n{err}"
        );
        assert!(
            out.is_empty(),
            "{file}: nothing on stdout, got {:?}",
            String::from_utf8_lossy(&out)
        );
        for expected in &expected {
            let location = match &expected.position {
                Some(Position { line, column }) => format!("--> {file}:{line}:{column}\n"),
                None => format!("--> {file}\n"),
            };
            let header = format!("error: {}", expected.message);
            let block = err
                .split("\n\n")
                .find(|block| block.starts_with(&header) && block.contains(&location))
                .unwrap_or_else(|| {
                    panic!("{file}: no block `{header}` at `{location}` in:\n{err}")
                });
            if let Some(hint) = &expected.hint {
                let hint_line = format!("= hint: {hint}");
                assert!(
                    block.lines().any(|l| l.trim_start() == hint_line),
                    "{file}: hint missing in:\n{block}"
                );
            }
        }
        let n = expected.len();
        let summary = format!(
            "error: policy rejected ({n} error{})",
            if n == 1 { "" } else { "s" }
        );
        assert!(
            err.trim_end().ends_with(&summary),
            "{file}: summary missing in:\n{err}"
        );
    }
}

/// `policy check` reports the mechanisms of a kernel with BPF LSM, Landlock and cgroup v2 pids.
fn bpf_lsm_kernel() -> KernelFeatures {
    KernelFeatures {
        bpf_lsm: Ok(()),
        landlock_abi: Ok(6),
        memfd_noexec: true,
        pids: PidsController::CgroupV2,
        missing_lsm_hooks: Vec::new(),
    }
}
