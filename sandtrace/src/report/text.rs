//! The text form of a [`Report`].

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
};

use super::{
    Denial, Destination, FileRow, ProcessNode, ProcessRef, Report, WorthALook,
    outside_start_dir::temporary_dir, worth_a_look::is_credential,
};
use crate::output::{command_line::command_line, terminal::signal_name};

/// Longest file list shown per kind of access; `--format json` lists every file.
const LIST_LIMIT: usize = 40;
/// Ordinary files shown per process under "read"; credential-looking ones are all shown.
const READS_PER_PROCESS: usize = 10;

pub fn render(r: &Report) -> String {
    let mut out = String::new();
    header(&mut out, r);
    worth_a_look(&mut out, &r.worth_a_look);
    processes(&mut out, &r.processes);
    files(&mut out, r);
    writes_outside_start_dir(&mut out, r);
    network(&mut out, r);
    denials(&mut out, &r.denials);
    let _ = writeln!(out, "\nbusiest syscalls");
    if r.top_syscalls.is_empty() {
        let _ = writeln!(out, "  none recorded");
    }
    for c in &r.top_syscalls {
        let _ = writeln!(out, "  {:<18} {}", c.syscall, c.count);
    }
    out
}

fn header(out: &mut String, r: &Report) {
    let run = &r.run;
    let _ = writeln!(out, "sandtrace report of {}", r.log.display());
    let what = run.command.as_deref().unwrap_or("a command");
    let mode = run
        .mode
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    let how = match (run.ending.as_deref(), run.signal, run.exit_code) {
        (Some("timed_out"), ..) => "was killed by the timeout".to_owned(),
        (Some("interrupted"), ..) => "was interrupted".to_owned(),
        (Some("start_failed"), ..) => "could not be started".to_owned(),
        (_, Some(sig), _) => format!("was killed by {}", signal_name(sig)),
        (_, None, Some(code)) => format!("exited with status {code}"),
        (_, None, None) => "had not exited when the log ends".to_owned(),
    };
    let after = match (run.duration_ms, r.complete) {
        (Some(ms), true) => format!(" after {:.2} s", ms as f64 / 1000.0),
        (Some(ms), false) => format!(" (log spans {:.2} s)", ms as f64 / 1000.0),
        (None, _) => String::new(),
    };
    let _ = writeln!(out, "run: {what}{mode} {how}{after}");
    if let Some(run_as) = &run.run_as {
        let _ = writeln!(out, "  ran as {}", run_as.describe());
    }
    let lost = match (run.lost_events, run.incomplete_events) {
        (Some(0), Some(0)) => "no events lost".to_owned(),
        (Some(lost), Some(incomplete)) => format!(
            "{lost} events lost (raise --ring-buffer-size), {incomplete} syscall events without \
             arguments"
        ),
        _ => "lost events unknown (no summary line)".to_owned(),
    };
    let _ = writeln!(
        out,
        "  {} processes, {} syscalls ({} distinct), {} denied, {lost}",
        run.process_count, run.total_syscalls, run.unique_syscalls, run.denied_count
    );
    for problem in &r.problems {
        let _ = writeln!(out, "  note: {problem}");
    }
}

/// `1234 sh -c 'node install.js'`.
fn process(p: &ProcessRef) -> String {
    format!("{} {}", p.pid, p.command)
}

fn processes_list(list: &[ProcessRef]) -> String {
    list.iter().map(process).collect::<Vec<_>>().join("; ")
}

fn worth_a_look(out: &mut String, list: &[WorthALook]) {
    let _ = writeln!(out, "\nworth a look ({})", list.len());
    if list.is_empty() {
        let _ = writeln!(
            out,
            "  nothing: no shell or downloader started inside the run, no write to a start-up, \
             cron, systemd, autostart or editor file, no credential-looking file read, no \
             process left running at the end"
        );
    }
    let denied = |d: bool| if d { "denied " } else { "" };
    for item in list {
        let line = match item {
            WorthALook::ProgramStarted {
                program_kind,
                process: p,
                started_by,
                under_package_manager,
            } => {
                let mut line = format!("{program_kind} started: {}", process(p));
                let mut context = Vec::new();
                if let Some(by) = started_by {
                    context.push(format!("by {}", process(by)));
                }
                if let Some(pm) = under_package_manager
                    .as_ref()
                    .filter(|pm| Some(*pm) != started_by.as_ref())
                {
                    context.push(format!("under {}", process(pm)));
                }
                if !context.is_empty() {
                    let _ = write!(line, " ({})", context.join(", "));
                }
                line
            }
            WorthALook::PersistenceWrite {
                path,
                place,
                denied: d,
                processes,
            } => format!(
                "{}write to {place}: {} by {}",
                denied(*d),
                path.display(),
                processes_list(processes)
            ),
            WorthALook::CredentialRead {
                path,
                denied: d,
                processes,
            } => format!(
                "{}read of a credential-looking file: {} by {}",
                denied(*d),
                path.display(),
                processes_list(processes)
            ),
            WorthALook::KilledAtEnd { process: p } => {
                format!(
                    "still running after CMD exited, killed at the end: {}",
                    process(p)
                )
            }
        };
        let _ = writeln!(out, "  {line}");
    }
}

fn processes(out: &mut String, nodes: &[ProcessNode]) {
    let _ = writeln!(out, "\nprocesses ({})", nodes.len());
    let by_pid: HashMap<u32, &ProcessNode> = nodes.iter().map(|n| (n.pid, n)).collect();
    // Roots: CMD, and any process whose fork the log does not show.
    for root in nodes
        .iter()
        .filter(|n| n.parent.is_none_or(|p| !by_pid.contains_key(&p)))
    {
        tree(out, root, &by_pid, "  ", "");
    }
}

fn tree(
    out: &mut String,
    node: &ProcessNode,
    by_pid: &HashMap<u32, &ProcessNode>,
    prefix: &str,
    branch: &str,
) {
    let _ = writeln!(out, "{prefix}{branch}{}", describe(node));
    let child_prefix = format!(
        "{prefix}{}",
        match branch {
            "" => "",
            "└─ " => "   ",
            _ => "│  ",
        }
    );
    let children: Vec<&ProcessNode> = node
        .children
        .iter()
        .filter_map(|pid| by_pid.get(pid).copied())
        .collect();
    for (i, child) in children.iter().enumerate() {
        let branch = if i + 1 == children.len() {
            "└─ "
        } else {
            "├─ "
        };
        tree(out, child, by_pid, &child_prefix, branch);
    }
}

fn describe(n: &ProcessNode) -> String {
    let mut text = n.pid.to_string();
    if n.execs.is_empty() {
        let _ = write!(text, " [{}]", n.comm);
    }
    for (i, exec) in n.execs.iter().enumerate() {
        text += if i == 0 { " " } else { " → " };
        text += &exec.path;
        if !exec.argv.is_empty() {
            let _ = write!(text, " ({})", command_line(&exec.argv, exec.argv_truncated));
        }
    }
    if n.threads > 0 {
        let _ = write!(
            text,
            " (+{} thread{})",
            n.threads,
            if n.threads == 1 { "" } else { "s" }
        );
    }
    match (n.signal, n.exit_code) {
        (Some(sig), _) => {
            let _ = write!(text, "  killed by {}", signal_name(sig));
        }
        (None, Some(code)) => {
            let _ = write!(text, "  exit {code}");
        }
        (None, None) => text += "  (no exit recorded)",
    }
    text
}

/// `word` as a shell would need it written: as it is when it is plain, else single-quoted.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn files(out: &mut String, r: &Report) {
    let _ = writeln!(
        out,
        "\nfiles (as the processes named them; ./ is the directory CMD started in)"
    );
    reads(out, r);
    for kind in ["written", "executed"] {
        let rows: Vec<&FileRow> = r
            .files
            .iter()
            .filter(|f| match kind {
                "written" => f.usage.write > 0,
                _ => f.usage.exec() > 0,
            })
            .collect();
        let _ = writeln!(out, "  {kind} ({})", rows.len());
        for f in rows.iter().take(LIST_LIMIT) {
            let _ = writeln!(out, "    {}{}", f.path.display(), notes(f));
        }
        if rows.len() > LIST_LIMIT {
            let _ = writeln!(
                out,
                "    … and {} more (--format json lists them all)",
                rows.len() - LIST_LIMIT
            );
        }
    }
    if r.unresolved_count > 0 {
        let _ = writeln!(
            out,
            "  not named ({}): the replay of descriptors and working directories could not \
             name these paths",
            r.unresolved_count
        );
        for u in &r.unresolved {
            let path = if u.path.is_empty() {
                String::new()
            } else {
                format!(" {:?}", u.path)
            };
            let _ = writeln!(out, "    {}{path}: {}", u.syscall, u.why.describe());
        }
    }
}

/// Reads by process (in the order the processes appear), credential-looking files first and
/// never cut.
fn reads(out: &mut String, r: &Report) {
    let read: Vec<&FileRow> = r.files.iter().filter(|f| f.usage.read > 0).collect();
    let mut by_pid: BTreeMap<u32, Vec<&FileRow>> = BTreeMap::new();
    for f in &read {
        for &pid in &f.usage.read_by {
            by_pid.entry(pid).or_default().push(f);
        }
    }
    let processes = by_pid.len();
    let plural = if processes == 1 { "" } else { "es" };
    let _ = writeln!(
        out,
        "  read ({} files, by {processes} process{plural})",
        read.len()
    );
    let nodes: HashMap<u32, &ProcessNode> = r.processes.iter().map(|n| (n.pid, n)).collect();
    let order: HashMap<u32, usize> = r
        .processes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.pid, i))
        .collect();
    let mut groups: Vec<(u32, Vec<&FileRow>)> = by_pid.into_iter().collect();
    groups.sort_by_key(|(pid, _)| order.get(pid).copied().unwrap_or(usize::MAX));
    for (pid, files) in groups {
        let who = ProcessRef::find(&nodes, pid);
        let _ = writeln!(out, "    {} ({})", process(&who), files.len());
        let (credentials, ordinary): (Vec<&FileRow>, Vec<&FileRow>) =
            files.into_iter().partition(|f| is_credential(&f.path));
        for f in &credentials {
            let _ = writeln!(
                out,
                "      {}  (credential-looking){}",
                f.path.display(),
                notes(f)
            );
        }
        for f in ordinary.iter().take(READS_PER_PROCESS) {
            let _ = writeln!(out, "      {}{}", f.path.display(), notes(f));
        }
        if ordinary.len() > READS_PER_PROCESS {
            let _ = writeln!(
                out,
                "      … and {} more (--format json lists them all)",
                ordinary.len() - READS_PER_PROCESS
            );
        }
    }
}

fn writes_outside_start_dir(out: &mut String, r: &Report) {
    let Some(start_dir) = &r.run.start_dir else {
        let _ = writeln!(
            out,
            "\nwrites outside the directory CMD started in: unknown (the log does not record \
             the directory)"
        );
        return;
    };
    let writes = &r.writes_outside_start_dir;
    let _ = writeln!(
        out,
        "\nwrites outside the directory CMD started in, {start_dir} ({})",
        writes.len()
    );
    if writes.is_empty() {
        let _ = writeln!(out, "  none");
    }
    let (temporary, lasting): (Vec<_>, Vec<_>) = writes.iter().partition(|w| w.temporary);
    for w in lasting.iter().take(LIST_LIMIT) {
        let _ = writeln!(
            out,
            "  {}  by {}",
            w.path.display(),
            processes_list(&w.processes)
        );
    }
    if lasting.len() > LIST_LIMIT {
        let _ = writeln!(
            out,
            "  … and {} more (--format json lists them all)",
            lasting.len() - LIST_LIMIT
        );
    }
    // Temporary files, collapsed: many builds write hundreds.
    let mut per_dir: BTreeMap<&str, usize> = BTreeMap::new();
    for w in &temporary {
        *per_dir
            .entry(temporary_dir(&w.path).unwrap_or("?"))
            .or_default() += 1;
    }
    for (dir, n) in per_dir {
        let plural = if n == 1 { "" } else { "s" };
        let _ = writeln!(
            out,
            "  {dir}: {n} file{plural} (temporary; --format json lists them)"
        );
    }
}

/// `registry.npmjs.org:443 tcp (104.16.1.34, 104.16.2.34)` or `127.0.0.1:9 tcp`.
fn destination(d: &Destination) -> String {
    let with_port = |name: &str| match d.port {
        Some(port) if name.contains(':') => format!("[{name}]:{port}"),
        Some(port) => format!("{name}:{port}"),
        None => name.to_owned(),
    };
    match &d.host {
        Some(host) => format!(
            "{} {} ({})",
            with_port(host),
            d.protocol,
            d.addresses.join(", ")
        ),
        None => format!("{} {}", with_port(&d.addresses.join(", ")), d.protocol),
    }
}

fn notes(f: &FileRow) -> String {
    let u = &f.usage;
    let notes: Vec<&str> = [
        (u.directory, "directory"),
        (u.created_dir, "created directory"),
        (u.created, "created"),
        (u.removed, "removed or renamed"),
        (u.cut, "longer path cut by the trace"),
    ]
    .into_iter()
    .filter_map(|(on, note)| on.then_some(note))
    .collect();
    if notes.is_empty() {
        String::new()
    } else {
        format!("  ({})", notes.join(", "))
    }
}

fn network(out: &mut String, r: &Report) {
    let _ = writeln!(out, "\nnetwork");
    if !r.destinations.is_empty() {
        let _ = writeln!(out, "  destinations ({}):", r.destinations.len());
    }
    for d in &r.destinations {
        let mut outcome = format!("{}×", d.attempts);
        if d.denied > 0 {
            let _ = write!(outcome, ", {} denied", d.denied);
        }
        if d.redirected > 0 {
            let _ = write!(outcome, ", {} sent to the session's resolver", d.redirected);
        }
        let _ = writeln!(
            out,
            "    {}: {outcome}, by {}",
            destination(d),
            processes_list(&d.processes)
        );
    }
    if r.network.is_empty() && r.network_decisions.is_empty() && r.dns.is_none() {
        let _ = writeln!(
            out,
            "  no connect, bind, listen or addressed sendto on any socket"
        );
    }
    if !r.network_decisions.is_empty() {
        let _ = writeln!(out, "  decided by the policy:");
    }
    for d in &r.network_decisions {
        let verdict = match d.action.as_str() {
            "deny" => "denied",
            "redirect" => "sent to the session's resolver",
            _ => "allowed",
        };
        let _ = writeln!(
            out,
            "    {}: {verdict} {}×",
            super::describe_network(d),
            d.count
        );
    }
    if let Some(dns) = r.dns.as_ref().filter(|d| d.answered + d.refused > 0) {
        let _ = writeln!(
            out,
            "  dns: {} queries answered, {} refused",
            dns.answered, dns.refused
        );
        if !dns.answered_names.is_empty() {
            let _ = writeln!(out, "    answered: {}", dns.answered_names.join(", "));
        }
        if !dns.refused_names.is_empty() {
            let _ = writeln!(out, "    refused: {}", dns.refused_names.join(", "));
        }
    }
    if let Some(dns) = r.dns.as_ref().filter(|d| d.observed > 0) {
        let _ = writeln!(
            out,
            "  dns: {} queries seen in the session's traffic",
            dns.observed
        );
        if !dns.observed_names.is_empty() {
            let _ = writeln!(out, "    names: {}", dns.observed_names.join(", "));
        }
    }
    if !r.network.is_empty() {
        let _ = writeln!(
            out,
            "  socket calls (the syscall trace records no addresses):"
        );
    }
    for n in &r.network {
        let calls = n.usage.calls;
        let plural = if calls == 1 { "" } else { "s" };
        let mut line = format!("    {} {}: {calls} call{plural}", n.family, n.call);
        if n.usage.failed > 0 {
            let errors: Vec<String> = n
                .usage
                .errors
                .iter()
                .map(|(e, c)| format!("{e} {c}"))
                .collect();
            let _ = write!(line, ", {} failed ({})", n.usage.failed, errors.join(", "));
        }
        let _ = writeln!(out, "{line}");
    }
}

fn denials(out: &mut String, denials: &[Denial]) {
    let total: u64 = denials.iter().map(|d| d.count).sum();
    let _ = writeln!(out, "\ndenials ({total})");
    if denials.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for d in denials {
        let why = match &d.rule {
            Some(rule) => format!("{} rule {:?} ({})", rule.kind, rule.pattern, rule.source),
            None => d.why.clone(),
        };
        let running = d
            .command
            .as_deref()
            .map(|c| format!(", running {c}"))
            .unwrap_or_default();
        // The resolver's denials name no process.
        let first = match d.pid {
            0 => String::new(),
            pid => format!(" (first by {}, pid {pid}{running})", d.comm),
        };
        let _ = writeln!(out, "  {}: {why}; {}×{first}", d.what, d.count);
    }
}
