//! The compact binary capture (`sandtrace run --record FILE`): the ring buffer's records as
//! the kernel wrote them, plus the tables needed to turn them into the JSONL log's lines, in
//! the spirit of sysdig's capture files. Writing one costs a copy per record, where `-o`
//! decodes and formats every record as it comes; `sandtrace export` and `sandtrace report`
//! format the records later, with the same code as `-o`, so that the lines are the same.
//!
//! The file is [`MAGIC`], then entries: a tag byte, the payload's length (u32, little
//! endian) and the payload.
//!
//! - [`HEADER`], first: JSON with the format version, the architecture and the sizes of the
//!   records (they are stored in this machine's byte order and layout), the clock (wall-clock
//!   time of the kernel's monotonic zero) and the labels of the policy's rules.
//! - [`RECORD`]: one ring-buffer record; a path's unused tail is cut off (read back as NULs).
//! - [`LINE`]: a JSONL line formatted already (the session resolver's `dns` lines, and the
//!   summary as the last entry).
//! - [`NAME`] and [`ADDRESS`]: the session resolver's name table as it changed (a name takes
//!   the next id; an address was handed out for a name), stored before the records of the
//!   batch written after the change, so that network and socket lines name hosts as `-o`
//!   names them.
//!
//! A capture cut short (sandtrace killed, disk full) reads up to its last whole entry.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read as _, Write as _},
    mem::offset_of,
    net::{IpAddr, Ipv6Addr},
    path::Path,
};

use anyhow::{Context as _, Result, bail, ensure};
use sandtrace_common::{
    event::{EventKind, ExecEvent, FileEvent, SyscallEvent, SyscallPathEvent},
    network::{DnsPacketEvent, NetworkEvent, SocketEvent},
};
use serde::{Deserialize, Serialize};

use crate::{
    dns::{NameChange, ResolvedNames},
    events::Clock,
    output::{Labels, event_log::LogFormat, jsonl::JsonlFormat},
};

/// What a capture starts with.
pub const MAGIC: &[u8; 18] = b"sandtrace capture\n";
/// The version of the layout described above.
const FORMAT_VERSION: u32 = 1;

const HEADER: u8 = 1;
const RECORD: u8 = 2;
const LINE: u8 = 3;
const NAME: u8 = 4;
const ADDRESS: u8 = 5;

/// Bytes of an entry's tag and length.
const ENTRY_HEAD: usize = 5;
/// The largest entry a reader accepts: records and lines are far smaller, so anything
/// larger is damage, not an allocation to make.
const MAX_ENTRY: usize = 1 << 20;

#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    /// The sandtrace version that wrote it, for error messages.
    sandtrace: String,
    /// Records are in this architecture's byte order and layout, ...
    arch: String,
    /// ... with these sizes.
    record_sizes: Vec<(u32, usize)>,
    clock_wall_at_zero_ns: u64,
    labels: Labels,
}

/// The record sizes of this build, by event kind: a capture whose sizes differ was written
/// by a sandtrace with other record layouts, which this one cannot decode.
fn record_sizes() -> Vec<(u32, usize)> {
    [
        (EventKind::Syscall, size_of::<SyscallEvent>()),
        (EventKind::SyscallPath, size_of::<SyscallPathEvent>()),
        (EventKind::Exec, size_of::<ExecEvent>()),
        (EventKind::File, size_of::<FileEvent>()),
        (EventKind::Network, size_of::<NetworkEvent>()),
        (EventKind::DnsPacket, size_of::<DnsPacketEvent>()),
        (EventKind::Socket, size_of::<SocketEvent>()),
        (
            EventKind::Fork,
            size_of::<sandtrace_common::event::ForkEvent>(),
        ),
        (
            EventKind::Exit,
            size_of::<sandtrace_common::event::ExitEvent>(),
        ),
    ]
    .map(|(kind, size)| (kind as u32, size))
    .to_vec()
}

/// The bytes of `record` a capture keeps: a path's unused tail (after its NUL, or beyond its
/// length) is left out, and read back as zeros.
fn kept_len(record: &[u8]) -> usize {
    let kind = record
        .get(..4)
        .map(|k| u32::from_ne_bytes(k.try_into().expect("four bytes")));
    let cut = match kind.and_then(EventKind::from_u32) {
        Some(EventKind::SyscallPath) if record.len() == size_of::<SyscallPathEvent>() => {
            let start = offset_of!(SyscallPathEvent, path);
            record[start..]
                .iter()
                .position(|&b| b == 0)
                .map(|nul| start + nul + 1)
        }
        Some(EventKind::File) if record.len() == size_of::<FileEvent>() => {
            let at = offset_of!(FileEvent, path_len);
            let len = u32::from_ne_bytes(record[at..at + 4].try_into().expect("four bytes"));
            Some(offset_of!(FileEvent, path) + len as usize + 1)
        }
        _ => None,
    };
    cut.map_or(record.len(), |n| n.min(record.len()))
}

/// The full record of a kept one: zeros where the capture cut the tail off.
fn restored<'a>(kept: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let full = match EventKind::from_u32(
        kept.get(..4)
            .map_or(0, |k| u32::from_ne_bytes(k.try_into().expect("four bytes"))),
    ) {
        Some(EventKind::SyscallPath) => size_of::<SyscallPathEvent>(),
        Some(EventKind::File) => size_of::<FileEvent>(),
        _ => return kept,
    };
    if kept.len() >= full {
        return kept;
    }
    scratch.clear();
    scratch.extend_from_slice(kept);
    scratch.resize(full, 0);
    scratch
}

fn entry(out: &mut Vec<u8>, tag: u8, payload: &[&[u8]]) {
    let len: usize = payload.iter().map(|p| p.len()).sum();
    out.push(tag);
    out.extend_from_slice(&u32::try_from(len).expect("entries are small").to_le_bytes());
    for part in payload {
        out.extend_from_slice(part);
    }
}

/// The capture's writer (on the event log's thread): a copy per record.
pub struct CaptureFormat {
    header: Option<Header>,
    names: ResolvedNames,
}

impl CaptureFormat {
    /// A capture of a session whose records `clock` dates and `labels` label. From now on,
    /// the resolver's name table keeps its changes for the capture.
    pub fn new(clock: Clock, labels: &Labels) -> Self {
        labels.names.keep_changes();
        Self {
            header: Some(Header {
                format: FORMAT_VERSION,
                sandtrace: env!("CARGO_PKG_VERSION").to_owned(),
                arch: std::env::consts::ARCH.to_owned(),
                record_sizes: record_sizes(),
                clock_wall_at_zero_ns: clock.wall_at_zero_ns(),
                labels: labels.clone(),
            }),
            names: labels.names.clone(),
        }
    }
}

impl LogFormat for CaptureFormat {
    fn start(&mut self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(MAGIC);
        let header = self.header.take().expect("started once");
        entry(out, HEADER, &[&serde_json::to_vec(&header)?]);
        Ok(())
    }

    fn before_batch(&mut self, out: &mut Vec<u8>) {
        for change in self.names.take_changes() {
            match change {
                NameChange::Name(name) => entry(out, NAME, &[name.as_bytes()]),
                NameChange::Address(addr, id) => {
                    let v6 = match addr {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    entry(out, ADDRESS, &[&id.to_le_bytes(), &v6.octets()]);
                }
            }
        }
    }

    fn record(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<()> {
        entry(out, RECORD, &[&record[..kept_len(record)]]);
        Ok(())
    }

    fn line(&mut self, out: &mut Vec<u8>, line: &[u8]) {
        entry(out, LINE, &[line]);
    }
}

/// Whether the file at `path` starts like a capture.
pub fn is_capture(path: &Path) -> Result<bool> {
    let mut start = Vec::with_capacity(MAGIC.len());
    File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(MAGIC.len() as u64)
        .read_to_end(&mut start)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(start == MAGIC)
}

/// Reads a capture back as the JSONL lines `-o` would have written.
pub struct CaptureReader {
    file: BufReader<File>,
    path: std::path::PathBuf,
    jsonl: JsonlFormat,
    names: ResolvedNames,
    payload: Vec<u8>,
    scratch: Vec<u8>,
    /// Whether the file ended inside an entry.
    cut: bool,
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<Self> {
        let file =
            File::open(path).with_context(|| format!("opening the capture {}", path.display()))?;
        let mut file = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; MAGIC.len()];
        file.read_exact(&mut magic)
            .ok()
            .filter(|()| &magic == MAGIC)
            .with_context(|| format!("{} is not a sandtrace capture", path.display()))?;
        let mut reader = Self {
            file,
            path: path.to_owned(),
            jsonl: JsonlFormat::new(Clock::new(), Labels::default()),
            names: ResolvedNames::default(),
            payload: Vec::new(),
            scratch: Vec::new(),
            cut: false,
        };
        let header = match reader.next_entry()? {
            Some(HEADER) => serde_json::from_slice::<Header>(&reader.payload)
                .with_context(|| format!("reading the header of {}", path.display()))?,
            _ => bail!(
                "{} has no capture header: the file is damaged",
                path.display()
            ),
        };
        ensure!(
            header.format == FORMAT_VERSION,
            "{} is a capture of format {} (sandtrace {}); this sandtrace reads format \
             {FORMAT_VERSION}",
            path.display(),
            header.format,
            header.sandtrace
        );
        ensure!(
            header.arch == std::env::consts::ARCH && header.record_sizes == record_sizes(),
            "{} was written by sandtrace {} on {}, whose records this sandtrace ({} on {}) \
             cannot decode; export it to JSONL with the sandtrace that wrote it",
            path.display(),
            header.sandtrace,
            header.arch,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH
        );
        let mut labels = header.labels;
        labels.names = reader.names.clone();
        reader.jsonl = JsonlFormat::new(
            Clock::from_wall_at_zero_ns(header.clock_wall_at_zero_ns),
            labels,
        );
        Ok(reader)
    }

    /// Whether the capture ended in the middle of an entry (the run was cut short).
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// Appends the next JSONL line (newline included) to `out`; false at the end.
    pub fn next_line(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        loop {
            let Some(tag) = self.next_entry()? else {
                return Ok(false);
            };
            match tag {
                RECORD => {
                    let record = restored(&self.payload, &mut self.scratch);
                    self.jsonl
                        .format_record(out, record)
                        .with_context(|| format!("decoding a record of {}", self.path.display()))?;
                    return Ok(true);
                }
                LINE => {
                    out.extend_from_slice(&self.payload);
                    return Ok(true);
                }
                NAME => {
                    let name = std::str::from_utf8(&self.payload).with_context(|| {
                        format!("a name in {} is not UTF-8", self.path.display())
                    })?;
                    self.apply(&NameChange::Name(name.into()))?;
                }
                ADDRESS => {
                    let payload: [u8; 20] = self.payload[..].try_into().with_context(|| {
                        format!("an address entry of {} is damaged", self.path.display())
                    })?;
                    let id = u32::from_le_bytes(payload[..4].try_into().expect("four bytes"));
                    let octets: [u8; 16] = payload[4..].try_into().expect("sixteen bytes");
                    let addr = Ipv6Addr::from(octets).to_canonical();
                    self.apply(&NameChange::Address(addr, id))?;
                }
                // Entries of a later minor addition are skipped.
                _ => {}
            }
        }
    }

    fn apply(&self, change: &NameChange) -> Result<()> {
        self.names
            .apply(change)
            .map_err(|e| anyhow::anyhow!("{}: {e}: the capture is damaged", self.path.display()))
    }

    /// Reads the next entry's payload into `self.payload` and returns its tag; `None` at the
    /// end of the file or of its last whole entry.
    fn next_entry(&mut self) -> Result<Option<u8>> {
        let mut head = [0u8; ENTRY_HEAD];
        match self.fill(&mut head)? {
            0 => return Ok(None),
            ENTRY_HEAD => {}
            _ => {
                self.cut = true;
                return Ok(None);
            }
        }
        let len = u32::from_le_bytes(head[1..].try_into().expect("four bytes")) as usize;
        ensure!(
            len <= MAX_ENTRY,
            "{}: an entry of {len} bytes: the capture is damaged",
            self.path.display()
        );
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(len, 0);
        let read = self.fill(&mut payload);
        self.payload = payload;
        if read? < len {
            self.cut = true;
            return Ok(None);
        }
        Ok(Some(head[0]))
    }

    /// Fills `buf` from the file as far as it goes; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize> {
        let mut read = 0;
        while read < buf.len() {
            match self.file.read(&mut buf[read..]) {
                Ok(0) => break,
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("reading {}", self.path.display()));
                }
            }
        }
        Ok(read)
    }
}

/// `sandtrace export CAPTURE -o OUT`: the capture's JSONL log. Returns the lines written and
/// whether the capture was cut short.
pub fn export(capture: &Path, output: &Path) -> Result<(u64, bool)> {
    let mut reader = CaptureReader::open(capture)?;
    let file = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut lines = 0;
    while reader.next_line(&mut line)? {
        lines += 1;
        if line.len() >= 1 << 16 {
            out.write_all(&line)
                .with_context(|| format!("writing {}", output.display()))?;
            line.clear();
        }
    }
    out.write_all(&line)
        .and_then(|()| out.flush())
        .with_context(|| format!("writing {}", output.display()))?;
    Ok((lines, reader.was_cut()))
}

/// Runs `sandtrace export`.
pub fn command(args: &crate::cli::ExportArgs) -> std::process::ExitCode {
    match export(&args.capture, &args.output) {
        Ok((lines, cut)) => {
            if cut {
                eprintln!(
                    "sandtrace: warning: {} ends in the middle of an entry (the run was cut \
                     short): {lines} lines written, up to its last whole entry",
                    args.capture.display()
                );
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sandtrace: error: {e:#}");
            eprintln!(
                "  hint: record a capture with `sandtrace run --record FILE -- CMD`, then run \
                 `sandtrace export FILE -o FILE.jsonl`"
            );
            std::process::ExitCode::from(crate::exit::OUTPUT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::event_log::{
        EventLog,
        tests::{dns_line, record, summary},
    };

    /// A `newfstatat` record with `path`, numbered `n`.
    fn path_record(n: u64, path: &str) -> Vec<u8> {
        let mut bytes = record(n);
        bytes[..4].copy_from_slice(&(EventKind::SyscallPath as u32).to_ne_bytes());
        let nr = offset_of!(SyscallEvent, nr);
        bytes[nr..nr + 4].copy_from_slice(&262u32.to_ne_bytes());
        let flags = offset_of!(SyscallEvent, flags);
        bytes[flags..flags + 4]
            .copy_from_slice(&sandtrace_common::event::SYSCALL_HAS_PATH.to_ne_bytes());
        // The ring buffer leaves whatever was there after the path's NUL.
        let mut tail = vec![0xa5u8; sandtrace_common::event::SYSCALL_PATH_CAP];
        tail[..path.len()].copy_from_slice(path.as_bytes());
        tail[path.len()] = 0;
        bytes.extend_from_slice(&tail);
        assert_eq!(bytes.len(), size_of::<SyscallPathEvent>());
        bytes
    }

    /// Writes the same entries with `format`, returning the file's bytes.
    fn write(dir: &Path, name: &str, format: Box<dyn LogFormat>, labels: &Labels) -> Vec<u8> {
        let path = dir.join(name);
        let mut log = EventLog::create(&path, format).unwrap();
        for n in 0..3000u64 {
            log.append(&record(n));
            log.append(&path_record(n, &format!("/usr/share/doc/{n}/copyright")));
            if n % 500 == 0 {
                log.append_dns(&dns_line(n));
                log.hand_over();
            }
            if n == 1000 {
                let id = labels.names.id("a.test").unwrap();
                labels.names.handed_out("10.0.0.1".parse().unwrap(), id);
            }
        }
        log.finish(&summary()).unwrap();
        std::fs::read(&path).unwrap()
    }

    fn read_all(path: &Path) -> (Vec<u8>, CaptureReader) {
        let mut reader = CaptureReader::open(path).unwrap();
        let mut text = Vec::new();
        while reader.next_line(&mut text).unwrap() {}
        (text, reader)
    }

    #[test]
    fn a_capture_reads_back_as_the_jsonl_log_in_less_room() {
        let dir = std::env::temp_dir().join(format!("sandtrace-capture-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let clock = Clock::new();
        let jsonl_labels = Labels::default();
        let jsonl = write(
            &dir,
            "events.jsonl",
            Box::new(JsonlFormat::new(clock, jsonl_labels.clone())),
            &jsonl_labels,
        );
        let capture_labels = Labels::default();
        let capture = write(
            &dir,
            "events.cap",
            Box::new(CaptureFormat::new(clock, &capture_labels)),
            &capture_labels,
        );
        assert!(is_capture(&dir.join("events.cap")).unwrap());
        assert!(!is_capture(&dir.join("events.jsonl")).unwrap());
        assert!(
            capture.len() * 2 < jsonl.len(),
            "capture {} bytes, JSONL {} bytes",
            capture.len(),
            jsonl.len()
        );
        let (text, reader) = read_all(&dir.join("events.cap"));
        assert!(!reader.was_cut());
        assert!(
            text == jsonl,
            "the capture's lines differ from the JSONL log's"
        );
        assert_eq!(
            reader
                .names
                .for_address("::ffff:10.0.0.1".parse().unwrap())
                .as_deref(),
            Some("a.test"),
            "the name table is replayed"
        );

        // Cut in the middle of an entry: everything before it reads, and the cut is told.
        std::fs::write(dir.join("cut.cap"), &capture[..capture.len() / 2]).unwrap();
        let (text, reader) = read_all(&dir.join("cut.cap"));
        assert!(reader.was_cut());
        let lines = text.split(|&b| b == b'\n').count() - 1;
        assert!(
            jsonl.starts_with(&text) && lines > 1000,
            "{lines} whole lines before the cut"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_capture_of_other_records_is_refused() {
        let dir = std::env::temp_dir().join(format!("sandtrace-capture-x-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut header = serde_json::to_value(Header {
            format: FORMAT_VERSION,
            sandtrace: "9.9.9".to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            record_sizes: record_sizes(),
            clock_wall_at_zero_ns: 0,
            labels: Labels::default(),
        })
        .unwrap();
        header["record_sizes"][0][1] = 1.into();
        let mut file = MAGIC.to_vec();
        entry(&mut file, HEADER, &[&serde_json::to_vec(&header).unwrap()]);
        let path = dir.join("other.cap");
        std::fs::write(&path, &file).unwrap();
        let error = format!("{:#}", CaptureReader::open(&path).err().unwrap());
        assert!(
            error.contains("was written by sandtrace 9.9.9") && error.contains("export it"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
