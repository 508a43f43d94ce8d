//! The compiled path policy laid out as the kernel programs read it (see
//! `sandtrace-ebpf/src/path_policy.rs`): the header, one row of 256 next states per state (byte
//! classes expanded so a step costs one lookup), the accept records, and the deny-ahead flags.

use std::collections::VecDeque;

use sandtrace_common::policy::{BYTE_VALUES, KIND_DENY, MAX_REGIMES, PathAccept};

use crate::policy::CompiledPaths;

/// `rows[state][byte]`: the next state.
pub fn expanded_rows(paths: &CompiledPaths) -> Vec<[u16; BYTE_VALUES]> {
    let n_classes = paths.n_classes();
    let class_of = paths.class_of();
    let transitions = paths.transitions();
    (0..paths.n_states())
        .map(|state| {
            std::array::from_fn(|byte| transitions[state * n_classes + class_of[byte] as usize])
        })
        .collect()
}

/// For each state, which deny rules some continuation reaches (the state itself included):
/// bit 0 ([`DENY_AHEAD_BASE`]) for a base deny rule, bit `1 + r` for a deny rule of regime `r`
/// (`[[after_exec]]`, which counts only for the regime's tasks). A directory whose path ends in
/// such a state, followed by `/`, may contain paths those rules deny.
pub fn deny_ahead(accept: &[PathAccept], rows: &[[u16; BYTE_VALUES]]) -> Vec<u8> {
    let n = accept.len();
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (state, row) in rows.iter().enumerate() {
        let mut next: Vec<usize> = row.iter().map(|&s| s as usize).collect();
        next.sort_unstable();
        next.dedup();
        for s in next {
            predecessors[s].push(state);
        }
    }
    let mut ahead: Vec<u8> = accept.iter().map(deny_bits).collect();
    let mut queue: VecDeque<usize> = (0..n).filter(|&s| ahead[s] != 0).collect();
    // A state is queued again whenever it gains a bit: at most 1 + MAX_REGIMES times.
    while let Some(s) = queue.pop_front() {
        for &p in &predecessors[s] {
            let gained = ahead[s] & !ahead[p];
            if gained != 0 {
                ahead[p] |= gained;
                queue.push_back(p);
            }
        }
    }
    ahead
}

/// In [`deny_ahead`]'s flags: a base deny rule lies ahead.
pub const DENY_AHEAD_BASE: u8 = 1;

/// The [`deny_ahead`] bits of the deny rules matching in one state.
fn deny_bits(a: &PathAccept) -> u8 {
    let mut bits = if a.kinds & KIND_DENY != 0 {
        DENY_AHEAD_BASE
    } else {
        0
    };
    for (r, kinds) in a.regime_kinds.iter().enumerate().take(MAX_REGIMES) {
        if u16::from(*kinds) & KIND_DENY != 0 {
            bits |= 1 << (1 + r);
        }
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{CliOverrides, PathDecision, Policy, compile, resolve};

    fn compiled(toml: &str) -> CompiledPaths {
        let policy: Policy =
            crate::policy::parse::parse(std::path::Path::new("t.toml"), toml.into())
                .expect("test policy parses");
        let effective = resolve(
            &policy,
            &CliOverrides::default(),
            std::path::Path::new("/"),
            None,
        )
        .unwrap();
        compile(&effective).unwrap()
    }

    fn walk(rows: &[[u16; 256]], start: u16, path: &str) -> usize {
        path.bytes()
            .fold(start as usize, |s, b| rows[s][b as usize] as usize)
    }

    #[test]
    fn rows_walk_like_the_compiled_form() {
        let paths = compiled("[filesystem]\nallow_read = [\"/usr\"]\ndeny = [\"/usr/secret\"]\n");
        let rows = expanded_rows(&paths);
        let start = paths.header().start;
        for p in [
            "/usr/bin/ls",
            "/usr/secret",
            "/usr/secret/x",
            "/etc",
            "/usrx",
        ] {
            let state = walk(&rows, start, p);
            let PathDecision::Matched(expected) = paths.decide(p.as_bytes()) else {
                panic!("{p} is not too long")
            };
            assert_eq!(paths.accept()[state], expected, "{p}");
        }
    }

    #[test]
    fn deny_ahead_marks_parents_of_denied_paths() {
        let paths = compiled(
            "[filesystem]\nallow_write = [\"/home\"]\ndeny = [\"/home/u/.ssh\", \"**/.env\"]\n",
        );
        let rows = expanded_rows(&paths);
        let ahead = deny_ahead(paths.accept(), &rows);
        let below = |p: &str| ahead[walk(&rows, paths.header().start, &format!("{p}/"))];
        assert_eq!(below("/home/u"), 1, "/home/u contains .ssh");
        assert_eq!(below("/home"), 1);
        // `**/.env` can match below any directory.
        assert_eq!(below("/tmp"), 1);
    }

    /// Regime deny rules get bits of their own, which reach the states above them and no
    /// others. Regimes' rules are set in the accept records by hand: the policy syntax for them
    /// is not this module's.
    #[test]
    fn deny_ahead_has_one_bit_per_regime() {
        let paths = compiled(
            "[filesystem]\nallow_write = [\"/home\", \"/tmp\"]\nallow_read = [\"/home/u/.npmrc\"]\n\
             deny = [\"/etc/shadow\"]\n",
        );
        let rows = expanded_rows(&paths);
        let start = paths.header().start;
        let home_npmrc = walk(&rows, start, "/home/u/.npmrc");
        assert_ne!(home_npmrc, walk(&rows, start, "/home/u/x"));
        let mut accept = paths.accept().to_vec();
        accept[home_npmrc].regime_kinds[1] |= KIND_DENY as u8;
        let ahead = deny_ahead(&accept, &rows);
        let below = |p: &str| ahead[walk(&rows, start, &format!("{p}/"))];
        assert_eq!(below("/etc"), DENY_AHEAD_BASE);
        assert_eq!(
            below("/home/u"),
            1 << 2,
            "regime 1's deny rule is below /home/u"
        );
        assert_eq!(below("/home"), 1 << 2);
        assert_eq!(below("/home/v"), 0);
        assert_eq!(below("/tmp"), 0);
        assert_eq!(ahead[home_npmrc], 1 << 2, "the denied state itself");
        assert_eq!(
            ahead[start as usize] & (DENY_AHEAD_BASE | 1 << 2),
            DENY_AHEAD_BASE | 1 << 2
        );
    }

    #[test]
    fn deny_ahead_is_clear_where_no_deny_can_match() {
        let paths = compiled("[filesystem]\nallow_write = [\"/tmp\"]\ndeny = [\"/etc/shadow\"]\n");
        let rows = expanded_rows(&paths);
        let ahead = deny_ahead(paths.accept(), &rows);
        let below = |p: &str| ahead[walk(&rows, paths.header().start, &format!("{p}/"))];
        assert_eq!(below("/tmp/x"), 0);
        assert_eq!(below("/etc"), 1);
    }
}
