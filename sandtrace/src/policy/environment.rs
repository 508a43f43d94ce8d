//! Environment variable names and the `PREFIX_*` patterns of `[environment] pass`.

use std::fmt;

use super::diagnostic::Problem;

/// The variables every session passes from the caller unless the policy says otherwise:
/// what programs need to find their tools, their user and their locale, and nothing that
/// usually holds a secret.
pub const BASE_PASSED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_*", "TERM", "TZ", "TMPDIR",
];

/// A name, or a prefix followed by `*`, matching environment variable names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
    Exact(String),
    Prefix(String),
}

impl NamePattern {
    /// `NAME` or `PREFIX*`: a name is anything without `=` and NUL (execve's only limits),
    /// and `*` may only end a pattern.
    pub fn parse(text: &str) -> Result<Self, Problem> {
        let (name, prefix) = match text.strip_suffix('*') {
            Some(prefix) => (prefix, true),
            None => (text, false),
        };
        if name.is_empty() && !prefix {
            return Err(Problem::new("an empty variable name")
                .with_hint("write the name of a variable, e.g. \"NODE_ENV\", or a prefix such as \"npm_config_*\""));
        }
        if name.contains('*') {
            return Err(
                Problem::new(format!("{text:?}: `*` may only end a pattern")).with_hint(
                    "write a name, or a prefix followed by one `*`, e.g. \"npm_config_*\"",
                ),
            );
        }
        if prefix && name.is_empty() {
            return Err(Problem::new("\"*\" would pass every variable").with_hint(
                "list the variables the command needs; `sandtrace run --keep-env` passes the \
                 whole environment for one run",
            ));
        }
        check_name(name)?;
        Ok(if prefix {
            Self::Prefix(name.to_owned())
        } else {
            Self::Exact(name.to_owned())
        })
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        match self {
            Self::Exact(exact) => name == exact.as_bytes(),
            Self::Prefix(prefix) => name.starts_with(prefix.as_bytes()),
        }
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// A variable name execve can pass: not empty, no `=` (which ends the name), no NUL.
pub fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::new("an empty variable name"));
    }
    if name.contains('=') {
        return Err(
            Problem::new(format!("{name:?}: a variable name cannot contain `=`"))
                .with_hint("`=` separates a variable's name from its value"),
        );
    }
    if name.contains('\0') {
        return Err(Problem::new(format!(
            "{name:?}: a variable name cannot contain a NUL character"
        )));
    }
    Ok(())
}

/// A value execve can pass: no NUL.
pub fn check_value(name: &str, value: &str) -> Result<(), Problem> {
    if value.contains('\0') {
        return Err(Problem::new(format!(
            "the value of {name} contains a NUL character, which ends a value"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let npm = NamePattern::parse("npm_config_*").unwrap();
        assert!(npm.matches(b"npm_config_cache"));
        assert!(!npm.matches(b"NPM_TOKEN"));
        let exact = NamePattern::parse("NODE_ENV").unwrap();
        assert!(exact.matches(b"NODE_ENV") && !exact.matches(b"NODE_ENV2"));
        assert_eq!(npm.to_string(), "npm_config_*");
        for bad in ["A=B", "A*B", "*", "", "A\0B"] {
            assert!(NamePattern::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BASE_PASSED.iter().all(|p| NamePattern::parse(p).is_ok()));
    }
}
