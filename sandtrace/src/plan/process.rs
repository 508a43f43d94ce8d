//! How CMD's process is run, in every mode: as which user, with which capabilities, with
//! which environment. Pure: the caller's environment and the accounts it names are gathered
//! before ([`super::accounts`]) and passed in.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStrExt as _,
    path::PathBuf,
};

use crate::policy::{
    EffectivePolicy,
    capability::Capability,
    environment::{BASE_PASSED, NamePattern},
};

/// A user account: its passwd entry and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: Option<String>,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
    /// The supplementary groups (getgrouplist), the primary one included.
    pub groups: Vec<u32>,
    pub home: Option<PathBuf>,
    pub shell: Option<PathBuf>,
}

/// Why CMD runs as the user it runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentitySource {
    /// sandtrace was started through sudo: the user who ran sudo.
    Sudo,
    /// `--user`.
    UserFlag,
    /// sandtrace's own user (root without sudo, or `--as-root`).
    Caller,
}

/// The accounts a run may choose from, looked up before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// sandtrace's own user (its real uid, gid and groups, `$HOME`).
    pub caller: Account,
    /// The user named by `SUDO_UID`/`SUDO_GID` when sandtrace runs as root through sudo.
    pub sudo: Option<Account>,
    /// The account `--user` names.
    pub requested: Option<Account>,
}

/// Who CMD runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: Account,
    pub source: IdentitySource,
}

impl Identity {
    /// `--user` first, then the user who ran sudo; sandtrace's own user with `--as-root` or
    /// when neither applies.
    pub fn choose(accounts: &Accounts, as_root: bool) -> Self {
        let (account, source) = match (&accounts.requested, &accounts.sudo) {
            _ if as_root => (&accounts.caller, IdentitySource::Caller),
            (Some(requested), _) => (requested, IdentitySource::UserFlag),
            (None, Some(sudo)) => (sudo, IdentitySource::Sudo),
            (None, None) => (&accounts.caller, IdentitySource::Caller),
        };
        Self {
            account: account.clone(),
            source,
        }
    }

    /// The home directory `~` stands for in the policy: that of the user CMD runs as.
    pub fn home(&self) -> Option<&std::path::Path> {
        self.account.home.as_deref()
    }

    /// `uid 1000 (dev), gid 1000, groups 1000,27`, for messages and the summary.
    pub fn describe(&self) -> String {
        let a = &self.account;
        let name = a
            .name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        let groups: Vec<String> = a.groups.iter().map(u32::to_string).collect();
        let why = match self.source {
            IdentitySource::Sudo => ", the user who ran sudo",
            IdentitySource::UserFlag => ", from --user",
            IdentitySource::Caller => "",
        };
        format!(
            "uid {}{name}, gid {}, groups {}{why}",
            a.uid,
            a.gid,
            groups.join(",")
        )
    }
}

/// The capabilities CMD keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privileges {
    /// `--as-root`: CMD keeps every capability sandtrace has; nothing is dropped.
    AsRoot,
    /// Every capability is removed but these (`[process] capabilities`), which CMD gets
    /// through its ambient set; no new privileges, securebits locked.
    Confined(Vec<Capability>),
}

impl Privileges {
    /// The bit mask of the kept capabilities (`Confined`).
    pub fn kept_mask(&self) -> Option<u64> {
        match self {
            Self::AsRoot => None,
            Self::Confined(kept) => Some(kept.iter().fold(0, |m, c| m | 1 << c.number())),
        }
    }

    /// The names the summary and the event log show: the kept capabilities, or `all` for
    /// `--as-root`.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::AsRoot => vec!["all".to_owned()],
            Self::Confined(kept) => kept.iter().map(|c| c.name().to_owned()).collect(),
        }
    }
}

/// CMD's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentPlan {
    /// `(name, value)`, in the caller's order, then what the identity and `set` add.
    pub vars: Vec<(OsString, OsString)>,
    /// The names of the caller's variables CMD does not get, sorted (never their values).
    pub removed: Vec<String>,
}

/// The run's flags about the process (`sandtrace run --user/--as-root/--pass-env/--keep-env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFlags {
    /// `--user USER[:GROUP]`.
    pub user: Option<String>,
    pub as_root: bool,
    /// `--pass-env NAME`, each a validated name.
    pub pass_env: Vec<String>,
    /// `--keep-env`: the caller's whole environment.
    pub keep_env: bool,
}

/// What the process plan is made from, gathered before the pure stage.
#[derive(Debug, Clone)]
pub struct ProcessInputs {
    pub identity: Identity,
    /// sandtrace's environment, in order.
    pub caller_env: Vec<(OsString, OsString)>,
    pub flags: ProcessFlags,
}

/// How CMD's process is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub identity: Identity,
    pub privileges: Privileges,
    pub environment: EnvironmentPlan,
}

impl ProcessPlan {
    pub fn new(inputs: &ProcessInputs, policy: &EffectivePolicy) -> Self {
        let privileges = if inputs.flags.as_root {
            Privileges::AsRoot
        } else {
            Privileges::Confined(policy.capabilities.iter().map(|c| c.value).collect())
        };
        Self {
            environment: environment(inputs, policy),
            identity: inputs.identity.clone(),
            privileges,
        }
    }

    /// The warnings to print before CMD starts: one per capability it keeps.
    pub fn capability_warnings(&self) -> Vec<String> {
        match &self.privileges {
            Privileges::AsRoot => vec![
                "warning: --as-root: the command runs as root with every capability; only the \
                 policy's rules confine it"
                    .to_owned(),
            ],
            Privileges::Confined(kept) => kept
                .iter()
                .map(|c| {
                    format!(
                        "warning: [process] capabilities: the command keeps {c}: it may {}",
                        c.allows()
                    )
                })
                .collect(),
        }
    }
}

/// The base variables, then `[environment] pass` and `--pass-env` (everything with
/// `--keep-env`); the identity's HOME, USER, LOGNAME and SHELL when CMD runs as another user
/// than sandtrace; `[environment] set` last.
fn environment(inputs: &ProcessInputs, policy: &EffectivePolicy) -> EnvironmentPlan {
    let patterns: Vec<NamePattern> = BASE_PASSED
        .iter()
        .map(|p| NamePattern::parse(p).expect("the base patterns are valid"))
        .chain(policy.environment.pass.iter().map(|p| p.value.clone()))
        .chain(
            inputs
                .flags
                .pass_env
                .iter()
                .map(|name| NamePattern::Exact(name.clone())),
        )
        .collect();
    let mut vars = Vec::new();
    let mut removed = Vec::new();
    for (name, value) in &inputs.caller_env {
        if inputs.flags.keep_env || patterns.iter().any(|p| p.matches(name.as_bytes())) {
            vars.push((name.clone(), value.clone()));
        } else {
            removed.push(name.to_string_lossy().into_owned());
        }
    }
    removed.sort();
    removed.dedup();
    let account = &inputs.identity.account;
    if inputs.identity.source != IdentitySource::Caller {
        let name = account.name.clone().map(OsString::from);
        let identity_vars = [
            ("HOME", account.home.clone().map(PathBuf::into_os_string)),
            ("USER", name.clone()),
            ("LOGNAME", name),
            ("SHELL", account.shell.clone().map(PathBuf::into_os_string)),
        ];
        for (var, value) in identity_vars {
            match value {
                Some(value) => set_var(&mut vars, var, &value),
                // The caller's value would describe another user.
                None => vars.retain(|(n, _)| n != var),
            }
        }
    }
    for assignment in &policy.environment.set {
        let (name, value) = &assignment.value;
        set_var(&mut vars, name, OsStr::new(value));
    }
    EnvironmentPlan { vars, removed }
}

/// Sets `name` to `value`, replacing what `vars` held for it.
fn set_var(vars: &mut Vec<(OsString, OsString)>, name: &str, value: &OsStr) {
    vars.retain(|(n, _)| n != name);
    vars.push((name.into(), value.to_owned()));
}
