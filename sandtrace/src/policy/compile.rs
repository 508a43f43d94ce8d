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
    BYTE_VALUES, DEAD_STATE, KIND_ENTER, MAX_CLASSES, MAX_PATH_LEN, MAX_STATES, PathAccept,
    PathDfaHeader,
};

use super::decision::PathDecision;
use super::diagnostic::{Diagnostics, Location, Problem};
use super::glob::{Component, GlobToken, PathPattern};
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
        PathDecision::Matched(self.accept[usize::from(self.step(self.start, path))])
    }

    /// The state before any byte.
    pub fn start(&self) -> u16 {
        self.start
    }

    /// The state after `bytes` from `state` (for walks that extend a path name by name; no
    /// length limit).
    pub fn step(&self, mut state: u16, bytes: &[u8]) -> u16 {
        for &byte in bytes {
            if state == DEAD_STATE {
                break;
            }
            state = self.next(state, byte);
        }
        state
    }

    /// The state after one byte from `state`.
    pub fn next(&self, state: u16, byte: u8) -> u16 {
        let class = usize::from(self.class_of[usize::from(byte)]);
        self.transitions[usize::from(state) * self.n_classes + class]
    }
}

impl CompiledPaths {
    /// A shortest path that ends in `state`, for messages (breadth-first from the start, one
    /// byte per class, readable ones preferred).
    fn example_path(&self, state: usize) -> Vec<u8> {
        let mut representative = vec![None; self.n_classes];
        let readable = b"/xyzabcdefghijklmnopqrstuvw0123456789._-";
        for byte in readable.iter().copied().chain(0..=u8::MAX) {
            let class = usize::from(self.class_of[usize::from(byte)]);
            representative[class].get_or_insert(byte);
        }
        let mut previous: Vec<Option<(usize, u8)>> = vec![None; self.accept.len()];
        let start = usize::from(self.start);
        let mut seen = vec![false; self.accept.len()];
        seen[start] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(at) = queue.pop_front() {
            if at == state {
                break;
            }
            for (class, byte) in representative.iter().enumerate() {
                let Some(byte) = *byte else { continue };
                let next = usize::from(self.transitions[at * self.n_classes + class]);
                if !seen[next] {
                    seen[next] = true;
                    previous[next] = Some((at, byte));
                    queue.push_back(next);
                }
            }
        }
        let mut path = Vec::new();
        let mut at = state;
        while let Some((before, byte)) = previous[at] {
            path.push(byte);
            at = before;
        }
        path.reverse();
        path
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

/// Whose rule an automaton rule is: the base policy's, a regime's own (by regime index), or
/// one of a regime's `programs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RuleSet {
    Base,
    Regime(usize),
    Enters(usize),
}

/// One rule to compile: whose, of which kind, its index in its list, the rule.
type Tagged<'p> = (RuleSet, PathKind, u16, &'p PathRule);

fn index_of(index: usize) -> u16 {
    u16::try_from(index).expect("resolve keeps every kind within MAX_RULES_PER_KIND rules")
}

/// Compiles the path rules of `policy`: the base's and every regime's, in one automaton.
pub fn compile(policy: &EffectivePolicy) -> Result<CompiledPaths, Diagnostics> {
    fn kinds(paths: &super::resolve::PathRules, set: RuleSet) -> Vec<Tagged<'_>> {
        PathKind::ALL
            .into_iter()
            .flat_map(move |kind| {
                paths
                    .rules(kind)
                    .iter()
                    .enumerate()
                    .map(move |(index, rule)| (set, kind, index_of(index), rule))
            })
            .collect()
    }
    let mut rules: Vec<Tagged<'_>> = kinds(&policy.paths, RuleSet::Base);
    for (r, regime) in policy.regimes.iter().enumerate() {
        rules.extend(kinds(&regime.paths, RuleSet::Regime(r)));
        rules.extend(
            regime
                .programs
                .iter()
                .enumerate()
                .map(|(index, rule)| (RuleSet::Enters(r), PathKind::Exec, index_of(index), rule)),
        );
    }
    let classes = ByteClasses::new(&rules)?;
    let mut nfa = Nfa::default();
    for &(set, kind, index, rule) in &rules {
        nfa.add_rule(&rule.pattern, (set, kind, index));
    }
    let dfa = subset_construction(&nfa, &classes)
        .map(|dfa| minimise(&dfa))
        .filter(|dfa| dfa.n_states() <= MAX_STATES)
        .ok_or_else(|| too_many_states(&rules))?;
    regimes_only_take_away(&dfa, policy)?;
    Ok(dfa)
}

/// A regime's allow list may only cover what the base's list of that kind covers (write also
/// counts as read): otherwise the regime would seem to grant what the base does not. Checked
/// on the automaton, so globs are compared exactly: every state is reachable, and a state
/// whose record has a regime's bit without the base's is a path of that kind the base lacks.
fn regimes_only_take_away(
    dfa: &CompiledPaths,
    policy: &EffectivePolicy,
) -> Result<(), Diagnostics> {
    let mut diagnostics = Diagnostics::new();
    for (r, regime) in policy.regimes.iter().enumerate() {
        for kind in [PathKind::Read, PathKind::Write, PathKind::Exec] {
            let granted = |bits: u16| match kind {
                PathKind::Read => bits & (PathKind::Read.bit() | PathKind::Write.bit()) != 0,
                _ => bits & kind.bit() != 0,
            };
            let Some((state, accept)) = dfa
                .accept
                .iter()
                .enumerate()
                .find(|(_, a)| a.regime_kinds[r] & kind.bit() as u8 != 0 && !granted(a.kinds))
            else {
                continue;
            };
            let rule =
                &regime.paths.rules(kind)[usize::from(accept.regime_first_rule[r][kind.index()])];
            let example = dfa.example_path(state);
            let problem = Problem::new(format!(
                "[{}] {} \"{}\" would grant what the base policy does not: for example {} is \
                 not in the base's {}",
                regime.name,
                kind.key(),
                rule.written,
                String::from_utf8_lossy(&example),
                kind.key()
            ))
            .with_hint(
                "a regime only takes away: narrow the entry to paths the base policy allows, or \
                 add them to the base first",
            );
            diagnostics.push(problem.at(rule.origin.location()));
        }
    }
    diagnostics.into_result(())
}

fn too_many_states(rules: &[Tagged<'_>]) -> Diagnostics {
    let wildcard_rules: Vec<&Tagged<'_>> = rules
        .iter()
        .filter(|(_, _, _, rule)| rule.pattern.has_wildcards())
        .collect();
    let location = wildcard_rules
        .first()
        .map_or(Location::Unpositioned, |(_, _, _, rule)| {
            rule.origin.location()
        });
    let listed: Vec<String> = wildcard_rules
        .iter()
        .map(|(_, kind, _, rule)| describe(*kind, rule))
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
    fn new(rules: &[Tagged<'_>]) -> Result<Self, Diagnostics> {
        let mut class_of = [OTHER_CLASS; BYTE_VALUES];
        class_of[usize::from(b'/')] = SLASH_CLASS;
        let mut representative = vec![0, b'/'];
        for &(_, kind, _, rule) in rules {
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
    accept: Option<(RuleSet, PathKind, u16)>,
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

    fn add_rule(&mut self, pattern: &PathPattern, tag: (RuleSet, PathKind, u16)) {
        let mut boundary = self.state();
        self.starts.push(boundary);
        for component in pattern.components() {
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
        self.states[boundary].accept = Some(tag);
        if pattern.is_only_itself() && pattern.components().is_empty() {
            // `=/`: the path `/` is one byte, which the start state has not read yet.
            let root = self.state();
            self.edge(boundary, ByteSet::Slash, root);
            self.states[root].accept = Some(tag);
        } else if !pattern.is_only_itself() {
            let beneath = self.state();
            self.edge(boundary, ByteSet::Slash, beneath);
            self.edge(beneath, ByteSet::Any, beneath);
            self.states[beneath].accept = Some(tag);
        }
    }

    fn accept(&self, set: &[usize]) -> PathAccept {
        let mut accept = PathAccept::NONE;
        for &(set, kind, index) in set.iter().filter_map(|&s| self.states[s].accept.as_ref()) {
            let first = match set {
                RuleSet::Base => {
                    accept.kinds |= kind.bit();
                    &mut accept.first_rule[kind.index()]
                }
                RuleSet::Regime(r) => {
                    accept.regime_kinds[r] |= u8::try_from(kind.bit()).expect("KIND_* fit in u8");
                    &mut accept.regime_first_rule[r][kind.index()]
                }
                RuleSet::Enters(r) => {
                    accept.regime_kinds[r] |= KIND_ENTER;
                    continue;
                }
            };
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
    let mut block: Vec<usize> = number_by_key(
        dfa.accept
            .iter()
            .map(|a| (a.kinds, a.first_rule, a.regime_kinds, a.regime_first_rule)),
    );
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
