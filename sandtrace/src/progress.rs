//! The live progress line on stderr while a session runs: elapsed time, processes, syscalls
//! and denials, redrawn in place.
//!
//! CMD shares the terminal, so the line stays out of its way as far as a single line can: it
//! appears only on a terminal, only when no events are streamed (`-v`), only once the run has
//! lasted [`Progress::DELAY`], at most every [`Progress::REFRESH`], and it is erased before
//! anything else sandtrace prints. Output CMD writes while the line is shown starts after
//! it; the next refresh draws the line again on the row below.

use std::{
    io::{IsTerminal as _, Write as _},
    time::{Duration, Instant},
};

use crate::events::{Event, EventBody};

pub struct Progress {
    enabled: bool,
    started: Instant,
    shown: bool,
    processes: u64,
    denials: u64,
}

impl Progress {
    /// How often the line is redrawn.
    pub const REFRESH: Duration = Duration::from_millis(250);
    /// Runs shorter than this never show the line.
    pub const DELAY: Duration = Duration::from_secs(1);

    /// A progress line that is drawn when `wanted` and stderr is a terminal. The run started
    /// at `started`.
    pub fn new(wanted: bool, started: Instant) -> Self {
        Self {
            enabled: wanted && std::io::stderr().is_terminal(),
            started,
            shown: false,
            // CMD itself.
            processes: 1,
            denials: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Counts a new process or a denial.
    pub fn observe(&mut self, event: &Event) {
        match &event.body {
            EventBody::Fork {
                child_pid,
                child_tgid,
            } if child_pid == child_tgid => self.processes += 1,
            EventBody::File(f) if f.verdict.is_denied() => self.denials += 1,
            _ => {}
        }
    }

    /// Redraws the line with `syscalls` calls so far.
    pub fn draw(&mut self, syscalls: u64) {
        let elapsed = self.started.elapsed();
        if !self.enabled || elapsed < Self::DELAY {
            return;
        }
        let text = format!(
            "sandtrace: {:.1} s · {} process{} · {syscalls} syscalls · {} denied",
            elapsed.as_secs_f64(),
            self.processes,
            if self.processes == 1 { "" } else { "es" },
            self.denials
        );
        let text = fit(&text, terminal_width());
        // Erase the rest of the row: the previous line may have been longer.
        let _ = write!(std::io::stderr(), "\r{text}\x1b[K");
        self.shown = true;
    }

    /// Erases the line, before sandtrace prints anything else.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `text` cut to `width` characters (one column each: the line is ASCII but for `·`).
fn fit(text: &str, width: usize) -> String {
    // One column short of the edge: a character in the last column makes some terminals
    // wrap, and the next `\r` would then return to the wrong row.
    text.chars().take(width.saturating_sub(1)).collect()
}

/// Columns of the terminal on stderr; 80 when unknown.
fn terminal_width() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the pointer passed.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn fits_the_line_to_the_terminal() {
        assert_eq!(fit("sandtrace: 1.0 s · 2", 80), "sandtrace: 1.0 s · 2");
        assert_eq!(fit("sandtrace: 1.0 s · 2", 12), "sandtrace: ");
        assert_eq!(fit("abc", 0), "");
    }
}
