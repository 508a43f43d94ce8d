//! The JSONL event log (`-o FILE`): one JSON object per line, the summary always last.
//!
//! Line shapes (fields in this order):
//! - `{"event_type":"syscall","timestamp","pid","tgid","comm","syscall","syscall_nr","args":{"raw":[6]},
//!   "path"?,"path_truncated"?,"return_value","success","errno"?,"duration_us","action","category"}`
//! - `{"event_type":"process","timestamp","pid","tgid","comm","action":"fork"|"exec"|"exited"|"fork_refused",...}`
//! - `{"event_type":"file","timestamp","pid","tgid","comm","action":"allow"|"deny","operation",
//!   "access":[...],"path","reason","rule"?}`
//! - `{"event_type":"network","timestamp","pid","tgid","comm","action":"allow"|"deny","operation",
//!   "family","socket_type","protocol","address"?,"port"?,"peer_address"?,"peer_port"?,"reason","rule"?}`
//! - `{"event_type":"seccomp","timestamp","pid","tgid","comm","action":"kill","abi","syscall_nr",
//!   "syscall"?,"reason"}`
//! - `{"event_type":"summary",...}` (see `Summary`)
//!
//! Lines are formatted by hand ([`format`], [`json`], [`timestamp`]) on a thread of their own
//! ([`writer`]).

mod format;
mod json;
mod timestamp;
mod writer;

pub use writer::EventLog;

/// Why forks fail with EAGAIN in a session.
pub const FORK_REFUSED_REASON: &str = "max_processes reached (or another process limit)";

/// Exit code and terminating signal from a wait(2) status, shell style (128+N for signals).
pub fn decode_wait_status(status: i32) -> (i32, Option<i32>) {
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        (128 + sig, Some(sig))
    } else {
        (libc::WEXITSTATUS(status), None)
    }
}
