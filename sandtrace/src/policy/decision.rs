//! What the path rules decide for one path and one kind of access, and the reference matcher
//! that decides it straight from the rules.

use sandtrace_common::policy::{MAX_PATH_LEN, PathAccept};

use super::model::PathKind;
use super::resolve::PathRules;

/// A kind of access to a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    Exec,
}

/// Which rules cover a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathDecision {
    /// The rules matched as recorded (possibly nothing: [`PathAccept::NONE`]).
    Matched(PathAccept),
    /// The path is longer than [`MAX_PATH_LEN`]; every access is denied.
    TooLong,
}

/// The outcome for one access. Rule indices are into the effective policy's rule list of the
/// named kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed {
        kind: PathKind,
        rule: usize,
    },
    Denied {
        rule: usize,
    },
    /// No allow rule covers the path: denied.
    Unlisted,
    TooLong,
}

impl Verdict {
    pub fn is_allowed(self) -> bool {
        matches!(self, Verdict::Allowed { .. })
    }
}

impl PathDecision {
    /// Deny overrides every allow; write implies read.
    pub fn verdict(&self, access: Access) -> Verdict {
        let accept = match self {
            PathDecision::TooLong => return Verdict::TooLong,
            PathDecision::Matched(accept) => accept,
        };
        let first = |kind: PathKind| {
            (accept.kinds & kind.bit() != 0).then(|| usize::from(accept.first_rule[kind.index()]))
        };
        if let Some(rule) = first(PathKind::Deny) {
            return Verdict::Denied { rule };
        }
        let granting: &[PathKind] = match access {
            Access::Read => &[PathKind::Read, PathKind::Write],
            Access::Write => &[PathKind::Write],
            Access::Exec => &[PathKind::Exec],
        };
        granting
            .iter()
            .find_map(|&kind| first(kind).map(|rule| Verdict::Allowed { kind, rule }))
            .unwrap_or(Verdict::Unlisted)
    }

    pub fn allows(&self, access: Access) -> bool {
        self.verdict(access).is_allowed()
    }
}

/// The reference matcher: decides by testing every rule against `path` (a normalised
/// absolute path) one by one. The compiled form must decide exactly like this.
pub fn decide_by_rules(rules: &PathRules, path: &[u8]) -> PathDecision {
    if path.len() > MAX_PATH_LEN {
        return PathDecision::TooLong;
    }
    let mut accept = PathAccept::NONE;
    for kind in PathKind::ALL {
        if let Some(index) = rules
            .rules(kind)
            .iter()
            .position(|r| r.pattern.covers(path))
        {
            accept.kinds |= kind.bit();
            accept.first_rule[kind.index()] = u16::try_from(index)
                .expect("resolve keeps every kind within MAX_RULES_PER_KIND rules");
        }
    }
    PathDecision::Matched(accept)
}
