//! Boots a kernel under QEMU and runs one command in it.
//!
//! The host's `/` is shared read-only over 9p (the guest's `/init` lays a tmpfs overlay on
//! it), and each `--share` directory read-write at its own path. Per run, a private host
//! directory (the "run directory", under the host's temp dir) carries `command.sh` and the
//! `shares` list to the guest and the Unix sockets QEMU connects the guest's stdout and stderr
//! ports to. The serial console carries the kernel's messages and the exit status line
//! (see `init.sh`); it is shown only on failure, or live with `show_console`.
//!
//! Software emulation (TCG) throughout: KVM does not run stock guest kernels on the project's
//! machines, and the tests must not depend on it.

use std::{
    collections::VecDeque,
    ffi::{OsStr, OsString},
    fs,
    io::{self, BufRead as _, BufReader, Read, Write},
    os::unix::{
        ffi::OsStrExt as _,
        fs::DirBuilderExt as _,
        net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use super::kernel::{Kernel, LSM_LIST};

/// How many console lines a failure report shows.
const CONSOLE_TAIL_LINES: usize = 40;
/// The guest's resources: two vCPUs, so tests see a multiprocessor kernel, and memory for
/// tmpfs scratch space.
const MEMORY_MIB: &str = "2048";
const CPUS: &str = "2";
/// Console text that starts a kernel crash report.
const CRASH_SIGNS: [&str; 5] = [
    "Kernel panic",
    "BUG:",
    "Oops:",
    "general protection fault",
    "invalid opcode:",
];
/// The exit status line `init.sh` prints: `sandtrace-vm-exit RUN STATUS`.
const EXIT_MARKER: &str = "sandtrace-vm-exit ";

/// One command to run in a guest.
pub struct GuestCommand<'a> {
    pub kernel: &'a Kernel,
    pub argv: &'a [OsString],
    /// The guest command's working directory (a path on the host's filesystem).
    pub cwd: &'a Path,
    /// Its entire environment.
    pub env: &'a [(String, OsString)],
    /// Host directories shared read-write at the same path.
    pub shares: &'a [PathBuf],
    /// Kill the VM after this long, boot included.
    pub timeout: Duration,
    /// Copy the serial console to stderr as it arrives.
    pub show_console: bool,
    /// Where the command's output goes: live to this process's stdout/stderr, or only into
    /// [`GuestExit`] (so that several VMs can run side by side without mixing their output).
    pub output: Output,
}

/// How the guest command ended.
#[derive(Debug)]
pub struct GuestExit {
    /// The command's exit status (128 + N when killed by signal N).
    pub code: u8,
    /// Its stdout and stderr with [`Output::Captured`], else empty.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Live,
    Captured,
}

/// Boots `command.kernel`, runs the command and returns its exit status. A guest that panics,
/// hangs past the timeout or powers off without reporting a status is an error that shows the
/// console's last lines.
pub fn run(command: &GuestCommand) -> Result<GuestExit> {
    let run_dir = RunDir::create()?;
    let shares = command
        .shares
        .iter()
        .map(|dir| checked_share(dir))
        .collect::<Result<Vec<_>>>()?;
    run_dir.write("command.sh", &command_script(command))?;
    let mut share_list = Vec::new();
    for (index, dir) in shares.iter().enumerate() {
        share_list.extend_from_slice(format!("share{index} {dir}\n").as_bytes());
    }
    run_dir.write("shares", &share_list)?;
    let stdout_socket = run_dir.listen("stdout.sock")?;
    let stderr_socket = run_dir.listen("stderr.sock")?;

    let mut child = qemu_command(command.kernel, &run_dir, &shares)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting qemu-system-x86_64 (package qemu-system-x86)")?;
    let deadline = Instant::now() + command.timeout;
    let console = watch_console(
        child.stdout.take().expect("stdout is piped"),
        format!("{EXIT_MARKER}{} ", run_dir.guest_path()),
        command.show_console,
    );
    let diagnostics = Diagnostics {
        kernel: command.kernel,
        qemu_stderr: drain(child.stderr.take().expect("stderr is piped")),
        console_shown: command.show_console,
    };
    let (stdout, stderr) = match accept_ports(&mut child, &stdout_socket, &stderr_socket, deadline)
    {
        Ok(ports) => ports,
        Err(err) => {
            stop(&mut child);
            return Err(diagnostics.error(&format!("{err:#}"), &finish(console)?));
        }
    };
    let captured = command.output == Output::Captured;
    let (stdout, stderr) = if captured {
        (
            forward(stdout, io::sink(), true),
            forward(stderr, io::sink(), true),
        )
    } else {
        (
            forward(stdout, io::stdout(), false),
            forward(stderr, io::stderr(), false),
        )
    };
    let exited = wait_until(&mut child, deadline)?;
    if exited.is_none() {
        stop(&mut child);
    }
    // QEMU has exited, so its ports and console are closed and these end once drained.
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let console = finish(console)?;
    match (exited, console.exit_code) {
        (Some(_), Some(code)) => Ok(GuestExit {
            code,
            stdout,
            stderr,
        }),
        (None, _) => {
            let timeout = command.timeout.as_secs();
            Err(diagnostics.error(
                &format!("the VM did not finish within {timeout} s and was killed"),
                &console,
            ))
        }
        (Some(status), None) => Err(diagnostics.error(
            &format!(
                "the guest stopped without reporting the command's exit status (kernel panic or \
                 failed /init?); qemu {status}"
            ),
            &console,
        )),
    }
}

/// What a failure report shows besides the failure itself.
struct Diagnostics<'a> {
    kernel: &'a Kernel,
    qemu_stderr: JoinHandle<String>,
    /// The console was already copied to stderr as it ran.
    console_shown: bool,
}

impl Diagnostics<'_> {
    /// Call once QEMU has exited, so that its stderr reader finishes.
    fn error(self, failure: &str, console: &ConsoleReport) -> anyhow::Error {
        let mut message = format!("{failure}\nkernel: {}", self.kernel.origin);
        let qemu_stderr = self.qemu_stderr.join().unwrap_or_default();
        if !qemu_stderr.trim().is_empty() {
            message.push_str(&format!("\nqemu's stderr:\n{}", qemu_stderr.trim_end()));
        }
        if !self.console_shown {
            if let Some(crash) = console
                .first_crash
                .as_ref()
                .filter(|line| !console.tail.contains(line))
            {
                message.push_str(&format!(
                    "\nfirst kernel error on the guest console:\n{crash}"
                ));
            }
            message.push_str(&format!(
                "\nlast lines of the guest console:\n{}",
                console.tail.join("\n")
            ));
        }
        anyhow!(message)
    }
}

/// Kills QEMU (if it still runs) and reaps it.
fn stop(qemu: &mut Child) {
    let _ = qemu.kill();
    let _ = qemu.wait();
}

/// Waits for QEMU to exit; `None` once `deadline` passes first.
fn wait_until(qemu: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = qemu.try_wait().context("waiting for qemu")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A share must be an existing directory whose path fits the guest's `shares` list and QEMU's
/// option syntax; the host's root would make the whole host writable.
fn checked_share(dir: &Path) -> Result<String> {
    let canonical = fs::canonicalize(dir).with_context(|| format!("--share {}", dir.display()))?;
    if !canonical.is_dir() {
        bail!("--share {}: not a directory", dir.display());
    }
    if canonical == Path::new("/") {
        bail!("--share /: sharing the host's root read-write is refused; share a directory");
    }
    match canonical.to_str() {
        Some(path) if !path.contains('\n') => Ok(path.to_owned()),
        _ => bail!(
            "--share {}: the path must be UTF-8 without newlines",
            dir.display()
        ),
    }
}

/// The script the guest's `/init` runs with `sh -c` inside the chroot: enter the working
/// directory, set the environment, run the command.
fn command_script(command: &GuestCommand) -> Vec<u8> {
    let cwd = shell_quote(command.cwd.as_os_str());
    let mut script = Vec::new();
    script.extend_from_slice(b"cd -- ");
    script.extend_from_slice(&cwd);
    script.extend_from_slice(
        b" 2>/dev/null || { printf 'sandtrace-vm: the working directory %s does not exist in \
          the guest (/tmp and /run are the guest'\\''s own; --share it)\\n' ",
    );
    script.extend_from_slice(&cwd);
    script.extend_from_slice(b" >&2; exit 125; }\n");
    for (name, value) in command.env {
        script.extend_from_slice(format!("export {name}=").as_bytes());
        script.extend_from_slice(&shell_quote(value));
        script.push(b'\n');
    }
    script.extend_from_slice(b"exec");
    for arg in command.argv {
        script.push(b' ');
        script.extend_from_slice(&shell_quote(arg));
    }
    script.push(b'\n');
    script
}

/// `arg` as one word for a POSIX shell.
pub fn shell_quote(arg: &OsStr) -> Vec<u8> {
    let mut quoted = vec![b'\''];
    for &byte in arg.as_bytes() {
        if byte == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(byte);
        }
    }
    quoted.push(b'\'');
    quoted
}

fn qemu_command(kernel: &Kernel, run_dir: &RunDir, shares: &[String]) -> Result<Command> {
    let mut qemu = Command::new("qemu-system-x86_64");
    // One host thread runs both vCPUs: with multi-threaded TCG, Linux patching its own code on
    // one vCPU (static keys) occasionally crashed another (invalid opcode, about 1 boot in 30).
    qemu.args([
        "-accel",
        "tcg,thread=single",
        "-cpu",
        "max",
        "-m",
        MEMORY_MIB,
        "-smp",
        CPUS,
    ]);
    qemu.args([
        "-nographic",
        "-vga",
        "none",
        "-no-reboot",
        "-no-user-config",
        "-nic",
        "none",
    ]);
    qemu.arg("-kernel").arg(&kernel.image);
    qemu.arg("-initrd").arg(&kernel.initramfs);
    // `panic=-1` turns a guest panic into a reboot, which `-no-reboot` turns into QEMU exiting.
    qemu.arg("-append").arg(format!(
        "console=ttyS0 quiet panic=-1 lsm={LSM_LIST} sandtrace.run={}",
        run_dir.guest_path()
    ));
    qemu.args([
        "-virtfs",
        "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
    ]);
    for (index, dir) in shares.iter().enumerate() {
        qemu.arg("-virtfs").arg(format!(
            "local,path={},mount_tag=share{index},security_model=none,multidevs=remap",
            dir.replace(',', ",,")
        ));
    }
    qemu.args(["-device", "virtio-serial-pci,id=ports"]);
    for (port, socket) in [("stdout", "stdout.sock"), ("stderr", "stderr.sock")] {
        let path = run_dir.path.join(socket);
        let path = path
            .to_str()
            .context("the run directory's path is not UTF-8")?;
        qemu.arg("-chardev")
            .arg(format!("socket,id={port},path={}", path.replace(',', ",,")));
        qemu.arg("-device").arg(format!(
            "virtserialport,bus=ports.0,chardev={port},name=sandtrace.{port}"
        ));
    }
    Ok(qemu)
}

/// The run directory: private to one run, removed afterwards.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create() -> Result<Self> {
        let mut nonce = [0u8; 8];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut nonce))
            .context("reading /dev/urandom")?;
        let name = format!("sandtrace-vm-{:016x}", u64::from_ne_bytes(nonce));
        let path = std::env::temp_dir().join(name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let run_dir = Self { path };
        if run_dir.guest_path().contains(char::is_whitespace) {
            bail!(
                "the temp directory {} contains whitespace; set TMPDIR",
                run_dir.path.display()
            );
        }
        Ok(run_dir)
    }

    /// The path as the guest's `/init` reads it from the kernel command line.
    fn guest_path(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    fn write(&self, name: &str, contents: &[u8]) -> Result<()> {
        let path = self.path.join(name);
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    }

    fn listen(&self, name: &str) -> Result<UnixListener> {
        let path = self.path.join(name);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("listening on {}", path.display()))?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Waits for QEMU to connect the guest's stdout and stderr ports, which it does at startup.
fn accept_ports(
    qemu: &mut Child,
    stdout: &UnixListener,
    stderr: &UnixListener,
    deadline: Instant,
) -> Result<(UnixStream, UnixStream)> {
    let mut accept = |listener: &UnixListener| loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                if let Some(status) = qemu.try_wait()? {
                    bail!("qemu exited at startup ({status})");
                }
                if Instant::now() > deadline {
                    bail!("qemu did not connect the guest's output ports before the timeout");
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(err).context("accepting qemu's connection"),
        }
    };
    Ok((accept(stdout)?, accept(stderr)?))
}

/// Copies a guest port to `sink` until QEMU closes it, keeping a copy when asked. A sink that
/// fails (a closed pipe) is dropped while the port is still drained, so the guest never stalls.
fn forward(
    mut port: UnixStream,
    mut sink: impl Write + Send + 'static,
    keep: bool,
) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut sink_ok = true;
        let mut buffer = [0u8; 64 * 1024];
        loop {
            let n = match port.read(&mut buffer) {
                Ok(0) | Err(_) => return kept,
                Ok(n) => n,
            };
            if sink_ok {
                sink_ok = sink
                    .write_all(&buffer[..n])
                    .and_then(|()| sink.flush())
                    .is_ok();
            }
            if keep {
                kept.extend_from_slice(&buffer[..n]);
            }
        }
    })
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text);
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// What the console showed by the time QEMU closed it.
struct ConsoleReport {
    exit_code: Option<u8>,
    /// The first sign of a kernel crash: the cause, when the tail shows only its aftermath.
    first_crash: Option<String>,
    tail: Vec<String>,
}

/// The console's report, once QEMU has exited.
fn finish(console: JoinHandle<ConsoleReport>) -> Result<ConsoleReport> {
    console
        .join()
        .map_err(|_| anyhow!("the console reader panicked"))
}

/// Reads the console until QEMU closes it (exits), noting the exit status line.
fn watch_console(console: ChildStdout, marker: String, show: bool) -> JoinHandle<ConsoleReport> {
    thread::spawn(move || {
        let mut report = ConsoleReport {
            exit_code: None,
            first_crash: None,
            tail: Vec::new(),
        };
        let mut tail = VecDeque::with_capacity(CONSOLE_TAIL_LINES);
        let mut reader = BufReader::new(console);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = without_escapes(String::from_utf8_lossy(&line).trim_end());
            line.clear();
            if show {
                eprintln!("{text}");
            }
            if let Some(status) = text.split_once(&marker).map(|(_, status)| status.trim()) {
                report.exit_code = status.parse().ok();
            }
            if report.first_crash.is_none() && CRASH_SIGNS.iter().any(|sign| text.contains(sign)) {
                report.first_crash = Some(text.clone());
            }
            if tail.len() == CONSOLE_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(text);
        }
        report.tail = tail.into();
        report
    })
}

/// `line` without terminal escape sequences (the firmware clears the screen on the console).
fn without_escapes(line: &str) -> String {
    let mut text = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            // CSI: parameters up to a final byte in @..~; any other escape is two characters.
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            c if c.is_control() => {}
            c => text.push(c),
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_lines_lose_escape_sequences() {
        assert_eq!(
            without_escapes("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1)\r"),
            "SeaBIOS (version 1)"
        );
    }

    #[test]
    fn shell_quote_survives_quotes_and_spaces() {
        let quoted = shell_quote(OsStr::new("it's a b"));
        assert_eq!(quoted, b"'it'\\''s a b'");
        let out = Command::new("sh")
            .arg("-c")
            .arg(OsStr::from_bytes(
                &[b"printf %s ".as_slice(), &quoted].concat(),
            ))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"it's a b");
    }
}
