//! The compiled path policy as the kernel programs evaluate it.
//!
//! Userspace compiles every filesystem rule of the effective policy (read, write, exec and
//! deny) into ONE deterministic finite automaton over the bytes of a normalised absolute path,
//! as `d_path` produces it (`/home/u/.ssh/id_rsa`; no trailing slash except for `/`).
//! The kernel side walks it without heap and with a bounded loop:
//!
//! ```text
//! if len > MAX_PATH_LEN { denied: too long }
//! state = header.start
//! for byte in path:                       // at most MAX_PATH_LEN iterations
//!     if state == DEAD_STATE { break }    // no rule can match any more
//!     state = transitions[state * header.n_classes + class_of[byte]]
//! record = accept[state]
//! ```
//!
//! `record.kinds` says which kinds of rule cover the path; the decision is: denied if
//! [`KIND_DENY`] is set, readable if [`KIND_READ`] or [`KIND_WRITE`] is set, writable if
//! [`KIND_WRITE`] is set, executable if [`KIND_EXEC`] is set, and denied ("unlisted") otherwise.
//! `record.first_rule[KIND_INDEX_*]` names the rule that decided, for events.

/// Longest path, in bytes without the NUL, the automaton decides on. Longer paths are denied.
pub const MAX_PATH_LEN: usize = 4096;
/// Most automaton states, the dead state included. State numbers fit in `u16`. The example
/// package-manager policies need about 1000-1300.
pub const MAX_STATES: usize = 8192;
/// Most byte classes. Bytes that no rule tells apart share a class.
pub const MAX_CLASSES: usize = 128;
/// Most rules of one kind (read, write, exec or deny). Rule indices fit in `u16` below
/// [`NO_RULE`].
pub const MAX_RULES_PER_KIND: usize = 256;
/// Entries of the `class_of` table: one byte class per byte value.
pub const BYTE_VALUES: usize = 256;

/// The state in which no rule can match any more; its accept record is empty.
pub const DEAD_STATE: u16 = 0;
/// In [`PathAccept::first_rule`]: no rule of that kind matched.
pub const NO_RULE: u16 = u16::MAX;

/// Bits of [`PathAccept::kinds`].
pub const KIND_READ: u16 = 1 << KIND_INDEX_READ;
pub const KIND_WRITE: u16 = 1 << KIND_INDEX_WRITE;
pub const KIND_EXEC: u16 = 1 << KIND_INDEX_EXEC;
pub const KIND_DENY: u16 = 1 << KIND_INDEX_DENY;

/// Indices into [`PathAccept::first_rule`].
pub const KIND_INDEX_READ: usize = 0;
pub const KIND_INDEX_WRITE: usize = 1;
pub const KIND_INDEX_EXEC: usize = 2;
pub const KIND_INDEX_DENY: usize = 3;
pub const KIND_COUNT: usize = 4;

/// Most `[[after_exec]]` regimes in one policy. A task's regimes are a bit mask of this width.
pub const MAX_REGIMES: usize = 4;
/// In [`PathAccept::regime_kinds`], next to the regime's own `KIND_*` bits: one of the
/// regime's `programs` matches the path, so executing it enters the regime.
pub const KIND_ENTER: u8 = 1 << 4;
/// In events' `rule_kind`: a regime's rule decided. `rule_kind = (regime + 1) <<
/// RULE_REGIME_SHIFT | KIND_INDEX_*`; the low byte alone is a base rule's kind.
pub const RULE_REGIME_SHIFT: u16 = 8;

/// What matched when the walk ended in a state: one record per state.
///
/// Regimes (`[[after_exec]]`) have rules of their own in the same automaton: a task in
/// regimes `R` may do what the base rules allow AND, for each regime in `R`, what that
/// regime's rules allow (its deny rules deny; a kind it narrows, [`crate::config::RegimeConfig`],
/// needs a matching rule of the regime's own).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathAccept {
    /// `KIND_*` bits of the kinds with at least one matching rule.
    pub kinds: u16,
    pub _pad: u16,
    /// Per kind (`KIND_INDEX_*`), the index of the first matching rule in that kind's rule
    /// list, or [`NO_RULE`].
    pub first_rule: [u16; KIND_COUNT],
    /// Per regime: the `KIND_*` bits of its own rules that match (as `u8`), and [`KIND_ENTER`].
    pub regime_kinds: [u8; MAX_REGIMES],
    /// Per regime and kind, the index of the first matching rule in the regime's list of that
    /// kind, or [`NO_RULE`].
    pub regime_first_rule: [[u16; KIND_COUNT]; MAX_REGIMES],
}

impl PathAccept {
    /// The record of a state where nothing matched (the dead state, among others).
    pub const NONE: Self = Self {
        kinds: 0,
        _pad: 0,
        first_rule: [NO_RULE; KIND_COUNT],
        regime_kinds: [0; MAX_REGIMES],
        regime_first_rule: [[NO_RULE; KIND_COUNT]; MAX_REGIMES],
    };
}

impl Default for PathAccept {
    fn default() -> Self {
        Self::NONE
    }
}

/// Shape of the automaton; the tables themselves are `class_of: [u8; BYTE_VALUES]`,
/// `transitions: [u16; n_states * n_classes]` and `accept: [PathAccept; n_states]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathDfaHeader {
    pub start: u16,
    pub n_states: u16,
    pub n_classes: u16,
    pub _pad: u16,
}

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for PathAccept {}
#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]` and made of integers (and arrays of them) only: every bit pattern
// is a valid value, and the kernel side reads the same layout.
unsafe impl aya::Pod for PathDfaHeader {}
