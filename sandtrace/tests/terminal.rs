//! The terminal CMD runs on. Started from a terminal, sandtrace gives CMD a new pseudo-terminal
//! of its own and relays it; CMD never gets the user's terminal. Each test plays the user's
//! shell: it owns a pseudo-terminal pair, starts sandtrace on the slave (as its controlling
//! terminal, in a session of its own, like a job of an interactive shell) and types and reads
//! through the master. Host tests: `--trace-only` and `--allow-degraded` sessions need no BPF
//! LSM.

mod common;

use std::{
    fs::File,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::{fs::MetadataExt as _, process::CommandExt as _},
    },
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use common::{Scratch, sandtrace};

/// Only a guard against a hanging test: every step waits for what it needs to see.
const DEADLINE: Duration = Duration::from_secs(120);

const PROBE: &str = env!("CARGO_BIN_EXE_sandtrace-test-probe");

/// The test's own terminal: the one a user's shell would start sandtrace from.
struct UserTerminal {
    master: OwnedFd,
    slave: File,
}

impl UserTerminal {
    /// A new pseudo-terminal pair with the kernel's default (cooked) settings and this size.
    fn open(rows: u16, cols: u16) -> Self {
        let (mut master, mut slave) = (-1, -1);
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty stores two new descriptors; a null name and termios are allowed.
        let ret = unsafe {
            libc::openpty(
                &raw mut master,
                &raw mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &raw const size,
            )
        };
        assert_eq!(ret, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty just created both descriptors; nothing else owns them.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), File::from_raw_fd(slave)) };
        // SAFETY: fcntl with integer arguments on the descriptors owned above. Close-on-exec:
        // the jobs of tests running at the same time must not inherit this terminal.
        unsafe {
            libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK);
            libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
            libc::fcntl(slave.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC);
        }
        Self { master, slave }
    }

    fn settings(&self) -> libc::termios {
        // SAFETY: all-zero is a valid termios, filled in by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a termios on this stack frame.
        let ret = unsafe { libc::tcgetattr(self.slave.as_raw_fd(), &raw mut t) };
        assert_eq!(ret, 0);
        t
    }

    fn resize(&self, rows: u16, cols: u16) {
        let size = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize.
        let ret =
            unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &raw const size) };
        assert_eq!(ret, 0);
    }

    /// Bytes waiting in the terminal's input queue, for the program that reads it next (the
    /// user's shell).
    fn pending_input(&self) -> i32 {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD stores an int.
        let ret = unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &raw mut n) };
        assert_eq!(ret, 0);
        n
    }

    /// The slave's device number.
    fn device(&self) -> u64 {
        self.slave.metadata().unwrap().rdev()
    }

    fn type_keys(&self, keys: &[u8]) {
        // SAFETY: `keys` is valid for its length.
        let n = unsafe { libc::write(self.master.as_raw_fd(), keys.as_ptr().cast(), keys.len()) };
        assert_eq!(n, keys.len() as isize);
    }

    /// Starts `command` on this terminal: stdin, stdout and stderr, and its controlling
    /// terminal, in a session of its own.
    fn start(&self, command: &mut Command) -> Job<'_> {
        let stdio = || Stdio::from(self.slave.try_clone().unwrap());
        // SAFETY: setsid and ioctl are async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .stdin(stdio())
            .stdout(stdio())
            .stderr(stdio())
            .spawn()
            .expect("starting the job");
        // SAFETY: pidfd_open with integer arguments; the child is not reaped yet.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
        assert!(
            pidfd >= 0,
            "pidfd_open: {}",
            std::io::Error::last_os_error()
        );
        Job {
            terminal: self,
            child,
            // SAFETY: pidfd_open just returned this descriptor.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd as i32) },
            screen: String::new(),
            started: Instant::now(),
        }
    }
}

/// A job started on the test's terminal, and what it showed there.
struct Job<'a> {
    terminal: &'a UserTerminal,
    child: Child,
    pidfd: OwnedFd,
    screen: String,
    started: Instant,
}

impl Job<'_> {
    /// Reads the terminal until `marker` was shown; returns where the screen's text after it
    /// starts.
    fn wait_for(&mut self, marker: &str) -> usize {
        self.wait_for_after(0, marker)
    }

    /// Reads the terminal until `marker` was shown after the first `from` bytes; returns where
    /// the screen's text after it starts (output read in the same chunk may follow it).
    fn wait_for_after(&mut self, from: usize, marker: &str) -> usize {
        loop {
            if let Some(at) = self.screen[from..].find(marker) {
                return from + at + marker.len();
            }
            if self.exited() {
                self.read_available();
                assert!(
                    self.screen[from..].contains(marker),
                    "the job ended before showing {marker:?}: {:?}",
                    self.screen
                );
            }
            self.poll();
        }
    }

    /// Waits for the job to end; returns its status and everything it showed.
    fn finish(mut self) -> (ExitStatus, String) {
        while !self.exited() {
            self.poll();
        }
        self.read_available();
        let status = self.child.wait().unwrap();
        (status, self.screen)
    }

    /// Waits until the terminal has output or the job ended, and reads the output.
    fn poll(&mut self) {
        let left = DEADLINE.saturating_sub(self.started.elapsed());
        assert!(
            !left.is_zero(),
            "the job did not get there within {DEADLINE:?}; its screen: {:?}",
            self.screen
        );
        let mut fds = [
            libc::pollfd {
                fd: self.terminal.master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds on this stack frame.
        unsafe { libc::poll(fds.as_mut_ptr(), 2, left.as_millis() as i32) };
        self.read_available();
    }

    fn exited(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on this stack frame.
        unsafe { libc::poll(&raw mut fd, 1, 0) == 1 }
    }

    /// Reads what the terminal has now; whether there was something.
    fn read_available(&mut self) -> bool {
        let mut got = false;
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: `buf` is valid for its length.
            let n = unsafe {
                libc::read(
                    self.terminal.master.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n <= 0 {
                return got;
            }
            got = true;
            self.screen
                .push_str(&String::from_utf8_lossy(&buf[..n as usize]));
        }
    }
}

/// `sandtrace run MODE -- ARGS`, for both modes of a host without BPF LSM.
fn sandtrace_run(mode: &Mode, args: &[&str]) -> Command {
    let mut command = sandtrace();
    command.arg("run").arg(mode.flag);
    if let Some(policy) = &mode.policy {
        command.arg("--policy").arg(policy);
    }
    command.arg("--").args(args);
    command
}

struct Mode {
    flag: &'static str,
    policy: Option<std::path::PathBuf>,
}

fn modes(scratch: &Scratch) -> [Mode; 2] {
    let policy = scratch.path("limits.toml");
    common::write_policy(&policy, "[limits]\nmax_processes = 64\n");
    [
        Mode {
            flag: "--trace-only",
            policy: None,
        },
        Mode {
            flag: "--allow-degraded",
            policy: Some(policy),
        },
    ]
}

fn same_settings(a: &libc::termios, b: &libc::termios) -> bool {
    (a.c_iflag, a.c_oflag, a.c_cflag, a.c_lflag, a.c_cc)
        == (b.c_iflag, b.c_oflag, b.c_cflag, b.c_lflag, b.c_cc)
}

#[test]
fn a_program_reads_a_line_typed_on_the_terminal_and_the_terminal_is_restored() {
    let scratch = Scratch::new("terminal-line");
    for mode in modes(&scratch) {
        let terminal = UserTerminal::open(24, 80);
        let before = terminal.settings();
        let mut job = terminal.start(&mut sandtrace_run(
            &mode,
            &["sh", "-c", "echo READY; read line; echo got:$line"],
        ));
        job.wait_for("READY");
        // Enter sends a carriage return; CMD's terminal turns it into a newline.
        terminal.type_keys(b"hello\r");
        job.wait_for("got:hello");
        let (status, screen) = job.finish();
        assert_eq!(status.code(), Some(0), "{}: {screen}", mode.flag);
        // The summary follows CMD's output, after the relay gave the terminal back.
        let got = screen.find("got:hello").unwrap();
        assert!(
            screen[got..].contains("exit 0") || screen[got..].contains("exited"),
            "{}: {screen}",
            mode.flag
        );
        assert!(
            same_settings(&before, &terminal.settings()),
            "{}: the terminal's settings changed",
            mode.flag
        );
    }
}

#[test]
fn all_the_command_wrote_is_shown_before_the_summary() {
    let terminal = UserTerminal::open(24, 80);
    // More than the terminals' buffers hold, written as fast as possible, then exit.
    let job = terminal.start(&mut sandtrace_run(
        &Mode {
            flag: "--trace-only",
            policy: None,
        },
        &["seq", "1", "200000"],
    ));
    let (status, screen) = job.finish();
    assert_eq!(status.code(), Some(0), "{screen}");
    let last = screen
        .find("\r\n200000\r\n")
        .expect("the last line was shown");
    let summary = screen.rfind("exited with status 0").expect("a summary");
    assert!(last < summary, "{}", &screen[last..]);
    let lines = screen.matches("\r\n").count();
    assert!(lines >= 200_000, "{lines} lines");
}

#[test]
fn the_command_gets_the_window_size_and_its_changes() {
    let terminal = UserTerminal::open(31, 97);
    // `wait` returns as soon as the trapped signal arrives.
    let script = "trap 'echo size:$(stty size); exit 0' WINCH; echo start:$(stty size); \
                  sleep 1000 & wait";
    let mut job = terminal.start(&mut sandtrace_run(
        &Mode {
            flag: "--trace-only",
            policy: None,
        },
        &["sh", "-c", script],
    ));
    job.wait_for("start:31 97");
    terminal.resize(40, 120);
    job.wait_for("size:40 120");
    let (status, screen) = job.finish();
    assert_eq!(status.code(), Some(0), "{screen}");
}

#[test]
fn ctrl_c_interrupts_the_command_and_the_session_ends_with_130() {
    let scratch = Scratch::new("terminal-interrupt");
    for mode in modes(&scratch) {
        let terminal = UserTerminal::open(24, 80);
        let before = terminal.settings();
        let mut job = terminal.start(&mut sandtrace_run(
            &mode,
            &["sh", "-c", "echo READY; exec sleep 1000"],
        ));
        job.wait_for("READY");
        terminal.type_keys(b"\x03");
        let (status, screen) = job.finish();
        assert_eq!(status.code(), Some(130), "{}: {screen}", mode.flag);
        assert!(screen.contains("SIGINT"), "{}: {screen}", mode.flag);
        assert!(
            same_settings(&before, &terminal.settings()),
            "{}: the terminal's settings changed",
            mode.flag
        );
    }
}

#[test]
fn ctrl_z_suspends_the_run_in_the_users_shell_and_fg_resumes_it() {
    let terminal = UserTerminal::open(24, 80);
    let mut shell = Command::new("bash");
    shell
        .args(["--norc", "--noprofile", "-i"])
        .env("PS1", "PROMPT> ")
        .env("NO_COLOR", "1");
    let mut job = terminal.start(&mut shell);
    job.wait_for("PROMPT> ");
    // The marker is split in the command line, so that its echo does not match.
    let line = format!(
        "{} run --trace-only -- sh -c 'echo RE\"\"ADY; cat'\r",
        common::SANDTRACE
    );
    terminal.type_keys(line.as_bytes());
    job.wait_for("READY\r\n");
    terminal.type_keys(b"\x1a");
    let stopped = job.wait_for("Stopped");
    job.wait_for_after(stopped, "PROMPT> ");
    terminal.type_keys(b"fg\r");
    terminal.type_keys(b"again\r");
    // Echoed by CMD's terminal, then written back by cat.
    job.wait_for("again\r\nagain\r\n");
    // End of file for cat: only reaches CMD's terminal where sandtrace took raw mode back
    // (the caller's terminal would take it itself otherwise).
    terminal.type_keys(b"\x04");
    let ended = job.wait_for("exited with status 0");
    job.wait_for_after(ended, "PROMPT> ");
    terminal.type_keys(b"exit $?\r");
    let (status, screen) = job.finish();
    assert_eq!(status.code(), Some(0), "{screen}");
}

#[test]
fn a_hangup_of_the_users_terminal_ends_the_session() {
    let terminal = UserTerminal::open(24, 80);
    let scratch = Scratch::new("terminal-hangup");
    let log = scratch.path("events.jsonl");
    let mut command = sandtrace();
    command.args(["run", "--trace-only", "-o"]).arg(&log).args([
        "--",
        "sh",
        "-c",
        "echo READY; exec sleep 1000",
    ]);
    let mut job = terminal.start(&mut command);
    job.wait_for("READY");
    let pid = job.child.id();
    // As when the line drops: the kernel sends SIGHUP to sandtrace, the terminal's session
    // leader.
    // SAFETY: ioctl without argument on the test's own terminal.
    let ret = unsafe { libc::ioctl(terminal.slave.as_raw_fd(), libc::TIOCVHANGUP) };
    assert_eq!(ret, 0, "TIOCVHANGUP: {}", std::io::Error::last_os_error());
    let (status, screen) = job.finish();
    assert_eq!(status.code(), Some(129), "{screen}");
    let events = common::read_jsonl(&log);
    assert_eq!(common::summary(&events)["exit_code"], 129, "{events:?}");
    assert!(common::session_cgroups_of(pid).is_empty());
}

/// ppid, pgrp, session and tty_nr from a line of /proc/PID/stat.
fn stat_fields(line: &str) -> Vec<i64> {
    let after_comm = &line[line.rfind(')').expect("a stat line") + 1..];
    after_comm
        .split_whitespace()
        .skip(1) // the state letter
        .take(4)
        .map(|f| f.parse().unwrap())
        .collect()
}

/// A device number as /proc/PID/stat shows `tty_nr`.
fn encode_device(dev: u64) -> i64 {
    let (major, minor) = (i64::from(libc::major(dev)), i64::from(libc::minor(dev)));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

#[test]
fn the_command_has_a_session_and_a_terminal_of_its_own() {
    let terminal = UserTerminal::open(24, 80);
    // Init, pid 1 of the session, is CMD's parent and in reach of a root CMD.
    let script = "echo fd0=$(readlink /proc/$$/fd/0); echo stat=$(cat /proc/$$/stat); \
                  echo init=$(readlink /proc/1/fd/*)";
    let job = terminal.start(&mut sandtrace_run(
        &Mode {
            flag: "--trace-only",
            policy: None,
        },
        &["sh", "-c", script],
    ));
    let (status, screen) = job.finish();
    assert_eq!(status.code(), Some(0), "{screen}");
    let value = |key: &str| {
        screen
            .lines()
            // The progress line may share the line.
            .find_map(|l| l.trim_end_matches('\r').split_once(key).map(|(_, v)| v))
            .unwrap_or_else(|| panic!("no {key} in {screen:?}"))
            .to_owned()
    };
    let own_path = std::fs::read_link(format!("/proc/self/fd/{}", terminal.slave.as_raw_fd()))
        .unwrap()
        .display()
        .to_string();
    let cmd_path = value("fd0=");
    assert!(cmd_path.starts_with("/dev/pts/"), "{cmd_path}");
    assert_ne!(cmd_path, own_path, "CMD's stdin is the user's terminal");
    let init = value("init=");
    assert!(
        !init.contains(&own_path),
        "init holds the user's terminal: {init}"
    );
    let stat = value("stat=");
    let fields = stat_fields(&stat);
    let pid: i64 = stat.split_whitespace().next().unwrap().parse().unwrap();
    assert_eq!(fields[2], pid, "CMD leads its own session: {stat}");
    assert_ne!(fields[3], 0, "CMD has a controlling terminal: {stat}");
    assert_ne!(
        fields[3],
        encode_device(terminal.device()),
        "CMD's controlling terminal is the user's: {stat}"
    );
}

#[test]
fn keystrokes_pushed_by_the_command_never_reach_the_users_terminal() {
    let terminal = UserTerminal::open(24, 80);
    // Without sandtrace, the push lands in the terminal's input queue, where the user's
    // shell would read it as a command line.
    let job = terminal.start(Command::new(PROBE).arg("push-input echo-pushed"));
    let (status, screen) = job.finish();
    assert!(status.success(), "{screen}");
    assert!(screen.contains("PROBE-RESULT: ok"), "{screen}");
    assert_eq!(terminal.pending_input(), "echo-pushed\n".len() as i32);
    // SAFETY: tcflush with integer arguments on the test's own terminal.
    let flushed = unsafe { libc::tcflush(terminal.slave.as_raw_fd(), libc::TCIFLUSH) };
    assert_eq!(flushed, 0);
    assert_eq!(terminal.pending_input(), 0);

    let scratch = Scratch::new("terminal-push");
    for mode in modes(&scratch) {
        let job = terminal.start(&mut sandtrace_run(
            &mode,
            &[PROBE, "push-input echo-pushed"],
        ));
        let (status, screen) = job.finish();
        assert_eq!(status.code(), Some(0), "{}: {screen}", mode.flag);
        // The push reaches CMD's own terminal (or is refused); either way, not the user's.
        assert!(screen.contains("PROBE-RESULT: "), "{}: {screen}", mode.flag);
        assert_eq!(
            terminal.pending_input(),
            0,
            "{}: CMD pushed input into the user's terminal: {screen}",
            mode.flag
        );
    }
}

#[test]
fn without_a_terminal_the_standard_streams_pass_through() {
    let scratch = Scratch::new("terminal-none");
    let out = scratch.path("out");
    let status = sandtrace()
        .args(["run", "--trace-only", "--", "sh", "-c"])
        .arg("read line; echo got:$line; readlink /proc/self/fd/0; readlink /proc/self/fd/1")
        .stdin(Stdio::piped())
        .stdout(File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"piped\n")?;
            child.wait()
        })
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "got:piped", "{text}");
    assert!(
        lines[1].starts_with("pipe:"),
        "stdin is still a pipe: {text}"
    );
    assert_eq!(
        lines[2],
        out.display().to_string(),
        "stdout is still the file"
    );
}
