//! The pseudo-terminal CMD runs on when sandtrace was started from a terminal, and the relay
//! between it and the user's terminal.
//!
//! A command holding the user's terminal could push keystrokes into its input queue (TIOCSTI),
//! which the user's shell reads and runs after sandtrace exits. So CMD never gets it: CMD's
//! process starts a session of its own (see `spawn/init.rs`), and where one of sandtrace's
//! standard descriptors is a terminal, CMD gets a new pseudo-terminal in its place, as its
//! controlling terminal (init puts it there already: neither holds the user's terminal). The
//! rest stay as they are (pipes and files pass through).
//!
//! While CMD runs, [`Relay`] copies between the two:
//! - the user's terminal is in raw mode (restored on every exit path: [`RawMode`]'s drop, which
//!   also runs when the loader panics and unwinds, and the session's signal handling): every
//!   key goes through unchanged to the pseudo-terminal, whose line discipline has a copy of the
//!   user's settings and so echoes, edits lines and turns Ctrl-C and Ctrl-\ into SIGINT and
//!   SIGQUIT for CMD's foreground process group, as the user's terminal would;
//! - Ctrl-Z: where CMD's own process group is in the foreground (no job-control shell inside
//!   that would stop a job of its own), the kernel discards SIGTSTP for it: CMD's session has no
//!   parent session. The relay then suspends the whole session instead: it restores the user's
//!   terminal, freezes the session cgroup and stops sandtrace, so that the user's shell sees a
//!   stopped job; `fg` thaws it and takes raw mode back;
//! - window size changes (SIGWINCH, see the session's event loop) are copied to it;
//! - after CMD ends, everything CMD wrote is read until no process holds the pseudo-terminal
//!   any more (EIO), before the summary is printed.

use std::{
    fs::File,
    io::Write as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
    sync::Arc,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::spawn::CmdTerminal;

/// How long the relay, once the session's processes are gone, goes on reading CMD's terminal.
/// Normally it reads what is buffered and then the terminal says that no process holds it any
/// more (EIO) at once; the limit is for a process outside the session that got it passed.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The standard descriptors of sandtrace that are terminals, and the new pseudo-terminal that
/// takes their place for CMD; opened before CMD's process is created.
pub struct SessionTerminal {
    master: OwnedFd,
    /// Closed by [`SessionTerminal::relay`]: once CMD's process has its copies, only the
    /// session may hold it (the end of the relay waits for its last holder to close it).
    slave: OwnedFd,
    /// Which of stdin, stdout and stderr are terminals (and are replaced for CMD).
    replaced: [bool; 3],
    /// The first of them: the settings and window size CMD's terminal copies.
    user: RawFd,
    /// Where the pseudo-terminal's output goes: stdout, else stderr, else stdin.
    output: RawFd,
}

impl SessionTerminal {
    /// A new pseudo-terminal with the settings and window size of sandtrace's terminal, or
    /// `None` when none of stdin, stdout and stderr is a terminal.
    pub fn open() -> Result<Option<Self>> {
        let replaced = [0, 1, 2].map(is_terminal);
        let Some(user) = (0..3).find(|&fd| replaced[fd as usize]) else {
            return Ok(None);
        };
        let output = [1, 2, 0]
            .into_iter()
            .find(|&fd| replaced[fd as usize])
            .unwrap_or(user);
        let (master, slave) = open_pty()?;
        let settings = terminal_settings(user).context("reading the terminal's settings")?;
        set_terminal_settings(slave.as_raw_fd(), &settings)
            .context("copying the terminal's settings to the new pseudo-terminal")?;
        copy_window_size(user, master.as_raw_fd());
        Ok(Some(Self {
            master,
            slave,
            replaced,
            user,
            output,
        }))
    }

    /// Gives the pseudo-terminal to `uid`, the user CMD runs as, as login does: so that CMD
    /// can open it again (as /dev/tty) after it dropped root.
    pub fn give_to(&self, uid: u32) -> Result<()> {
        nix::unistd::fchown(&self.slave, Some(uid.into()), None)
            .context("giving the new pseudo-terminal to the command's user")
    }

    /// What CMD's process needs to take the pseudo-terminal (see `spawn/init.rs`).
    pub fn cmd_side(&self) -> CmdTerminal {
        CmdTerminal {
            slave: self.slave.as_raw_fd(),
            replaces: self.replaced,
        }
    }

    /// Starts relaying, once CMD's process exists: puts the user's terminal (stdin, where it is
    /// a terminal) into raw mode and starts the relay's thread. `freezer` is the session
    /// cgroup's `cgroup.freeze`, for Ctrl-Z.
    pub fn relay(self, freezer: Option<File>) -> Result<Relay> {
        let Self {
            master,
            slave,
            replaced,
            user,
            output,
        } = self;
        drop(slave);
        set_nonblocking(master.as_raw_fd()).context("configuring the pseudo-terminal")?;
        let input = replaced[0].then(RawMode::enter).transpose()?;
        let (stop_rd, stop_wr) = pipe()?;
        let master = Arc::new(master);
        let copier = Copier {
            master: Arc::clone(&master),
            input,
            output,
            stop: stop_rd,
            freezer,
        };
        let thread = std::thread::Builder::new()
            .name("terminal relay".into())
            .spawn(move || copier.run())
            .context("starting the terminal relay")?;
        Ok(Relay {
            master,
            size_source: user,
            stop: Some(stop_wr),
            thread: Some(thread),
        })
    }
}

/// The running relay between the user's terminal and CMD's pseudo-terminal. Dropping it (or
/// [`Relay::finish`]) reads CMD's last output and restores the user's terminal.
pub struct Relay {
    master: Arc<OwnedFd>,
    /// The user's terminal whose window size CMD's follows.
    size_source: RawFd,
    /// Closed to tell the thread that the session ended.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Copies the user's window size to CMD's terminal, whose kernel then signals CMD's
    /// foreground process group (SIGWINCH). Call on SIGWINCH.
    pub fn resize(&self) {
        copy_window_size(self.size_source, self.master.as_raw_fd());
    }

    /// After the session's processes are gone: writes out everything CMD wrote that was not
    /// relayed yet and restores the user's terminal.
    pub fn finish(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            // A panic of the thread was printed, and its unwinding restored the terminal; the
            // session goes on to its summary.
            let _ = thread.join();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The user's terminal (stdin) in raw mode; dropping it restores the settings it had.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    const FD: RawFd = 0;

    fn enter() -> Result<Self> {
        let saved = terminal_settings(Self::FD).context("reading the terminal's settings")?;
        let raw = Self { saved };
        raw.apply().context("putting the terminal into raw mode")?;
        Ok(raw)
    }

    /// Raw input and output: the pseudo-terminal does the line editing, echo, signal keys and
    /// output processing with the user's settings, and its output is already processed.
    fn apply(&self) -> std::io::Result<()> {
        let mut raw = self.saved;
        // SAFETY: `raw` is a valid termios on this stack frame.
        unsafe { libc::cfmakeraw(&raw mut raw) };
        set_terminal_settings(Self::FD, &raw)
    }

    fn restore(&self) {
        // Nothing to do if it fails: the terminal is gone (hung up).
        let _ = set_terminal_settings(Self::FD, &self.saved);
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        self.restore();
    }
}

/// The relay's thread: copies keys to CMD's terminal and its output to the user's.
struct Copier {
    master: Arc<OwnedFd>,
    /// Stdin in raw mode, where it is a terminal.
    input: Option<RawMode>,
    output: RawFd,
    /// Readable (end of file) once the session ended.
    stop: OwnedFd,
    freezer: Option<File>,
}

impl Copier {
    fn run(mut self) {
        let master = self.master.as_raw_fd();
        // Keys not yet taken by CMD's terminal (its input queue was full).
        let mut keys: Vec<u8> = Vec::new();
        let mut reading_keys = self.input.is_some();
        let mut writing_output = true;
        // Since when the session is over.
        let mut ending: Option<Instant> = None;
        let mut buf = [0u8; 4096];
        loop {
            // A negative descriptor is left out: poll reports a hangup even where no event
            // was asked for.
            let ended = ending.is_some();
            let mut fds = [
                pollfd(
                    master,
                    libc::POLLIN | if keys.is_empty() { 0 } else { libc::POLLOUT },
                ),
                pollfd(if ended { -1 } else { self.stop.as_raw_fd() }, libc::POLLIN),
                pollfd(
                    if reading_keys && keys.is_empty() && !ended {
                        RawMode::FD
                    } else {
                        -1
                    },
                    libc::POLLIN,
                ),
            ];
            let timeout = match ending {
                Some(since) => {
                    DRAIN_LIMIT.saturating_sub(since.elapsed()).as_millis() as libc::c_int
                }
                None => -1,
            };
            // SAFETY: `fds` is an array of valid pollfds on this stack frame and its length is
            // passed with it.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if ready < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                return;
            }
            if ready == 0 {
                // Whatever still holds the terminal is not the session.
                return;
            }
            if fds[0].revents != 0 {
                match drain_output(master, &mut buf, self.output, &mut writing_output) {
                    Drained::Empty => {}
                    Drained::Closed => return,
                }
                if !keys.is_empty() {
                    match write_some(master, &keys) {
                        Ok(n) => drop(keys.drain(..n)),
                        Err(e) if e == libc::EAGAIN || e == libc::EINTR => {}
                        // No process holds CMD's terminal: keys have nowhere to go.
                        Err(_) => keys.clear(),
                    }
                }
            }
            if fds[1].revents != 0 {
                ending = Some(Instant::now());
                keys.clear();
            }
            if fds[2].revents != 0 {
                match read_some(RawMode::FD, &mut buf) {
                    Ok(n) if n > 0 => self.take_keys(&buf[..n], &mut keys),
                    Err(e) if e == libc::EINTR || e == libc::EAGAIN => {}
                    // The terminal hung up.
                    _ => reading_keys = false,
                }
            }
        }
    }

    /// Queues `typed` for CMD's terminal; its suspend key (Ctrl-Z) suspends the session
    /// where CMD's terminal would not stop anything with it.
    fn take_keys(&mut self, typed: &[u8], keys: &mut Vec<u8>) {
        let master = self.master.as_raw_fd();
        let mut rest = typed;
        while let Some(key) = suspend_key(master) {
            let Some(at) = rest.iter().position(|&b| b == key) else {
                break;
            };
            keys.extend_from_slice(&rest[..at]);
            self.suspend();
            rest = &rest[at + 1..];
        }
        keys.extend_from_slice(rest);
    }

    /// Stops sandtrace as a shell's job and, with it, the session, until it is continued.
    fn suspend(&mut self) {
        let Some(raw) = &self.input else { return };
        raw.restore();
        self.freeze(true);
        // SAFETY: kill and tgkill with integer arguments. SIGTSTP to sandtrace's process group,
        // as the terminal's Ctrl-Z would send it (to a shell script that started sandtrace,
        // say; init is in the group but ignores it, as a namespace's init ignores every
        // default-action signal from outside; CMD is in a session of its own, frozen). Then
        // to this very thread, which so stops before its tgkill returns: a signal to the
        // process would be taken by another thread, and this one could take raw mode back
        // before the stop. The kernel discards both where no shell could continue sandtrace
        // (an orphaned process group), and then this returns at once.
        unsafe {
            libc::kill(0, libc::SIGTSTP);
            libc::syscall(
                libc::SYS_tgkill,
                libc::getpid(),
                libc::gettid(),
                libc::SIGTSTP,
            );
        }
        // Continued (`fg`): the window may have changed meanwhile.
        if raw.apply().is_err() {
            // The terminal is gone: the session ends with the hangup.
            self.input = None;
        }
        copy_window_size(RawMode::FD, self.master.as_raw_fd());
        self.freeze(false);
    }

    /// Freezes or thaws every process of the session.
    fn freeze(&self, frozen: bool) {
        if let Some(mut freezer) = self.freezer.as_ref() {
            // Without it (a kernel without the cgroup freezer), the session goes on running
            // while sandtrace is stopped, and blocks once the terminal's buffer is full.
            let _ = freezer.write_all(if frozen { b"1" } else { b"0" });
        }
    }
}

/// What reading CMD's terminal found.
enum Drained {
    /// Everything available was copied.
    Empty,
    /// No process holds CMD's terminal any more, and everything it wrote was copied.
    Closed,
}

/// Copies what CMD's terminal has to `output`. When `output` fails (the user's terminal hung
/// up), the rest is read and dropped so CMD is not blocked.
fn drain_output(master: RawFd, buf: &mut [u8], output: RawFd, writing: &mut bool) -> Drained {
    loop {
        match read_some(master, buf) {
            Ok(0) => return Drained::Closed,
            Ok(n) => {
                if *writing && write_all(output, &buf[..n]).is_err() {
                    *writing = false;
                }
            }
            Err(e) if e == libc::EINTR => {}
            Err(e) if e == libc::EAGAIN => return Drained::Empty,
            // EIO: the last holder of the slave closed it.
            Err(_) => return Drained::Closed,
        }
    }
}

/// The key that suspends CMD's foreground job, if CMD's terminal generates signals and that
/// job is CMD's own process group (the session leader's), for which the kernel discards
/// SIGTSTP. Any other foreground group belongs to a job-control shell inside the session,
/// which gets the key through the terminal as usual.
fn suspend_key(master: RawFd) -> Option<u8> {
    let settings = terminal_settings(master).ok()?;
    let key = settings.c_cc[libc::VSUSP];
    // 0 is _POSIX_VDISABLE on Linux.
    if settings.c_lflag & libc::ISIG == 0 || key == 0 {
        return None;
    }
    let mut foreground: libc::pid_t = 0;
    let mut session: libc::pid_t = 0;
    // SAFETY: both ioctls store a pid_t into the variable passed.
    let known = unsafe {
        libc::ioctl(master, libc::TIOCGPGRP, &raw mut foreground) == 0
            && libc::ioctl(master, libc::TIOCGSID, &raw mut session) == 0
    };
    (known && foreground == session).then_some(key)
}

fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

fn terminal_settings(fd: RawFd) -> std::io::Result<libc::termios> {
    // SAFETY: all-zero is a valid termios; tcgetattr fills it in.
    let mut settings: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `settings` is a termios on this stack frame.
    if unsafe { libc::tcgetattr(fd, &raw mut settings) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(settings)
}

fn set_terminal_settings(fd: RawFd, settings: &libc::termios) -> std::io::Result<()> {
    // SAFETY: `settings` is a valid termios.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, settings) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Copies the window size of terminal `from` to terminal `to`; nothing if `from` has none.
fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: all-zero is a valid winsize.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ stores a winsize into `size`; TIOCSWINSZ reads one from it.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &raw mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &raw const size);
        }
    }
}

/// A new pseudo-terminal pair, both ends close-on-exec and neither the caller's controlling
/// terminal.
fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    let failed = |what: &str| {
        Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "{what} (sandtrace gives the command a new pseudo-terminal: is /dev/pts mounted?)"
            )
        })
    };
    // SAFETY: posix_openpt takes flags only.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return failed("opening a new pseudo-terminal");
    }
    // SAFETY: posix_openpt just returned this descriptor; nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: grantpt and unlockpt take the master's descriptor.
    if unsafe { libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 } {
        return failed("unlocking the new pseudo-terminal");
    }
    // TIOCGPTPEER opens the slave of this very master, without a path lookup in /dev/pts.
    // SAFETY: ioctl with integer arguments; it returns a new descriptor.
    let slave = unsafe {
        libc::ioctl(
            fd,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return failed("opening the new pseudo-terminal's slave");
    }
    // SAFETY: the ioctl just returned this descriptor; nothing else owns it.
    Ok((master, unsafe { OwnedFd::from_raw_fd(slave) }))
}

fn set_nonblocking(fd: RawFd) -> Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor the caller owns.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    if !ok {
        return Err(std::io::Error::last_os_error()).context("fcntl O_NONBLOCK");
    }
    Ok(())
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 stores.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 just created both descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn read_some(fd: RawFd, buf: &mut [u8]) -> Result<usize, i32> {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

fn write_some(fd: RawFd, bytes: &[u8]) -> Result<usize, i32> {
    // SAFETY: `bytes` is valid for reads of its length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    if n < 0 { Err(errno()) } else { Ok(n as usize) }
}

/// Writes all of `bytes`, waiting where the descriptor is non-blocking and full.
fn write_all(fd: RawFd, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        match write_some(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e == libc::EINTR => {}
            Err(e) if e == libc::EAGAIN => {
                let mut fds = [pollfd(fd, libc::POLLOUT)];
                // SAFETY: one valid pollfd on this stack frame.
                unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}
