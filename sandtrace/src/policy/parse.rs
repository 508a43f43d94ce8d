//! Reading a policy file: TOML with positions, every section and key checked, every error
//! collected before giving up.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::capability::Capability;
use super::diagnostic::{Diagnostic, Diagnostics, Location, Problem, SourceText, Span};
use super::environment::{self, NamePattern};
use super::glob::PathEntry;
use super::hosts::HostRule;
use super::model::{
    FilesystemRules, Located, NetworkList, NetworkRules, Origin, PathKind, Policy, Regime,
};
use super::network::AddressRule;
use super::suggest::closest;
use super::validate;
use sandtrace_common::policy::MAX_REGIMES;

/// The sections of the format and their keys.
const SECTIONS: [(&str, &[&str]); 6] = [
    (
        "filesystem",
        &["allow_read", "allow_write", "allow_exec", "deny"],
    ),
    (
        "network",
        &["allow", "allow_connect", "allow_bind", "allow_hosts"],
    ),
    ("syscalls", &["deny", "log_only"]),
    ("limits", &["timeout", "max_processes"]),
    ("process", &["capabilities"]),
    ("environment", &["pass", "set"]),
];

/// The keys of one `[[after_exec]]` table; `filesystem` and `network` are sub-tables with the
/// keys of the sections of those names.
const AFTER_EXEC_KEYS: &[&str] = &["name", "programs", "filesystem", "network"];
/// Longest `[[after_exec]] name`.
const MAX_REGIME_NAME: usize = 64;

/// Reads and validates the policy file at `path`.
pub fn load(path: &Path) -> Result<Policy, Diagnostics> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Problem::new(format!("cannot read policy file {}: {e}", path.display()))
            .at(Location::File(path.to_owned()))
    })?;
    parse(path, text)
}

/// Validates `text`, the contents of the policy file `path`.
pub fn parse(path: &Path, text: String) -> Result<Policy, Diagnostics> {
    let source = Arc::new(SourceText {
        path: path.to_owned(),
        text,
    });
    let mut parser = Parser {
        source: Arc::clone(&source),
        diagnostics: Diagnostics::new(),
        policy: Policy::default(),
    };
    // After a syntax error, what a recovering parser makes of the rest is mostly noise:
    // report the first syntax error alone.
    let document = match DeTable::parse(&source.text) {
        Ok(document) => document,
        Err(error) => {
            let problem = Problem::new(format!("invalid TOML: {}", error.message().trim()))
                .with_hint("fix the syntax first; the policy is checked once it parses");
            let location = match error.span() {
                Some(range) => parser.location(range),
                None => Location::File(path.to_owned()),
            };
            parser.diagnostics.push(problem.at(location));
            return parser.diagnostics.into_result(parser.policy);
        }
    };
    let document = document.into_inner();
    if document.is_empty() {
        parser.diagnostics.push(
            Problem::new("the policy file is empty")
                .with_hint(
                    "write at least one section, e.g. [filesystem]; without --policy the \
                     built-in default applies (`sandtrace policy show --default` prints it)",
                )
                .at(Location::File(path.to_owned())),
        );
    }
    for (key, value) in &document {
        parser.section(key, value);
    }
    for diagnostic in validate::syscall_lists(&parser.policy.syscalls) {
        parser.diagnostics.push(diagnostic);
    }
    let regime_networks = parser
        .policy
        .after_exec
        .iter()
        .filter_map(|r| r.network.as_ref());
    let network_problems: Vec<Diagnostic> = std::iter::once(&parser.policy.network)
        .chain(regime_networks)
        .flat_map(validate::network_lists)
        .collect();
    for diagnostic in network_problems {
        parser.diagnostics.push(diagnostic);
    }
    parser.diagnostics.into_result(parser.policy)
}

struct Parser {
    source: Arc<SourceText>,
    diagnostics: Diagnostics,
    policy: Policy,
}

type Key<'i> = Spanned<std::borrow::Cow<'i, str>>;
type Value<'i> = Spanned<DeValue<'i>>;

impl Parser {
    fn span(&self, range: Range<usize>) -> Span {
        Span {
            source: Arc::clone(&self.source),
            range,
        }
    }

    fn location(&self, range: Range<usize>) -> Location {
        Location::Span(self.span(range))
    }

    fn origin(&self, range: Range<usize>) -> Origin {
        Origin::File(self.span(range))
    }

    fn report(&mut self, problem: Problem, range: Range<usize>) {
        let diagnostic: Diagnostic = problem.at(self.location(range));
        self.diagnostics.push(diagnostic);
    }

    /// The source text of a value, shortened for messages.
    fn excerpt(&self, range: Range<usize>) -> String {
        let text = self.source.text.get(range).unwrap_or_default();
        let first_line = text.lines().next().unwrap_or_default();
        if first_line.chars().count() > 40 || first_line.len() < text.len() {
            let cut: String = first_line.chars().take(40).collect();
            format!("{cut}...")
        } else {
            first_line.to_owned()
        }
    }

    fn section(&mut self, key: &Key<'_>, value: &Value<'_>) {
        let name = key.get_ref().as_ref();
        if name == "after_exec" {
            self.after_exec(value);
            return;
        }
        let Some(&(section, known_keys)) = SECTIONS.iter().find(|(s, _)| *s == name) else {
            let problem = match value.get_ref() {
                DeValue::Table(_) => Problem::new(format!("unknown section [{name}]")),
                _ => Problem::new(format!("unknown key `{name}` outside any section")),
            };
            let problem = match closest(name, SECTIONS.iter().map(|(s, _)| *s)) {
                Some(known) => problem.with_hint(format!("did you mean [{known}]?")),
                None => match section_of_key(name) {
                    Some(home) => problem.with_hint(format!(
                        "`{name}` belongs in the [{home}] section; write it below a [{home}] line"
                    )),
                    None => problem.with_hint(format!(
                        "the sections are {}",
                        SECTIONS.map(|(s, _)| format!("[{s}]")).join(", ")
                    )),
                },
            };
            self.report(problem, key.span());
            return;
        };
        let DeValue::Table(table) = value.get_ref() else {
            self.mistyped(
                &format!("[{section}] must be a table"),
                value,
                &format!("write a [{section}] line followed by its keys"),
            );
            return;
        };
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            match (section, name) {
                ("filesystem", _) if known_keys.contains(&name) => {
                    let (kind, entries) = self.path_list(section, name, value);
                    self.policy.filesystem.entries_mut(kind).extend(entries);
                }
                ("network", _) if known_keys.contains(&name) => {
                    let mut rules = std::mem::take(&mut self.policy.network);
                    self.network_key(section, name, value, &mut rules);
                    self.policy.network = rules;
                }
                ("syscalls", "deny") => {
                    self.policy.syscalls.deny =
                        self.parsed(section, name, value, validate::syscall);
                }
                ("syscalls", "log_only") => {
                    self.policy.syscalls.log_only =
                        self.parsed(section, name, value, validate::syscall);
                }
                ("limits", "timeout") => {
                    if let Some(secs) = self.integer(section, name, value, validate::timeout_secs) {
                        self.policy.limits.timeout_secs = secs;
                    }
                }
                ("limits", "max_processes") => {
                    if let Some(n) = self.integer(section, name, value, validate::max_processes) {
                        self.policy.limits.max_processes = Located::new(Some(n.value), n.origin);
                    }
                }
                ("process", "capabilities") => {
                    self.policy.process.capabilities =
                        self.parsed(section, name, value, Capability::parse);
                }
                ("environment", "pass") => {
                    self.policy.environment.pass =
                        self.parsed(section, name, value, NamePattern::parse);
                }
                ("environment", "set") => {
                    self.policy.environment.set = self.assignments(section, name, value);
                }
                _ => self.unknown_key(section, known_keys, key),
            }
        }
    }

    /// One `[filesystem]` key (which must be one): its kind and entries.
    fn path_list(
        &mut self,
        section: &str,
        key: &str,
        value: &Value<'_>,
    ) -> (PathKind, Vec<Located<PathEntry>>) {
        let kind = PathKind::ALL
            .into_iter()
            .find(|k| k.key() == key)
            .expect("every [filesystem] key is a path kind");
        (kind, self.paths(section, key, value))
    }

    /// One `[network]` key (which must be one) into `rules`.
    fn network_key(
        &mut self,
        section: &str,
        key: &str,
        value: &Value<'_>,
        rules: &mut NetworkRules,
    ) {
        match key {
            "allow" => {
                if let Some(allow) = self.boolean(section, key, value) {
                    rules.allow = allow;
                }
            }
            "allow_hosts" => {
                let hosts = self.parsed(section, key, value, HostRule::parse);
                rules.allow_hosts.extend(hosts);
            }
            _ => {
                let list = NetworkList::ALL
                    .into_iter()
                    .find(|l| l.key() == key)
                    .expect("every other [network] key is an address-rule list");
                let parsed = self.parsed(section, key, value, AddressRule::parse);
                rules.list_mut(list).extend(parsed);
            }
        }
    }

    /// `[[after_exec]]`: an array of tables, one per regime.
    fn after_exec(&mut self, value: &Value<'_>) {
        let DeValue::Array(items) = value.get_ref() else {
            self.mistyped(
                "after_exec must be an array of tables",
                value,
                "write [[after_exec]] (double brackets), one per regime, then its keys",
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let label = format!("after_exec #{}", i + 1);
            let DeValue::Table(table) = item.get_ref() else {
                self.mistyped(
                    "[[after_exec]] entries must be tables",
                    item,
                    "write [[after_exec]] followed by programs = [...] and its rules",
                );
                continue;
            };
            if i == MAX_REGIMES {
                let problem = Problem::new(format!(
                    "more than {MAX_REGIMES} [[after_exec]] regimes (limit MAX_REGIMES)"
                ))
                .with_hint("merge regimes: one regime can list several programs");
                self.report(problem, item.span());
            }
            let regime = self.regime(&label, table, item.span());
            self.policy.after_exec.push(regime);
        }
    }

    fn regime(&mut self, label: &str, table: &DeTable<'_>, span: Range<usize>) -> Regime {
        let mut regime = Regime {
            name: Located::new(label.to_owned(), self.origin(span.clone())),
            programs: Vec::new(),
            filesystem: FilesystemRules::default(),
            narrows: Vec::new(),
            network: None,
            at: Located::new((), self.origin(span.clone())),
        };
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "name" => {
                    if let Some(name) = self.regime_name(label, value) {
                        regime.name = name;
                    }
                }
                "programs" => regime.programs = self.paths(label, "programs", value),
                "filesystem" => self.regime_filesystem(label, value, &mut regime),
                "network" => {
                    let section = format!("{label} network");
                    let Some(sub) = self.sub_table(&section, value) else {
                        continue;
                    };
                    let mut rules = NetworkRules::default();
                    for (key, value) in sub {
                        let name = key.get_ref().as_ref();
                        if network_keys().contains(&name) {
                            self.network_key(&section, name, value, &mut rules);
                        } else {
                            self.unknown_key(&section, network_keys(), key);
                        }
                    }
                    regime.network = Some(rules);
                }
                _ => self.unknown_key(label, AFTER_EXEC_KEYS, key),
            }
        }
        if regime.programs.is_empty() {
            let problem = Problem::new(format!("[{label}] names no programs")).with_hint(
                "write programs = [\"/usr/bin/dash\", ...]: executing one of them enters the \
                 regime",
            );
            self.report(problem, span);
        }
        regime
    }

    fn regime_filesystem(&mut self, label: &str, value: &Value<'_>, regime: &mut Regime) {
        let section = format!("{label} filesystem");
        let Some(sub) = self.sub_table(&section, value) else {
            return;
        };
        for (key, value) in sub {
            let name = key.get_ref().as_ref();
            if filesystem_keys().contains(&name) {
                let (kind, entries) = self.path_list(&section, name, value);
                if kind != PathKind::Deny && !regime.narrows.contains(&kind) {
                    regime.narrows.push(kind);
                }
                regime.filesystem.entries_mut(kind).extend(entries);
            } else {
                self.unknown_key(&section, filesystem_keys(), key);
            }
        }
    }

    fn regime_name(&mut self, label: &str, value: &Value<'_>) -> Option<Located<String>> {
        let DeValue::String(name) = value.get_ref() else {
            self.wrong_type(
                label,
                "name",
                "a string",
                value,
                "write name = \"install scripts\"",
            );
            return None;
        };
        let ok = !name.trim().is_empty()
            && name.chars().count() <= MAX_REGIME_NAME
            && !name.chars().any(char::is_control);
        if !ok {
            let problem = Problem::new(format!(
                "[{label}] name must be 1 to {MAX_REGIME_NAME} printable characters"
            ))
            .with_hint("name the regime for the log, e.g. name = \"install scripts\"");
            self.report(problem, value.span());
            return None;
        }
        Some(Located::new(name.to_string(), self.origin(value.span())))
    }

    /// A sub-table of `[[after_exec]]` (`filesystem`, `network`).
    fn sub_table<'v, 'i>(
        &mut self,
        section: &str,
        value: &'v Value<'i>,
    ) -> Option<&'v DeTable<'i>> {
        if let DeValue::Table(table) = value.get_ref() {
            return Some(table);
        }
        self.mistyped(
            &format!("[{section}] must be a table"),
            value,
            "write [after_exec.filesystem] or [after_exec.network] below [[after_exec]]",
        );
        None
    }

    /// Reports `value` as not what `what` says it must be (`... must be a table`).
    fn mistyped(&mut self, what: &str, value: &Value<'_>, hint: &str) {
        let problem = Problem::new(format!(
            "{what}, found {} {}",
            article(value.get_ref()),
            self.excerpt(value.span())
        ))
        .with_hint(hint);
        self.report(problem, value.span());
    }

    /// `set = { NAME = "value", ... }`, each assignment located at its name.
    fn assignments(
        &mut self,
        section: &str,
        key: &str,
        value: &Value<'_>,
    ) -> Vec<Located<(String, String)>> {
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(
                section,
                key,
                "a table of strings",
                value,
                &format!("write {key} = {{ NAME = \"value\" }}"),
            );
            return Vec::new();
        };
        let mut assignments = Vec::new();
        for (name, item) in table {
            let name_text = name.get_ref().as_ref();
            let DeValue::String(text) = item.get_ref() else {
                let problem = Problem::new(format!(
                    "[{section}] {key}: the value of {name_text} must be a string, found {} {}",
                    article(item.get_ref()),
                    self.excerpt(item.span())
                ))
                .with_hint("put the value in double quotes");
                self.report(problem, item.span());
                continue;
            };
            match environment::check_name(name_text)
                .and_then(|()| environment::check_value(name_text, text))
            {
                Ok(()) => assignments.push(Located::new(
                    (name_text.to_owned(), text.as_ref().to_owned()),
                    self.origin(name.span()),
                )),
                Err(problem) => self.report(prefixed(section, key, problem), name.span()),
            }
        }
        assignments
    }

    fn unknown_key(&mut self, section: &str, known_keys: &[&str], key: &Key<'_>) {
        let name = key.get_ref().as_ref();
        let problem = Problem::new(format!("unknown key `{name}` in [{section}]"));
        let problem = match closest(name, known_keys.iter().copied()) {
            Some(known) => problem.with_hint(format!("did you mean `{known}`?")),
            None => match section_of_key(name) {
                Some(home) => {
                    problem.with_hint(format!("`{name}` belongs in the [{home}] section"))
                }
                None => problem.with_hint(format!(
                    "the keys of [{section}] are {}",
                    known_keys
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        };
        self.report(problem, key.span());
    }

    fn wrong_type(
        &mut self,
        section: &str,
        key: &str,
        expected: &str,
        value: &Value<'_>,
        hint: &str,
    ) {
        self.mistyped(
            &format!("[{section}] {key} must be {expected}"),
            value,
            hint,
        );
    }

    /// The strings of an array of strings, each with its position.
    fn strings<'v>(
        &mut self,
        section: &str,
        key: &str,
        value: &'v Value<'_>,
    ) -> Vec<(&'v str, Range<usize>)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                section,
                key,
                "an array of strings",
                value,
                &format!("write {key} = [\"...\", \"...\"]"),
            );
            return Vec::new();
        };
        let mut strings = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(s) => strings.push((s.as_ref(), item.span())),
                other => {
                    let problem = Problem::new(format!(
                        "[{section}] {key} must contain only strings, found {} {}",
                        article(other),
                        self.excerpt(item.span())
                    ))
                    .with_hint("put each entry in double quotes");
                    self.report(problem, item.span());
                }
            }
        }
        strings
    }

    fn paths(&mut self, section: &str, key: &str, value: &Value<'_>) -> Vec<Located<PathEntry>> {
        let mut entries = Vec::new();
        for (text, range) in self.strings(section, key, value) {
            match PathEntry::parse(text) {
                Ok(entry) if key == PathKind::Deny.key() && entry.is_only_itself() => {
                    let problem = Problem::new(format!(
                        "{text:?}: a deny with `=` would leave what lies beneath the path allowed"
                    ))
                    .with_hint(
                        "write the path without `=`: a deny covers the path and everything \
                         beneath it",
                    );
                    self.report(prefixed(section, key, problem), range);
                }
                Ok(entry) => entries.push(Located::new(entry, self.origin(range))),
                Err(problem) => self.report(prefixed(section, key, problem), range),
            }
        }
        entries
    }

    /// The strings of `value` parsed by `parse`, each located at its string; every string
    /// that does not parse is reported at its position.
    fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        value: &Value<'_>,
        parse: impl Fn(&str) -> Result<T, Problem>,
    ) -> Vec<Located<T>> {
        let mut items = Vec::new();
        for (text, range) in self.strings(section, key, value) {
            match parse(text) {
                Ok(item) => items.push(Located::new(item, self.origin(range))),
                Err(problem) => self.report(prefixed(section, key, problem), range),
            }
        }
        items
    }

    fn boolean(&mut self, section: &str, key: &str, value: &Value<'_>) -> Option<Located<bool>> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Located::new(*b, self.origin(value.span()))),
            _ => {
                self.wrong_type(
                    section,
                    key,
                    "a boolean",
                    value,
                    &format!("write {key} = true or {key} = false"),
                );
                None
            }
        }
    }

    fn integer<T>(
        &mut self,
        section: &str,
        key: &str,
        value: &Value<'_>,
        check: fn(i128) -> Result<T, Problem>,
    ) -> Option<Located<T>> {
        let DeValue::Integer(integer) = value.get_ref() else {
            self.wrong_type(
                section,
                key,
                "a whole number",
                value,
                &format!("write e.g. {key} = 30, without quotes"),
            );
            return None;
        };
        let checked = i128::from_str_radix(integer.as_str(), integer.radix())
            .map_err(|_| Problem::new(format!("is out of range: {integer}")))
            .and_then(check);
        match checked {
            Ok(v) => Some(Located::new(v, self.origin(value.span()))),
            Err(problem) => {
                let problem = Problem {
                    message: format!("[{section}] {key} {}", problem.message),
                    hint: problem.hint,
                };
                self.report(problem, value.span());
                None
            }
        }
    }
}

fn filesystem_keys() -> &'static [&'static str] {
    SECTIONS[0].1
}

fn network_keys() -> &'static [&'static str] {
    SECTIONS[1].1
}

/// The section a key of the format belongs to, if any.
fn section_of_key(key: &str) -> Option<&'static str> {
    SECTIONS
        .iter()
        .find(|(_, keys)| keys.contains(&key))
        .map(|(section, _)| *section)
}

fn prefixed(section: &str, key: &str, problem: Problem) -> Problem {
    Problem {
        message: format!("[{section}] {key}: {}", problem.message),
        hint: problem.hint,
    }
}

fn article(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
