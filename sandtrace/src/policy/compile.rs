//! The path rules compiled into the automaton the kernel evaluates (layout and walk:
//! `sandtrace_common::policy`).
//!
//! Every rule becomes a small NFA over path bytes; one subset construction over all rules of
//! all kinds gives a DFA whose states record which rules have matched, and minimisation then
//! merges the states no path can tell apart. Each rule's NFA, for a
//! pattern of components `c1/c2/.../cm`, has a *boundary* state per component boundary, from
//! which only `/` leads on, into the matcher of the next component:
//! - a literal or `*`/`?` component consumes a non-empty name (never `/`);
//! - `**` may be skipped (epsilon to the next boundary) or consume any number of `/name`;
//! - the last boundary accepts (the path *is* a match) and on `/` enters an accepting state
//!   that consumes everything (the path lies beneath a match).
//!
//! Bytes are grouped into classes: `/`, each byte that some literal uses, and all the rest.
//!
//! Limits (`MAX_STATES`, `MAX_CLASSES`; `MAX_RULES_PER_KIND` is checked when resolving) are
//! validation errors that name the rules involved: no rule is ever dropped.

use std::collections::{HashMap, VecDeque};

use sandtrace_common::policy::{
    BYTE_VALUES, DEAD_STATE, MAX_CLASSES, MAX_PATH_LEN, MAX_STATES, PathAccept, PathDfaHeader,
};

use super::decision::PathDecision;
use super::diagnostic::{Diagnostics, Location, Problem};
use super::glob::{Component, GlobToken};
use super::model::PathKind;
use super::resolve::{EffectivePolicy, PathRule};

/// The compiled path rules.
#[derive(Clone, PartialEq, Eq)]
pub struct CompiledPaths {
    class_of: [u8; BYTE_VALUES],
    n_classes: usize,
    start: u16,
    /// `state * n_classes + class -> next state`
    transitions: Vec<u16>,
    /// One record per state.
    accept: Vec<PathAccept>,
}

impl CompiledPaths {
    pub fn header(&self) -> PathDfaHeader {
        PathDfaHeader {
            start: self.start,
            n_states: u16::try_from(self.accept.len()).expect("at most MAX_STATES states"),
            n_classes: u16::try_from(self.n_classes).expect("at most MAX_CLASSES classes"),
            _pad: 0,
        }
    }

    pub fn class_of(&self) -> &[u8; BYTE_VALUES] {
        &self.class_of
    }

    pub fn transitions(&self) -> &[u16] {
        &self.transitions
    }

    pub fn accept(&self) -> &[PathAccept] {
        &self.accept
    }

    /// The accept records, writable: for tests that set by hand what a policy would (the VM
    /// tests of the kernel's regime tracking, `tests/vm_regime_kernel.rs`).
    #[doc(hidden)]
    pub fn accept_mut(&mut self) -> &mut [PathAccept] {
        &mut self.accept
    }

    pub fn n_states(&self) -> usize {
        self.accept.len()
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Decides for `path` (a normalised absolute path) exactly as the kernel does: byte by
    /// byte through the table, stopping early in the dead state.
    pub fn decide(&self, path: &[u8]) -> PathDecision {
        if path.len() > MAX_PATH_LEN {
            return PathDecision::TooLong;
        }
        let mut state = self.start;
        for &byte in path {
            if state == DEAD_STATE {
                break;
            }
            let class = usize::from(self.class_of[usize::from(byte)]);
            state = self.transitions[usize::from(state) * self.n_classes + class];
        }
        PathDecision::Matched(self.accept[usize::from(state)])
    }
}

impl std::fmt::Debug for CompiledPaths {
    /// The shape only: the tables run to hundreds of thousands of entries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPaths")
            .field("n_states", &self.n_states())
            .field("n_classes", &self.n_classes)
            .field("start", &self.start)
            .finish_non_exhaustive()
    }
}

/// Compiles the path rules of `policy`.
pub fn compile(policy: &EffectivePolicy) -> Result<CompiledPaths, Diagnostics> {
    let rules: Vec<(PathKind, u16, &PathRule)> = PathKind::ALL
        .into_iter()
        .flat_map(|kind| {
            policy
                .paths
                .rules(kind)
                .iter()
                .enumerate()
                .map(move |(index, rule)| {
                    let index = u16::try_from(index)
                        .expect("resolve keeps every kind within MAX_RULES_PER_KIND rules");
                    (kind, index, rule)
                })
        })
        .collect();
    let classes = ByteClasses::new(&rules)?;
    let mut nfa = Nfa::default();
    for &(kind, index, rule) in &rules {
        nfa.add_rule(rule.pattern.components(), kind, index);
    }
    subset_construction(&nfa, &classes)
        .map(|dfa| minimise(&dfa))
        .filter(|dfa| dfa.n_states() <= MAX_STATES)
        .ok_or_else(|| too_many_states(&rules))
}

fn too_many_states(rules: &[(PathKind, u16, &PathRule)]) -> Diagnostics {
    let wildcard_rules: Vec<&(PathKind, u16, &PathRule)> = rules
        .iter()
        .filter(|(_, _, rule)| rule.pattern.has_wildcards())
        .collect();
    let location = wildcard_rules
        .first()
        .map_or(Location::Unpositioned, |(_, _, rule)| {
            rule.origin.location()
        });
    let listed: Vec<String> = wildcard_rules
        .iter()
        .map(|(kind, _, rule)| describe(*kind, rule))
        .collect();
    Problem::new(format!(
        "the path rules need more than {MAX_STATES} automaton states (limit MAX_STATES)"
    ))
    .with_hint(format!(
        "the wildcard rules multiply the cases the automaton must tell apart: {}; replace \
         some of them by literal paths, or use fewer rules",
        if listed.is_empty() {
            "(none)".to_owned()
        } else {
            listed.join(", ")
        }
    ))
    .at(location)
    .into()
}

fn describe(kind: PathKind, rule: &PathRule) -> String {
    format!("{} \"{}\" ({})", kind.key(), rule.written, rule.origin)
}

/// Byte classes: class 0 holds the bytes no literal uses, class 1 is `/`, and every byte some
/// literal uses has a class of its own.
struct ByteClasses {
    class_of: [u8; BYTE_VALUES],
    /// One byte of each class, to compute the class's transitions with.
    representative: Vec<u8>,
}

const OTHER_CLASS: u8 = 0;
const SLASH_CLASS: u8 = 1;

impl ByteClasses {
    fn new(rules: &[(PathKind, u16, &PathRule)]) -> Result<Self, Diagnostics> {
        let mut class_of = [OTHER_CLASS; BYTE_VALUES];
        class_of[usize::from(b'/')] = SLASH_CLASS;
        let mut representative = vec![0, b'/'];
        for &(kind, _, rule) in rules {
            for byte in literal_bytes(rule.pattern.components()) {
                if byte == b'/' || class_of[usize::from(byte)] != OTHER_CLASS {
                    continue;
                }
                if representative.len() == MAX_CLASSES {
                    return Err(Problem::new(format!(
                        "the path rules use more than {} distinct bytes (limit MAX_CLASSES = {MAX_CLASSES} byte classes)",
                        MAX_CLASSES - 2
                    ))
                    .with_hint(format!(
                        "{} is the first rule past the limit; shorten names with `*` or `?`",
                        describe(kind, rule)
                    ))
                    .at(rule.origin.location())
                    .into());
                }
                class_of[usize::from(byte)] =
                    u8::try_from(representative.len()).expect("MAX_CLASSES fits in u8");
                representative.push(byte);
            }
        }
        // Class 0 needs a byte that no literal uses; with MAX_CLASSES < 255 one exists.
        representative[usize::from(OTHER_CLASS)] = (0..=u8::MAX)
            .find(|&b| class_of[usize::from(b)] == OTHER_CLASS)
            .expect("fewer classes than byte values");
        Ok(Self {
            class_of,
            representative,
        })
    }
}

fn literal_bytes(components: &[Component]) -> impl Iterator<Item = u8> + '_ {
    components.iter().flat_map(|component| {
        let bytes: Vec<u8> = match component {
            Component::Literal(name) => name.clone(),
            Component::Glob(tokens) => tokens
                .iter()
                .filter_map(|t| match t {
                    GlobToken::Byte(b) => Some(*b),
                    GlobToken::AnyByte | GlobToken::AnyRun => None,
                })
                .collect(),
            Component::AnyDepth => Vec::new(),
        };
        bytes.into_iter()
    })
}

/// The bytes an NFA edge consumes.
#[derive(Clone, Copy, Debug)]
enum ByteSet {
    Byte(u8),
    Slash,
    NonSlash,
    Any,
}

impl ByteSet {
    fn contains(self, byte: u8) -> bool {
        match self {
            ByteSet::Byte(b) => b == byte,
            ByteSet::Slash => byte == b'/',
            ByteSet::NonSlash => byte != b'/',
            ByteSet::Any => true,
        }
    }
}

#[derive(Default)]
struct NfaState {
    edges: Vec<(ByteSet, usize)>,
    epsilon: Vec<usize>,
    accept: Option<(PathKind, u16)>,
}

#[derive(Default)]
struct Nfa {
    states: Vec<NfaState>,
    starts: Vec<usize>,
}

impl Nfa {
    fn state(&mut self) -> usize {
        self.states.push(NfaState::default());
        self.states.len() - 1
    }

    fn edge(&mut self, from: usize, bytes: ByteSet, to: usize) {
        self.states[from].edges.push((bytes, to));
    }

    fn epsilon(&mut self, from: usize, to: usize) {
        self.states[from].epsilon.push(to);
    }

    fn add_rule(&mut self, components: &[Component], kind: PathKind, index: u16) {
        let mut boundary = self.state();
        self.starts.push(boundary);
        for component in components {
            let next = self.state();
            match component {
                Component::AnyDepth => {
                    self.epsilon(boundary, next);
                    let name_start = self.state();
                    let name = self.state();
                    self.edge(boundary, ByteSet::Slash, name_start);
                    self.edge(name_start, ByteSet::NonSlash, name);
                    self.edge(name, ByteSet::NonSlash, name);
                    self.epsilon(name, boundary);
                }
                Component::Literal(bytes) => {
                    let mut at = self.state();
                    self.edge(boundary, ByteSet::Slash, at);
                    for &byte in bytes {
                        let after = self.state();
                        self.edge(at, ByteSet::Byte(byte), after);
                        at = after;
                    }
                    self.epsilon(at, next);
                }
                Component::Glob(tokens) => {
                    let mut at = self.state();
                    self.edge(boundary, ByteSet::Slash, at);
                    if tokens.iter().all(|t| *t == GlobToken::AnyRun) {
                        // `*` alone must not match the empty name after the `/` of `/`.
                        let after = self.state();
                        self.edge(at, ByteSet::NonSlash, after);
                        at = after;
                    }
                    for token in tokens {
                        match *token {
                            GlobToken::AnyRun => self.edge(at, ByteSet::NonSlash, at),
                            GlobToken::AnyByte | GlobToken::Byte(_) => {
                                let bytes = match *token {
                                    GlobToken::Byte(b) => ByteSet::Byte(b),
                                    _ => ByteSet::NonSlash,
                                };
                                let after = self.state();
                                self.edge(at, bytes, after);
                                at = after;
                            }
                        }
                    }
                    self.epsilon(at, next);
                }
            }
            boundary = next;
        }
        let beneath = self.state();
        self.edge(boundary, ByteSet::Slash, beneath);
        self.edge(beneath, ByteSet::Any, beneath);
        self.states[boundary].accept = Some((kind, index));
        self.states[beneath].accept = Some((kind, index));
    }

    fn accept(&self, set: &[usize]) -> PathAccept {
        let mut accept = PathAccept::NONE;
        for &(kind, index) in set.iter().filter_map(|&s| self.states[s].accept.as_ref()) {
            accept.kinds |= kind.bit();
            let first = &mut accept.first_rule[kind.index()];
            *first = (*first).min(index);
        }
        accept
    }
}

/// Most states the subset construction may build before minimisation shrinks them.
const SUBSET_STATE_CAP: usize = 4 * MAX_STATES;

/// Builds the DFA; `None` if it needs more than [`SUBSET_STATE_CAP`] states.
fn subset_construction(nfa: &Nfa, classes: &ByteClasses) -> Option<CompiledPaths> {
    let n_classes = classes.representative.len();
    let mut closure = Closure::new(nfa.states.len());
    let mut ids: HashMap<Vec<usize>, u16> = HashMap::new();
    let mut sets: Vec<Vec<usize>> = Vec::new();
    let mut intern = |set: Vec<usize>, sets: &mut Vec<Vec<usize>>| -> Option<u16> {
        if let Some(&id) = ids.get(&set) {
            return Some(id);
        }
        if sets.len() == SUBSET_STATE_CAP {
            return None;
        }
        let id = u16::try_from(sets.len()).expect("SUBSET_STATE_CAP fits in u16");
        ids.insert(set.clone(), id);
        sets.push(set);
        Some(id)
    };
    let dead = intern(Vec::new(), &mut sets)?;
    debug_assert_eq!(dead, DEAD_STATE);
    let start = intern(closure.of(nfa, nfa.starts.iter().copied()), &mut sets)?;

    let mut transitions = Vec::new();
    let mut pending: VecDeque<usize> = (0..sets.len()).collect();
    while let Some(state) = pending.pop_front() {
        // States are numbered in the order they are queued, so rows are appended in order.
        debug_assert_eq!(transitions.len(), state * n_classes);
        for &byte in &classes.representative {
            let targets = sets[state].iter().flat_map(|&from| {
                nfa.states[from]
                    .edges
                    .iter()
                    .filter(move |(bytes, _)| bytes.contains(byte))
                    .map(|&(_, to)| to)
            });
            let next = closure.of(nfa, targets);
            let known = sets.len();
            let id = intern(next, &mut sets)?;
            if usize::from(id) == known {
                pending.push_back(known);
            }
            transitions.push(id);
        }
    }
    let accept = sets.iter().map(|set| nfa.accept(set)).collect();
    Some(CompiledPaths {
        class_of: classes.class_of,
        n_classes,
        start,
        transitions,
        accept,
    })
}

/// Epsilon closures, with the visited marks kept between calls (cleared by generation) so
/// that a closure costs what it visits, not the size of the NFA.
struct Closure {
    visited: Vec<u32>,
    generation: u32,
    stack: Vec<usize>,
}

impl Closure {
    fn new(n_states: usize) -> Self {
        Self {
            visited: vec![0; n_states],
            generation: 0,
            stack: Vec::new(),
        }
    }

    /// The sorted set of NFA states reachable from `states` by epsilon edges.
    fn of(&mut self, nfa: &Nfa, states: impl IntoIterator<Item = usize>) -> Vec<usize> {
        self.generation += 1;
        self.stack.extend(states);
        let mut set = Vec::new();
        while let Some(state) = self.stack.pop() {
            if self.visited[state] == self.generation {
                continue;
            }
            self.visited[state] = self.generation;
            set.push(state);
            self.stack.extend(&nfa.states[state].epsilon);
        }
        set.sort_unstable();
        set
    }
}

/// Merges the states no path can tell apart: those whose walks end in equal accept records
/// for every remaining input (Moore's partition refinement). The dead state stays state 0.
fn minimise(dfa: &CompiledPaths) -> CompiledPaths {
    let n_states = dfa.accept.len();
    let k = dfa.n_classes;
    let mut block: Vec<usize> = number_by_key(dfa.accept.iter().map(|a| (a.kinds, a.first_rule)));
    let mut n_blocks = count_blocks(&block);
    loop {
        let refined = number_by_key((0..n_states).map(|state| {
            let row = &dfa.transitions[state * k..(state + 1) * k];
            let mut signature = Vec::with_capacity(k + 1);
            signature.push(block[state]);
            signature.extend(row.iter().map(|&next| block[usize::from(next)]));
            signature
        }));
        let n_refined = count_blocks(&refined);
        block = refined;
        if n_refined == n_blocks {
            break;
        }
        n_blocks = n_refined;
    }
    // Number the blocks in order of first appearance, which puts the dead state's block first.
    let mut new_id = vec![u16::MAX; n_blocks];
    let mut representatives = Vec::with_capacity(n_blocks);
    for state in 0..n_states {
        if new_id[block[state]] == u16::MAX {
            new_id[block[state]] =
                u16::try_from(representatives.len()).expect("fewer states than before");
            representatives.push(state);
        }
    }
    let transitions = representatives
        .iter()
        .flat_map(|&state| dfa.transitions[state * k..(state + 1) * k].iter())
        .map(|&next| new_id[block[usize::from(next)]])
        .collect();
    CompiledPaths {
        class_of: dfa.class_of,
        n_classes: k,
        start: new_id[block[usize::from(dfa.start)]],
        transitions,
        accept: representatives
            .iter()
            .map(|&state| dfa.accept[state])
            .collect(),
    }
}

/// Numbers items by key: equal keys get equal numbers, in order of first appearance.
fn number_by_key<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> Vec<usize> {
    let mut numbers: HashMap<K, usize> = HashMap::new();
    keys.map(|key| {
        let next = numbers.len();
        *numbers.entry(key).or_insert(next)
    })
    .collect()
}

fn count_blocks(block: &[usize]) -> usize {
    block.iter().max().map_or(0, |&max| max + 1)
}
