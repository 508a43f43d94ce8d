//! The compiled path automaton decides exactly like the reference matcher, for random
//! policies and random paths, and its limits are validation errors, never dropped rules.

use std::path::Path;

use sandtrace::policy::glob::PathEntry;
use sandtrace::policy::{
    Access, CliOverrides, EffectivePolicy, Located, PathDecision, PathKind, Policy, Verdict,
    compile, decide_by_rules, resolve,
};
use sandtrace_common::policy::{
    DEAD_STATE, MAX_CLASSES, MAX_PATH_LEN, MAX_RULES_PER_KIND, MAX_STATES,
};

/// SplitMix64: small, seeded, good enough to spread test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Names close to each other, so that random paths often nearly match random rules.
const NAMES: &[&str] = &[
    "a", "b", "ab", "ba", "aab", ".env", "x.y", "a.b", "é", "bb", ".", "_",
];
const GLOBS: &[&str] = &["*", "?", "a*", "*b", "*.y", "?b", "a?", "*a*", ".*", "**"];

fn random_entry(rng: &mut Rng) -> String {
    let depth = rng.below(4);
    let mut components: Vec<&str> = (0..depth)
        .map(|_| {
            if rng.below(3) == 0 {
                rng.pick(GLOBS)
            } else {
                rng.pick(NAMES)
            }
        })
        .map(|c| if c == "." { "dot" } else { c })
        .collect();
    let entry = match rng.below(6) {
        0 => {
            components.insert(0, "**");
            components.join("/")
        }
        1 if depth == 0 => "**".to_owned(),
        _ => format!("/{}", components.join("/")),
    };
    // A quarter of the rules cover their matches only (`=`), nothing beneath them.
    if rng.below(4) == 0 {
        format!("={entry}")
    } else {
        entry
    }
}

fn random_path(rng: &mut Rng) -> Vec<u8> {
    let depth = rng.below(6);
    if depth == 0 {
        return b"/".to_vec();
    }
    let mut path = Vec::new();
    for _ in 0..depth {
        path.push(b'/');
        let name = match rng.below(8) {
            0 => "dot",
            1 => "abab",
            2 => "b.y",
            _ => rng.pick(NAMES),
        };
        // "." alone is not a normalised component; use it inside names only.
        path.extend_from_slice(if name == "." { b".a" } else { name.as_bytes() });
    }
    path
}

/// A path built from a rule, so that matches are common: wildcards replaced by names, `**` by
/// zero to two components, and sometimes something appended beneath.
fn path_from_rule(rng: &mut Rng, entry: &str) -> Vec<u8> {
    let mut path = String::new();
    let entry = entry.trim_start_matches('=');
    for component in entry.split('/').filter(|c| !c.is_empty()) {
        if component == "**" {
            for _ in 0..rng.below(3) {
                path.push('/');
                path.push_str(rng.pick(&["a", "q", ".env"]));
            }
            continue;
        }
        path.push('/');
        for c in component.chars() {
            match c {
                '*' => path.push_str(rng.pick(&["", "a", "zz", "b.y"])),
                '?' => path.push(if rng.below(2) == 0 { 'a' } else { 'z' }),
                _ => path.push(c),
            }
        }
        if path.ends_with('/') {
            path.push('k');
        }
    }
    for _ in 0..rng.below(3) {
        path.push('/');
        path.push_str(
            rng.pick(NAMES)
                .trim_start_matches('.')
                .get(..)
                .unwrap_or("n"),
        );
        if path.ends_with('/') {
            path.push('n');
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    path.into_bytes()
}

fn is_normalised(path: &[u8]) -> bool {
    path == b"/"
        || (path.starts_with(b"/")
            && path[1..]
                .split(|&b| b == b'/')
                .all(|name| !name.is_empty() && name != b"." && name != b".."))
}

fn policy_of(entries: &[(PathKind, String)]) -> Policy {
    let mut policy = Policy::default();
    for (kind, text) in entries {
        let entry = PathEntry::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        policy
            .filesystem
            .entries_mut(*kind)
            .push(Located::default_value(entry));
    }
    policy
}

fn effective(policy: &Policy) -> EffectivePolicy {
    resolve(
        policy,
        &CliOverrides::default(),
        Path::new("/"),
        Some(Path::new("/home/u")),
    )
    .unwrap_or_else(|d| panic!("does not resolve:\n{d}"))
}

#[test]
fn compiled_form_decides_like_the_reference_matcher() {
    let mut rng = Rng(0x5eed_5a4d_7ace_0f01);
    let mut pairs = 0;
    let mut allowed_reads = 0;
    let mut denials = 0;
    for round in 0..400 {
        let entries: Vec<(PathKind, String)> = (0..rng.below(9))
            .map(|_| (PathKind::ALL[rng.below(4)], random_entry(&mut rng)))
            .collect();
        let effective = effective(&policy_of(&entries));
        let compiled =
            compile(&effective).unwrap_or_else(|d| panic!("round {round}: {entries:?}:\n{d}"));
        let mut paths: Vec<Vec<u8>> = (0..20).map(|_| random_path(&mut rng)).collect();
        for (_, entry) in &entries {
            for _ in 0..3 {
                paths.push(path_from_rule(&mut rng, entry));
            }
        }
        // Only normalised paths are ever decided (`.*` with an empty `*` would give `/.`).
        for path in paths.into_iter().filter(|p| is_normalised(p)) {
            let expected = decide_by_rules(&effective, &path);
            let actual = compiled.decide(&path);
            assert_eq!(
                actual,
                expected,
                "round {round}: rules {entries:?} disagree on {:?}",
                String::from_utf8_lossy(&path)
            );
            pairs += 1;
            allowed_reads += usize::from(actual.allows(Access::Read));
            denials += usize::from(matches!(
                actual.verdict(Access::Read),
                Verdict::Denied { .. }
            ));
        }
    }
    assert!(pairs > 10_000, "only {pairs} pairs");
    // The generator must exercise both outcomes, or the comparison proves little.
    assert!(
        allowed_reads > pairs / 20,
        "only {allowed_reads} of {pairs} reads allowed"
    );
    assert!(
        denials > pairs / 20,
        "only {denials} of {pairs} paths hit a deny rule"
    );
}

#[test]
fn deny_overrides_and_write_implies_read() {
    let policy = policy_of(&[
        (PathKind::Read, "/".to_owned()),
        (PathKind::Write, "/tmp".to_owned()),
        (PathKind::Exec, "/usr/bin".to_owned()),
        (PathKind::Deny, "**/.env".to_owned()),
        (PathKind::Deny, "/tmp/secret".to_owned()),
    ]);
    let effective = effective(&policy);
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    let verdict = |path: &str, access| compiled.decide(path.as_bytes()).verdict(access);
    assert_eq!(
        verdict("/etc/passwd", Access::Read),
        Verdict::Allowed {
            kind: PathKind::Read,
            rule: 0
        }
    );
    assert_eq!(verdict("/etc/passwd", Access::Write), Verdict::Unlisted);
    assert_eq!(
        verdict("/tmp/x", Access::Write),
        Verdict::Allowed {
            kind: PathKind::Write,
            rule: 0
        }
    );
    assert_eq!(
        verdict("/usr/bin/ls", Access::Exec),
        Verdict::Allowed {
            kind: PathKind::Exec,
            rule: 0
        }
    );
    assert_eq!(verdict("/usr/lib/x.so", Access::Exec), Verdict::Unlisted);
    assert_eq!(
        verdict("/tmp/secret/key", Access::Read),
        Verdict::Denied { rule: 1 }
    );
    assert_eq!(
        verdict("/tmp/a/.env", Access::Write),
        Verdict::Denied { rule: 0 }
    );
    assert_eq!(verdict("/.env", Access::Read), Verdict::Denied { rule: 0 });
    assert_eq!(
        verdict("/tmp/a/.envrc", Access::Read),
        Verdict::Allowed {
            kind: PathKind::Read,
            rule: 0
        }
    );

    // Write alone grants read, and reports the write rule.
    let effective = self::effective(&policy_of(&[(PathKind::Write, "./out".to_owned())]));
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        compiled.decide(b"/out/f").verdict(Access::Read),
        Verdict::Allowed {
            kind: PathKind::Write,
            rule: 0
        }
    );
}

#[test]
fn paths_longer_than_the_limit_are_denied() {
    let effective = effective(&policy_of(&[(PathKind::Read, "/".to_owned())]));
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    let mut path = b"/a".repeat(MAX_PATH_LEN / 2);
    assert_eq!(path.len(), MAX_PATH_LEN);
    assert!(
        compiled.decide(&path).allows(Access::Read),
        "a path of exactly the limit is decided"
    );
    path.push(b'a');
    assert_eq!(compiled.decide(&path), PathDecision::TooLong);
    assert_eq!(
        compiled.decide(&path).verdict(Access::Read),
        Verdict::TooLong
    );
    assert_eq!(decide_by_rules(&effective, &path), PathDecision::TooLong);
}

#[test]
fn unmatched_paths_reach_the_dead_state_early() {
    let effective = effective(&policy_of(&[(PathKind::Read, "/usr".to_owned())]));
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    let header = compiled.header();
    let class = |b: u8| usize::from(compiled.class_of()[usize::from(b)]);
    let n = usize::from(header.n_classes);
    let after_slash = compiled.transitions()[usize::from(header.start) * n + class(b'/')];
    let after_e = compiled.transitions()[usize::from(after_slash) * n + class(b'e')];
    assert_eq!(after_e, DEAD_STATE, "no rule can match below /e...");
    assert_eq!(compiled.accept()[usize::from(DEAD_STATE)].kinds, 0);
    assert!(!compiled.decide(b"/etc/passwd").allows(Access::Read));
    assert_eq!(compiled.transitions().len(), compiled.n_states() * n);
}

#[test]
fn an_empty_rule_set_compiles_to_deny_everything() {
    let effective = effective(&Policy::default());
    let compiled = compile(&effective).unwrap_or_else(|d| panic!("{d}"));
    for access in [Access::Read, Access::Write, Access::Exec] {
        assert_eq!(compiled.decide(b"/").verdict(access), Verdict::Unlisted);
        assert_eq!(
            compiled.decide(b"/usr/bin/ls").verdict(access),
            Verdict::Unlisted
        );
    }
}

#[test]
fn exceeding_the_state_limit_is_an_error_naming_the_rules() {
    // "a, then exactly twelve more components" forces the automaton to remember which of the
    // last thirteen components were `a`: 2^13 states.
    let blowup = format!("**/a{}", "/*".repeat(12));
    let effective = effective(&policy_of(&[
        (PathKind::Read, "/usr".to_owned()),
        (PathKind::Deny, blowup.clone()),
    ]));
    let diagnostics = compile(&effective).expect_err("the automaton cannot fit");
    let text = diagnostics.to_string();
    assert!(
        text.contains(&format!(
            "more than {MAX_STATES} automaton states (limit MAX_STATES)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&blowup),
        "the hint names the wildcard rule: {text}"
    );
    assert!(
        !text.contains("\"/usr\""),
        "literal rules are not blamed: {text}"
    );
}

#[test]
fn exceeding_the_class_limit_is_an_error_naming_the_rule() {
    // ASCII letters and digits, and two-byte UTF-8 characters covering all 64 continuation
    // bytes: 128 distinct bytes, more than the classes left besides "other" and `/`.
    let names = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain('\u{100}'..'\u{180}');
    let entries: Vec<(PathKind, String)> =
        names.map(|c| (PathKind::Read, format!("/{c}"))).collect();
    let effective = effective(&policy_of(&entries));
    let text = match compile(&effective) {
        Ok(compiled) => panic!(
            "{} rules compiled into {} classes",
            entries.len(),
            compiled.n_classes()
        ),
        Err(diagnostics) => diagnostics.to_string(),
    };
    assert!(
        text.contains(&format!("limit MAX_CLASSES = {MAX_CLASSES} byte classes")),
        "{text}"
    );
    assert!(text.contains("is the first rule past the limit"), "{text}");
}

#[test]
fn exceeding_the_rule_limit_is_an_error() {
    let entries: Vec<(PathKind, String)> = (0..=MAX_RULES_PER_KIND)
        .map(|i| (PathKind::Deny, format!("/d{i}")))
        .collect();
    let diagnostics = resolve(
        &policy_of(&entries),
        &CliOverrides::default(),
        Path::new("/"),
        None,
    )
    .expect_err("too many deny rules");
    let text = diagnostics.to_string();
    assert!(
        text.contains(&format!(
            "more than {MAX_RULES_PER_KIND} distinct deny rules"
        )),
        "{text}"
    );
}

#[test]
fn duplicate_rules_are_merged_keeping_the_first() {
    let effective = effective(&policy_of(&[
        (PathKind::Read, "/usr".to_owned()),
        (PathKind::Read, "/usr/".to_owned()),
        (PathKind::Read, "/./usr//".to_owned()),
        (PathKind::Read, "/etc".to_owned()),
    ]));
    let rules = effective.paths.rules(PathKind::Read);
    let written: Vec<&str> = rules.iter().map(|r| r.written.as_str()).collect();
    assert_eq!(written, ["/usr", "/etc"]);
}
