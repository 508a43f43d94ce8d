//! Human-readable output on stderr (stdout belongs to CMD): events streamed at `-v`..`-vvv`
//! and the end-of-run summary.

use std::{
    collections::HashMap,
    io::{IsTerminal as _, Write as _},
    path::Path,
    sync::{Mutex, MutexGuard, PoisonError},
};

use super::{
    Labels, SyscallAction, access_names,
    command_line::command_line,
    errno_name, is_error,
    network::{endpoint, family_name, op_name, protocol_name, socket_op_name},
    operation_and_access,
    summary::{Ending, Summary},
};
use crate::{
    dns::{Decision, DnsQuery, ObservedQuery},
    events::{ArgList, Event, EventBody, KernelText, Task},
    output::jsonl::decode_wait_status,
    syscall_table,
};

/// What `-v` levels show while the session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Only the summary.
    Quiet = 0,
    /// Process lifecycle and denials.
    Processes = 1,
    /// Also syscalls that failed.
    FailedSyscalls = 2,
    /// Every syscall.
    AllSyscalls = 3,
}

impl Verbosity {
    pub fn from_count(v: u8) -> Self {
        match v {
            0 => Self::Quiet,
            1 => Self::Processes,
            2 => Self::FailedSyscalls,
            _ => Self::AllSyscalls,
        }
    }
}

pub struct Terminal {
    verbosity: Verbosity,
    color: bool,
    /// "\r\n" on a terminal: while CMD's terminal is relayed, the user's is in raw mode
    /// (see `crate::pty`), where a bare "\n" would not return the cursor.
    line_end: &'static str,
    /// The command line of each process's current program (a forked child's is its
    /// parent's), to name where a denied exec came from: the denied program never ran.
    programs: Mutex<HashMap<u32, String>>,
    /// The last line printed and how many times it came again since, unprinted: a command that
    /// fails the same call in a loop shows one line and a count, not a line a call.
    last_line: Mutex<(String, u64)>,
}

/// An exec's command line: its arguments, or the path when it has none.
fn exec_command_line(filename: &KernelText<'_>, argv: &ArgList<'_>, truncated: bool) -> String {
    let args: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
    if args.is_empty() {
        filename.to_string()
    } else {
        command_line(&args, truncated)
    }
}

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const CYAN: &str = "\x1b[36m";

impl Terminal {
    /// Colours only on a terminal, and never with `--no-color` or `NO_COLOR` set (non-empty).
    pub fn new(verbosity: Verbosity, no_color_flag: bool) -> Self {
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let on_terminal = std::io::stderr().is_terminal();
        let color = !no_color_flag && !no_color_env && on_terminal;
        let line_end = if on_terminal { "\r\n" } else { "\n" };
        Self {
            verbosity,
            color,
            line_end,
            programs: Mutex::default(),
            last_line: Mutex::default(),
        }
    }

    /// Prints `line`, or counts it when it repeats the last one.
    fn print_line(&self, line: String) {
        let mut last = self
            .last_line
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if line == last.0 {
            last.1 += 1;
            return;
        }
        self.print_repeats(&mut last);
        eprint!("{line}{}", self.line_end);
        *last = (line, 0);
    }

    /// Says how many times the last line came again, if it did.
    fn print_repeats(&self, last: &mut (String, u64)) {
        if last.1 > 0 {
            let times = if last.1 == 1 { "time" } else { "times" };
            let text = format!("  (the line above {} more {times})", last.1);
            eprint!("{}{}", self.paint(DIM, &text), self.line_end);
            last.1 = 0;
        }
    }

    /// A panic while it was held cannot leave the table half-written: it is used anyway.
    fn lock_programs(&self) -> MutexGuard<'_, HashMap<u32, String>> {
        self.programs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps [`Self::programs`] up to date, whatever the verbosity shows.
    fn follow_programs(&self, t: &Task<'_>, body: &EventBody) {
        let mut programs = self.lock_programs();
        match body {
            EventBody::Exec {
                filename,
                argv,
                argv_truncated,
                ..
            } => {
                let line = exec_command_line(filename, argv, *argv_truncated);
                programs.insert(t.tgid, line);
            }
            EventBody::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => {
                if let Some(line) = programs.get(&t.tgid).cloned() {
                    programs.insert(*child_tgid, line);
                }
            }
            EventBody::Exit { .. } => {
                programs.remove(&t.tgid);
            }
            _ => {}
        }
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.color {
            format!("{style}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }

    /// Whether the verbosity asks for the event. Checked before anything is formatted: most
    /// events of a busy session are not shown.
    fn shows(&self, body: &EventBody) -> bool {
        match body {
            EventBody::Syscall(s) => {
                let action = s.action;
                let failed = s.ret.is_some_and(is_error);
                // Denials always show, like every other denial; log_only hits (often frequent,
                // like mmap) from -v on, and always in the event log and the summary.
                match self.verbosity {
                    Verbosity::Quiet => action == SyscallAction::Deny,
                    Verbosity::Processes => action != SyscallAction::Allow,
                    Verbosity::FailedSyscalls => failed || action != SyscallAction::Allow,
                    Verbosity::AllSyscalls => true,
                }
            }
            // Denials always show; allowed decisions are only reported at -v.
            EventBody::File(_) | EventBody::Network(_) | EventBody::SeccompKill(_) => true,
            // Shown once decoded, by `observed_dns`.
            EventBody::DnsPacket(_) => false,
            EventBody::Socket(_)
            | EventBody::ForkRefused { .. }
            | EventBody::Fork { .. }
            | EventBody::Exec { .. }
            | EventBody::Exit { .. } => self.verbosity >= Verbosity::Processes,
        }
    }

    /// Prints the event if the verbosity asks for it.
    pub fn event(&self, event: &Event, labels: &Labels) {
        self.follow_programs(&event.task, &event.body);
        if !self.shows(&event.body) {
            return;
        }
        let t = &event.task;
        // Packets are checked as they arrive, outside any task of the session.
        let who = if t.tgid == 0 {
            self.paint(DIM, "[incoming]")
        } else {
            self.paint(DIM, &format!("[{} {}]", t.tgid, t.comm))
        };
        let line = match &event.body {
            EventBody::Syscall(s) => {
                let name = syscall_table::name(s.nr).unwrap_or("unknown");
                let path = s.path.map(|p| format!(" {p:?}")).unwrap_or_default();
                let ret = match s.ret {
                    None => String::new(),
                    Some(r) => match errno_name(r) {
                        Some(e) => format!(" = {}", self.paint(RED, &format!("-1 {e}"))),
                        None => format!(" = {r}"),
                    },
                };
                let tag = match s.action {
                    SyscallAction::Allow => String::new(),
                    SyscallAction::Deny => format!(" {}", self.paint(RED, "[denied]")),
                    SyscallAction::LogOnly => format!(" {}", self.paint(YELLOW, "[log_only]")),
                };
                format!("{who} {name}{path}{ret}{tag}")
            }
            EventBody::File(f) => {
                let verdict = if f.verdict.is_denied() {
                    self.paint(RED, "denied")
                } else {
                    self.paint(GREEN, "allowed")
                };
                let rule = f
                    .rule
                    .and_then(|r| labels.file_rules.label(r))
                    .map(|r| format!(" by {} rule `{}` ({})", r.kind, r.pattern, r.source))
                    .unwrap_or_else(|| format!(" ({})", f.verdict.as_str()));
                let operation = f.op.as_str();
                let access: Vec<&str> = access_names(f.needed).collect();
                let program = if f.verdict.is_denied() && operation == "exec" {
                    self.lock_programs().get(&t.tgid).cloned()
                } else {
                    None
                };
                let who = match program {
                    Some(line) => self.paint(DIM, &format!("[{} {}: {line}]", t.tgid, t.comm)),
                    None => who,
                };
                format!(
                    "{who} {verdict} {} {:?}{rule}{}",
                    operation_and_access(operation, &access),
                    f.path,
                    in_regime(f.regime, labels)
                )
            }
            EventBody::Network(n) => {
                let verdict = match n.verdict {
                    sandtrace_common::network::NetVerdict::RedirectedDns => {
                        self.paint(CYAN, "redirected")
                    }
                    v if v.is_denied() => self.paint(RED, "denied"),
                    _ => self.paint(GREEN, "allowed"),
                };
                let target = n
                    .addr
                    .map(|(a, p)| match labels.names.host(n.name, Some(a)) {
                        Some(host) => format!(" {host} ({})", endpoint(a, p)),
                        None => format!(" {}", endpoint(a, p)),
                    })
                    .unwrap_or_default();
                let from = n
                    .peer
                    .map(|(a, p)| format!(" from {}", endpoint(a, p)))
                    .unwrap_or_default();
                // A regime's refusal: the base's rule would have allowed it.
                let rule = n.rule.filter(|_| n.regime.is_none());
                let why =
                    match rule.and_then(|(list, index)| labels.network_rules.label(list, index)) {
                        Some(r) => format!("by {} rule `{}` ({})", r.kind, r.pattern, r.source),
                        None => format!("({})", labels.network_rules.reason(n)),
                    };
                let why = format!("{why}{}", in_regime(n.regime, labels));
                format!(
                    "{who} {verdict} {} {}{target}{from} {why}",
                    protocol_name(n.protocol, n.sock_type),
                    op_name(n.op),
                )
            }
            EventBody::DnsPacket(_) => return,
            EventBody::Socket(s) => {
                let addr = crate::sockaddr::SockAddr::parse(s.addr)
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default();
                let ret = match errno_name(s.ret) {
                    Some(e) => self.paint(RED, &format!("-1 {e}")),
                    None => s.ret.to_string(),
                };
                let on = match s.op {
                    sandtrace_common::network::SocketOp::Socket => family_name(s.domain),
                    _ => format!("fd {}", s.fd).into(),
                };
                format!("{who} {} {on}{addr} = {ret}", socket_op_name(s.op))
            }
            EventBody::SeccompKill(k) => {
                let name = super::foreign_syscall_name(k)
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                format!(
                    "{who} {} by the seccomp filter: {} syscall {}{name}; {}",
                    self.paint(RED, "killed"),
                    k.abi.as_str(),
                    k.nr,
                    super::FOREIGN_ABI_REASON
                )
            }
            EventBody::ForkRefused { nr, errno } => format!(
                "{who} {} {} failed with {:?}: {}",
                self.paint(RED, "fork refused"),
                syscall_table::name(*nr).unwrap_or("clone"),
                nix::errno::Errno::from_raw(*errno),
                super::jsonl::FORK_REFUSED_REASON
            ),
            EventBody::Fork {
                child_tgid,
                child_pid,
            } => {
                let what = if child_pid == child_tgid {
                    "process"
                } else {
                    "thread"
                };
                format!("{who} {} new {what} {child_pid}", self.paint(CYAN, "fork"))
            }
            EventBody::Exec {
                filename,
                argv,
                argv_truncated,
                regimes,
                ..
            } => {
                let regimes = match labels.regimes_in(*regimes).as_slice() {
                    [] => String::new(),
                    names => format!(" (after_exec: {})", names.join(", ")),
                };
                let args = match argv.iter().next() {
                    None => String::new(),
                    Some(_) => format!(": {}", exec_command_line(filename, argv, *argv_truncated)),
                };
                format!(
                    "{who} {} {filename}{args}{regimes}",
                    self.paint(CYAN, "exec")
                )
            }
            EventBody::Exit { status } => {
                let (code, signal) = decode_wait_status(*status);
                let how = match signal {
                    Some(sig) => format!("killed by {}", signal_name(sig)),
                    None => format!("exit {code}"),
                };
                format!("{who} {} {how}", self.paint(CYAN, "exited"))
            }
        };
        self.print_line(line);
    }

    /// Prints a query of the session's resolver: refusals and failures always, like every
    /// denial; answers from `-v` on.
    pub fn dns(&self, query: &DnsQuery, labels: &Labels) {
        let verdict = match query.decision {
            Decision::Deny => self.paint(RED, "denied"),
            // An allowed name the resolver could not answer (upstream down, table full): the
            // command's connection will fail, so it shows like a denial.
            Decision::Allow if query.response == crate::dns::Response::ServFail => {
                self.paint(YELLOW, "failed")
            }
            Decision::Allow if self.verbosity >= Verbosity::Processes => {
                self.paint(GREEN, "answered")
            }
            Decision::Allow => return,
        };
        // The query's socket, not its process: the resolver sees only the address.
        let who = self.paint(DIM, &format!("[dns {}]", query.client));
        self.print_line(format!(
            "{who} {verdict} {}",
            super::dns::describe(query, labels)
        ));
    }

    /// Prints a query seen in the session's traffic (no resolver of its own) from `-v` on;
    /// traffic on port 53 that is not DNS always, since it may carry data out.
    pub fn observed_dns(&self, query: &ObservedQuery) {
        let verdict = if query.name.is_empty() {
            self.paint(YELLOW, "unreadable")
        } else if self.verbosity >= Verbosity::Processes {
            self.paint(CYAN, "looked up")
        } else {
            return;
        };
        let who = self.paint(DIM, &format!("[dns {}]", query.client));
        self.print_line(format!(
            "{who} {verdict} {}",
            super::dns::describe_observed(query)
        ));
    }

    /// A line about the run itself (warnings, timeout), prefixed `sandtrace:`.
    pub fn note(&self, text: &str) {
        self.print_line(format!("{} {text}", self.paint(BOLD, "sandtrace:")));
    }

    pub fn summary(&self, s: &Summary, command: &str, log: Option<&Path>, capture: Option<&Path>) {
        self.print_repeats(
            &mut self
                .last_line
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let status = match s.ending {
            Ending::TimedOut => self.paint(RED, "was killed by the timeout"),
            Ending::Interrupted => self.paint(YELLOW, "was interrupted"),
            Ending::StartFailed => self.paint(RED, "could not be started"),
            Ending::Exited => match s.signal {
                Some(sig) => self.paint(RED, &format!("was killed by {}", signal_name(sig))),
                None if s.exit_code == 0 => self.paint(GREEN, "exited with status 0"),
                None => self.paint(RED, &format!("exited with status {}", s.exit_code)),
            },
        };
        let secs = s.duration_ms as f64 / 1000.0;
        let mut out = String::new();
        out += &format!(
            "{} `{command}` {status} after {secs:.2} s ({})\n",
            self.paint(BOLD, "sandtrace:"),
            s.mode
        );
        let row = |label: &str, value: String| format!("  {label:<13}{value}\n");
        out += &row("ran as", s.run_as.describe());
        if !s.removed_environment.is_empty() {
            out += &row(
                "environment",
                format!(
                    "{} variables removed: {}",
                    s.removed_environment.len(),
                    s.removed_environment.join(", ")
                ),
            );
        }
        out += &row("processes", s.process_count.to_string());
        out += &row(
            "syscalls",
            format!("{} ({} distinct)", s.total_syscalls, s.unique_syscalls),
        );
        if !s.syscall_counts.is_empty() {
            let top: Vec<String> = s
                .syscall_counts
                .iter()
                .take(8)
                .map(|c| format!("{} {}", c.syscall, c.count))
                .collect();
            out += &row("top", top.join(", "));
        }
        let denied = if s.denied_count > 0 {
            let d = &s.denials;
            let parts: Vec<String> = [
                (d.files, "files"),
                (d.network, "network"),
                (d.syscalls, "syscalls"),
                (d.processes, "forks"),
            ]
            .into_iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{what} {n}"))
            .collect();
            self.paint(RED, &format!("{} ({})", s.denied_count, parts.join(", ")))
        } else {
            "0".to_owned()
        };
        out += &row("denied", denied);
        if let Some(dns) = &s.dns {
            // The summary keeps the first MAX_REFUSED_NAMES; a few say enough here.
            let some_of = |names: &[String]| {
                const SHOWN: usize = 5;
                if names.is_empty() {
                    return String::new();
                }
                let more =
                    if names.len() > SHOWN || names.len() >= super::summary::MAX_REFUSED_NAMES {
                        ", ..."
                    } else {
                        ""
                    };
                format!(" ({}{more})", names[..names.len().min(SHOWN)].join(", "))
            };
            let text = if dns.observed > 0 {
                format!(
                    "{} queries seen in the session's traffic{}",
                    dns.observed,
                    some_of(&dns.observed_names)
                )
            } else {
                format!(
                    "{} queries answered, {} refused{}",
                    dns.answered,
                    dns.refused,
                    some_of(&dns.refused_names)
                )
            };
            out += &row(
                "dns",
                if dns.refused > 0 {
                    self.paint(RED, &text)
                } else {
                    text
                },
            );
        }
        if s.log_only_count > 0 {
            out += &row("log_only", format!("{} calls", s.log_only_count));
        }
        if !s.unenforced.is_empty() {
            out += &row(
                "unenforced",
                self.paint(
                    YELLOW,
                    &format!(
                        "{} rules (listed before the command started)",
                        s.unenforced.len()
                    ),
                ),
            );
        }
        if !s.approximated.is_empty() {
            out += &row(
                "approximated",
                self.paint(
                    YELLOW,
                    &format!(
                        "{} rules (Landlock; listed before the command started)",
                        s.approximated.len()
                    ),
                ),
            );
        }
        let lost = s.lost_events.to_string();
        out += &row(
            "lost events",
            if s.lost_events > 0 {
                self.paint(
                    YELLOW,
                    &format!("{lost} (ring buffer full; raise --ring-buffer-size)"),
                )
            } else {
                lost
            },
        );
        if let Some(log) = log {
            out += &row("event log", log.display().to_string());
        }
        if let Some(capture) = capture {
            out += &row("capture", capture.display().to_string());
        }
        let _ = std::io::stderr().write_all(out.as_bytes());
    }
}

/// `SIGKILL` etc. for a signal number.
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// ` in regime "NAME"` for a decision by an `[[after_exec]]` regime's rules; empty otherwise.
fn in_regime(regime: Option<usize>, labels: &Labels) -> String {
    regime
        .map(|r| format!(" in after_exec regime \"{}\"", labels.regime_name(r)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tgid: u32, comm: &'static [u8]) -> Task<'static> {
        Task {
            pid: tgid,
            tgid,
            comm: KernelText::until_nul(comm),
        }
    }

    /// A forked child runs its parent's program until it executes its own.
    #[test]
    fn follows_each_process_program_through_fork_exec_and_exit() {
        let terminal = Terminal::new(Verbosity::Quiet, true);
        let exec = EventBody::Exec {
            old_pid: 7,
            filename: KernelText::until_nul(b"/usr/bin/php"),
            interpreter: KernelText::until_nul(b""),
            argv: ArgList::new(b"php\0composer.phar\0install\0"),
            argv_truncated: false,
            cwd: KernelText::until_nul(b"/work"),
            uid: 0,
            gid: 0,
            regimes: 0,
        };
        terminal.follow_programs(&task(7, b"php"), &exec);
        let fork = EventBody::Fork {
            child_pid: 8,
            child_tgid: 8,
        };
        terminal.follow_programs(&task(7, b"php"), &fork);
        let programs = |pid| terminal.programs.lock().unwrap().get(&pid).cloned();
        assert_eq!(programs(7).as_deref(), Some("php composer.phar install"));
        assert_eq!(programs(8).as_deref(), Some("php composer.phar install"));
        terminal.follow_programs(&task(8, b"php"), &EventBody::Exit { status: 0 });
        assert_eq!(programs(8), None);
    }
}
