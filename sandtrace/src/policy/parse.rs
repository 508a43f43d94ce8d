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
use super::model::{Located, NetworkList, Origin, PathKind, Policy};
use super::network::AddressRule;
use super::suggest::closest;
use super::validate;

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
    for diagnostic in validate::network_lists(&parser.policy.network) {
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
            let problem = Problem::new(format!(
                "[{section}] must be a table, found {} {}",
                article(value.get_ref()),
                self.excerpt(value.span())
            ))
            .with_hint(format!("write a [{section}] line followed by its keys"));
            self.report(problem, value.span());
            return;
        };
        for (key, value) in table {
            let name = key.get_ref().as_ref();
            match (section, name) {
                ("filesystem", _) if known_keys.contains(&name) => {
                    let kind = PathKind::ALL
                        .into_iter()
                        .find(|k| k.key() == name)
                        .expect("every [filesystem] key is a path kind");
                    let entries = self.paths(section, name, value);
                    self.policy.filesystem.entries_mut(kind).extend(entries);
                }
                ("network", "allow") => {
                    if let Some(allow) = self.boolean(section, name, value) {
                        self.policy.network.allow = allow;
                    }
                }
                ("network", "allow_connect" | "allow_bind") => {
                    let list = NetworkList::ALL
                        .into_iter()
                        .find(|l| l.key() == name)
                        .expect("every address-rule key is a network list");
                    let rules = self.parsed(section, name, value, AddressRule::parse);
                    self.policy.network.list_mut(list).extend(rules);
                }
                ("network", "allow_hosts") => {
                    let rules = self.parsed(section, name, value, HostRule::parse);
                    self.policy.network.allow_hosts.extend(rules);
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
        let problem = Problem::new(format!(
            "[{section}] {key} must be {expected}, found {} {}",
            article(value.get_ref()),
            self.excerpt(value.span())
        ))
        .with_hint(hint);
        self.report(problem, value.span());
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
