//! The compiled path policy laid out as the kernel programs read it (see
//! `sandtrace-ebpf/src/path_policy.rs`): the header, one row of 256 next states per state (byte
//! classes expanded so a step costs one lookup), the accept records, and the deny-ahead flags.

use std::collections::VecDeque;

use sandtrace_common::policy::{BYTE_VALUES, KIND_DENY};

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

/// For each state, whether some continuation reaches a state whose accept record has a deny
/// rule (the state itself included): a directory whose path ends in such a state, followed by
/// `/`, may contain denied paths.
pub fn deny_ahead(paths: &CompiledPaths, rows: &[[u16; BYTE_VALUES]]) -> Vec<u8> {
    let n = paths.n_states();
    let mut predecessors: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (state, row) in rows.iter().enumerate() {
        let mut next: Vec<usize> = row.iter().map(|&s| s as usize).collect();
        next.sort_unstable();
        next.dedup();
        for s in next {
            predecessors[s].push(state);
        }
    }
    let mut ahead = vec![0u8; n];
    let mut queue: VecDeque<usize> = paths
        .accept()
        .iter()
        .enumerate()
        // A regime's deny rules count too: a task in it must not move their paths away.
        .filter(|(_, a)| {
            a.kinds & KIND_DENY != 0
                || a.regime_kinds
                    .iter()
                    .any(|&k| u16::from(k) & KIND_DENY != 0)
        })
        .map(|(s, _)| s)
        .collect();
    for &s in &queue {
        ahead[s] = 1;
    }
    while let Some(s) = queue.pop_front() {
        for &p in &predecessors[s] {
            if ahead[p] == 0 {
                ahead[p] = 1;
                queue.push_back(p);
            }
        }
    }
    ahead
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
        let ahead = deny_ahead(&paths, &rows);
        let below = |p: &str| ahead[walk(&rows, paths.header().start, &format!("{p}/"))];
        assert_eq!(below("/home/u"), 1, "/home/u contains .ssh");
        assert_eq!(below("/home"), 1);
        // `**/.env` can match below any directory.
        assert_eq!(below("/tmp"), 1);
    }

    #[test]
    fn deny_ahead_is_clear_where_no_deny_can_match() {
        let paths = compiled("[filesystem]\nallow_write = [\"/tmp\"]\ndeny = [\"/etc/shadow\"]\n");
        let rows = expanded_rows(&paths);
        let ahead = deny_ahead(&paths, &rows);
        let below = |p: &str| ahead[walk(&rows, paths.header().start, &format!("{p}/"))];
        assert_eq!(below("/tmp/x"), 0);
        assert_eq!(below("/etc"), 1);
    }
}
