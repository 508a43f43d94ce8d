//! The policy as written: every field of the TOML format, with the defaults of omitted fields
//! filled in and every value tagged with where it came from.

use std::fmt;
use std::time::Duration;

use sandtrace_common::policy::{
    KIND_COUNT, KIND_DENY, KIND_EXEC, KIND_INDEX_DENY, KIND_INDEX_EXEC, KIND_INDEX_READ,
    KIND_INDEX_WRITE, KIND_READ, KIND_WRITE,
};
use syscalls::Sysno;

use super::capability::Capability;
use super::diagnostic::{Location, Span};
use super::environment::NamePattern;
use super::glob::PathEntry;
use super::hosts::HostRule;
use super::network::AddressRule;

/// Syscalls denied in every policy, whatever it says.
pub const ALWAYS_BLOCKED_SYSCALLS: [Sysno; 10] = [
    Sysno::kexec_load,
    Sysno::kexec_file_load,
    Sysno::reboot,
    Sysno::swapon,
    Sysno::swapoff,
    Sysno::init_module,
    Sysno::finit_module,
    Sysno::delete_module,
    Sysno::acct,
    Sysno::pivot_root,
];

/// `[limits] timeout` when the policy does not set it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest timeout accepted: one year. Anything longer is a mistake, and the bound keeps
/// deadline arithmetic far from overflow.
pub const MAX_TIMEOUT_SECS: u64 = 365 * 24 * 60 * 60;

/// Where a value came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// A value in a policy file.
    File(Span),
    /// A command-line flag, e.g. `--allow-path`.
    Flag(&'static str),
    /// Not set anywhere: the documented default (or the built-in default policy).
    Default,
    /// One of [`ALWAYS_BLOCKED_SYSCALLS`].
    AlwaysBlocked,
}

impl Origin {
    /// Where a diagnostic about a value with this origin points.
    pub fn location(&self) -> Location {
        match self {
            Origin::File(span) => Location::Span(span.clone()),
            Origin::Flag(_) | Origin::Default | Origin::AlwaysBlocked => Location::Unpositioned,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(span) => span.fmt(f),
            Origin::Flag(flag) => f.write_str(flag),
            Origin::Default => f.write_str("default"),
            Origin::AlwaysBlocked => f.write_str("always blocked"),
        }
    }
}

/// A value and where it came from. Equality compares the values only, so that a policy
/// printed and parsed again equals the original.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Located<T> {
    pub fn new(value: T, origin: Origin) -> Self {
        Self { value, origin }
    }

    pub fn default_value(value: T) -> Self {
        Self::new(value, Origin::Default)
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: Eq> Eq for Located<T> {}

/// The kinds of filesystem rule, in the order of the `KIND_INDEX_*` constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    Read,
    Write,
    Exec,
    Deny,
}

impl PathKind {
    pub const ALL: [PathKind; KIND_COUNT] = [
        PathKind::Read,
        PathKind::Write,
        PathKind::Exec,
        PathKind::Deny,
    ];

    /// Index into per-kind arrays (`PathAccept::first_rule`).
    pub const fn index(self) -> usize {
        match self {
            PathKind::Read => KIND_INDEX_READ,
            PathKind::Write => KIND_INDEX_WRITE,
            PathKind::Exec => KIND_INDEX_EXEC,
            PathKind::Deny => KIND_INDEX_DENY,
        }
    }

    /// Bit in `PathAccept::kinds`.
    pub const fn bit(self) -> u16 {
        match self {
            PathKind::Read => KIND_READ,
            PathKind::Write => KIND_WRITE,
            PathKind::Exec => KIND_EXEC,
            PathKind::Deny => KIND_DENY,
        }
    }

    /// The key in `[filesystem]`.
    pub const fn key(self) -> &'static str {
        match self {
            PathKind::Read => "allow_read",
            PathKind::Write => "allow_write",
            PathKind::Exec => "allow_exec",
            PathKind::Deny => "deny",
        }
    }
}

/// `[filesystem]`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilesystemRules {
    pub allow_read: Vec<Located<PathEntry>>,
    pub allow_write: Vec<Located<PathEntry>>,
    pub allow_exec: Vec<Located<PathEntry>>,
    pub deny: Vec<Located<PathEntry>>,
}

impl FilesystemRules {
    pub fn entries(&self, kind: PathKind) -> &[Located<PathEntry>] {
        match kind {
            PathKind::Read => &self.allow_read,
            PathKind::Write => &self.allow_write,
            PathKind::Exec => &self.allow_exec,
            PathKind::Deny => &self.deny,
        }
    }

    pub fn entries_mut(&mut self, kind: PathKind) -> &mut Vec<Located<PathEntry>> {
        match kind {
            PathKind::Read => &mut self.allow_read,
            PathKind::Write => &mut self.allow_write,
            PathKind::Exec => &mut self.allow_exec,
            PathKind::Deny => &mut self.deny,
        }
    }
}

/// `[network]`: `allow = true` allows everything; otherwise only what the address rules
/// allow (nothing, when there are none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRules {
    pub allow: Located<bool>,
    /// Destinations of connects and UDP sends.
    pub allow_connect: Vec<Located<AddressRule>>,
    /// Local addresses to bind, listen and receive on.
    pub allow_bind: Vec<Located<AddressRule>>,
    /// Destinations by host name, through the session's resolver.
    pub allow_hosts: Vec<Located<HostRule>>,
}

impl Default for NetworkRules {
    fn default() -> Self {
        Self {
            allow: Located::default_value(false),
            allow_connect: Vec::new(),
            allow_bind: Vec::new(),
            allow_hosts: Vec::new(),
        }
    }
}

/// The address-rule lists of `[network]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetworkList {
    Connect,
    Bind,
}

impl NetworkList {
    pub const ALL: [NetworkList; 2] = [NetworkList::Connect, NetworkList::Bind];

    /// The key in `[network]`.
    pub const fn key(self) -> &'static str {
        match self {
            NetworkList::Connect => "allow_connect",
            NetworkList::Bind => "allow_bind",
        }
    }
}

impl NetworkRules {
    pub fn list(&self, list: NetworkList) -> &[Located<AddressRule>] {
        match list {
            NetworkList::Connect => &self.allow_connect,
            NetworkList::Bind => &self.allow_bind,
        }
    }

    pub fn list_mut(&mut self, list: NetworkList) -> &mut Vec<Located<AddressRule>> {
        match list {
            NetworkList::Connect => &mut self.allow_connect,
            NetworkList::Bind => &mut self.allow_bind,
        }
    }
}

/// `[syscalls]`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallRules {
    pub deny: Vec<Located<Sysno>>,
    pub log_only: Vec<Located<Sysno>>,
}

/// `[limits]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Seconds, 1 ..= [`MAX_TIMEOUT_SECS`].
    pub timeout_secs: Located<u64>,
    /// At least 1; `None` is unlimited.
    pub max_processes: Located<Option<u32>>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout_secs: Located::default_value(DEFAULT_TIMEOUT.as_secs()),
            max_processes: Located::default_value(None),
        }
    }
}

/// `[process]`: how CMD's process is run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRules {
    /// Capabilities CMD keeps (through its ambient set); every other one is removed.
    pub capabilities: Vec<Located<Capability>>,
}

/// `[environment]`: what CMD's environment holds besides the base variables
/// ([`super::environment::BASE_PASSED`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvironmentRules {
    /// Variables kept from the caller's environment.
    pub pass: Vec<Located<NamePattern>>,
    /// `(name, value)`: variables set, whatever the caller's environment holds.
    pub set: Vec<Located<(String, String)>>,
}

/// `[[after_exec]]`: a regime. Executing one of `programs` puts the process, and everything
/// it starts from then on, under the regime's rules as well as the base policy's: they only
/// take away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Regime {
    /// `name`, for events and the summary; `after_exec #N` when omitted.
    pub name: Located<String>,
    /// Programs (paths or globs) whose execution enters the regime.
    pub programs: Vec<Located<PathEntry>>,
    /// `[after_exec.filesystem]`: `deny` adds to the base's deny rules; an allow list given
    /// here narrows the base's list of that kind (an access then needs both).
    pub filesystem: FilesystemRules,
    /// The allow lists `[after_exec.filesystem]` gives (`Read`, `Write`, `Exec`).
    pub narrows: Vec<PathKind>,
    /// `[after_exec.network]`: when given, only the base's network rules it lists (none, with
    /// `allow = false` alone); `None` keeps the base's network rules.
    pub network: Option<NetworkRules>,
    /// Where the regime's table is (a unit value: equality ignores it).
    pub at: Located<()>,
}

/// A whole policy, as written (relative paths and `~` not yet resolved). The default of
/// every omitted field is the most restrictive one: no paths, no network, no syscall rules
/// beyond the always-blocked ones, a 30 s timeout and no process limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub filesystem: FilesystemRules,
    pub network: NetworkRules,
    pub syscalls: SyscallRules,
    pub limits: Limits,
    pub process: ProcessRules,
    pub environment: EnvironmentRules,
    /// `[[after_exec]]`, in file order (at most `MAX_REGIMES`).
    pub after_exec: Vec<Regime>,
}

/// What the built-in default policy lets a command read: the dynamic loader's files, system
/// binaries and libraries, and the few device and proc files nearly every program opens.
const DEFAULT_READ: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/proc/self",
];

/// What the built-in default policy lets a command execute: system binaries (and, for the
/// dynamic loader, system libraries).
const DEFAULT_EXEC: &[&str] = &[
    "/usr/bin",
    "/usr/sbin",
    "/usr/lib",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
];

impl Policy {
    /// The policy used without `--policy`: system binaries and libraries readable and
    /// executable, nothing writable, no network, the always-blocked syscalls denied.
    pub fn builtin_default() -> Self {
        let entries = |paths: &[&str]| {
            paths
                .iter()
                .map(|p| {
                    let entry = PathEntry::parse(p).expect("built-in default paths are valid");
                    Located::default_value(entry)
                })
                .collect()
        };
        Self {
            filesystem: FilesystemRules {
                allow_read: entries(DEFAULT_READ),
                allow_exec: entries(DEFAULT_EXEC),
                ..FilesystemRules::default()
            },
            syscalls: SyscallRules {
                deny: ALWAYS_BLOCKED_SYSCALLS
                    .iter()
                    .map(|&s| Located::default_value(s))
                    .collect(),
                log_only: Vec::new(),
            },
            ..Self::default()
        }
    }
}
