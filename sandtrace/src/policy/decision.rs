//! What the path rules decide for one path and one kind of access, and the reference matcher
//! that decides it straight from the rules.

use sandtrace_common::policy::{KIND_ENTER, MAX_PATH_LEN, PathAccept};

use super::model::PathKind;
use super::resolve::{EffectivePolicy, PathRule};

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

    /// Whether a process in the `[[after_exec]]` regimes `regimes` (each: its index and the
    /// kinds it narrows) may make `access`, as the kernel decides: the base allows it, no
    /// regime's deny rule covers the path, and each regime that narrows the kind has a rule of
    /// its own for it (write implies read there too).
    pub fn allows_in(&self, access: Access, regimes: &[(usize, &[PathKind])]) -> bool {
        let PathDecision::Matched(accept) = self else {
            return false;
        };
        let kind = match access {
            Access::Read => PathKind::Read,
            Access::Write => PathKind::Write,
            Access::Exec => PathKind::Exec,
        };
        let bit = |kind: PathKind| u8::try_from(kind.bit()).expect("KIND_* fit in u8");
        self.allows(access)
            && regimes.iter().all(|&(r, narrows)| {
                let own = accept.regime_kinds[r];
                let granted = match kind {
                    PathKind::Read => own & (bit(PathKind::Read) | bit(PathKind::Write)) != 0,
                    _ => own & bit(kind) != 0,
                };
                own & bit(PathKind::Deny) == 0 && (!narrows.contains(&kind) || granted)
            })
    }
}

/// The reference matcher: decides by testing every rule against `path` (a normalised
/// absolute path) one by one, the base's and every regime's. The compiled form must decide
/// exactly like this.
pub fn decide_by_rules(policy: &EffectivePolicy, path: &[u8]) -> PathDecision {
    if path.len() > MAX_PATH_LEN {
        return PathDecision::TooLong;
    }
    let first = |rules: &[PathRule]| {
        rules
            .iter()
            .position(|r| r.pattern.covers(path))
            .map(|index| {
                u16::try_from(index)
                    .expect("resolve keeps every kind within MAX_RULES_PER_KIND rules")
            })
    };
    let mut accept = PathAccept::NONE;
    for kind in PathKind::ALL {
        if let Some(index) = first(policy.paths.rules(kind)) {
            accept.kinds |= kind.bit();
            accept.first_rule[kind.index()] = index;
        }
    }
    for (r, regime) in policy.regimes.iter().enumerate() {
        for kind in PathKind::ALL {
            if let Some(index) = first(regime.paths.rules(kind)) {
                accept.regime_kinds[r] |= u8::try_from(kind.bit()).expect("KIND_* fit in u8");
                accept.regime_first_rule[r][kind.index()] = index;
            }
        }
        if first(&regime.programs).is_some() {
            accept.regime_kinds[r] |= KIND_ENTER;
        }
    }
    PathDecision::Matched(accept)
}
