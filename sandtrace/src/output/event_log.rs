//! The event logs' writer thread (the JSONL log of `-o` and the capture of `--record`), so
//! that the thread draining the ring buffer only copies records: decoding and formatting a
//! million lines a second would otherwise slow the draining until the ring buffer overflows.
//!
//! The draining thread appends raw records to a batch and hands full batches over, and a
//! partial one whenever it has emptied the ring buffer, so no record waits for more to come.
//! A fixed set of batch buffers circulates between the two threads: the writer returns each
//! one emptied, and steady state allocates nothing. When the writer falls behind, the draining
//! thread waits for a buffer; the ring buffer then fills and the kernel counts what it drops.
//! Memory stays bounded and every loss is counted.
//!
//! Lines that do not come from the ring buffer (the session resolver's `dns` lines, the
//! summary) travel in the same batches, formatted already, so that the log keeps the order
//! the session saw. What the file holds for each entry is the [`LogFormat`]'s business.

use std::{
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
    sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel},
    thread::JoinHandle,
};

use anyhow::{Context as _, Result, anyhow};

use crate::output::{
    jsonl::schema::{DnsLine, Line, SummaryLine},
    summary::Summary,
};

/// Bytes of records per batch: about 500 syscall records.
const BATCH_BYTES: usize = 64 * 1024;
/// Batches in circulation: what the writer may lag behind (1 MiB of records).
const BATCHES: usize = 16;
/// Output is written to the file in chunks of at most about this size.
const WRITE_BYTES: usize = 1 << 20;
/// Each entry of a batch is its kind ([`RECORD`] or [`LINE`]), its length in native byte
/// order, and its bytes.
const HEADER_BYTES: usize = 1 + size_of::<usize>();
/// A ring-buffer record (one that decodes).
const RECORD: u8 = 0;
/// A JSONL line formatted already, newline included.
const LINE: u8 = 1;

/// What a log file makes of the entries, on the writer thread. Each method appends to `out`,
/// which the writer thread writes to the file.
pub trait LogFormat: Send + 'static {
    /// What the file starts with.
    fn start(&mut self, out: &mut Vec<u8>) -> Result<()>;
    /// Called before each batch's entries: what happened outside the batches since the last.
    fn before_batch(&mut self, _out: &mut Vec<u8>) {}
    /// A ring-buffer record the draining thread decoded.
    fn record(&mut self, out: &mut Vec<u8>, record: &[u8]) -> Result<()>;
    /// A JSONL line (newline included): a `dns` line, or the summary as the last entry.
    fn line(&mut self, out: &mut Vec<u8>, line: &[u8]);
}

/// An event log (`-o FILE`, `--record FILE`), as the draining thread sees it.
pub struct EventLog {
    /// Records not yet handed over; `None` between handing a batch over and the next record.
    batch: Option<Vec<u8>>,
    /// Full batches to the writer; `None` once the writer has stopped.
    to_writer: Option<SyncSender<Vec<u8>>>,
    /// Emptied batches back from the writer.
    recycled: Receiver<Vec<u8>>,
    writer: JoinHandle<Result<LogFile>>,
}

impl EventLog {
    /// Creates (or truncates) the file at `path` and starts the writer thread, which turns
    /// the entries into the file's contents with `format`.
    pub fn create(path: &Path, mut format: Box<dyn LogFormat>) -> Result<Self> {
        let file = File::create(path)
            .with_context(|| format!("creating the event log {}", path.display()))?;
        let mut log = LogFile {
            file,
            path: path.to_owned(),
            pending: Vec::with_capacity(WRITE_BYTES + BATCH_BYTES),
        };
        format
            .start(&mut log.pending)
            .with_context(|| format!("writing {}", path.display()))?;
        let (to_writer, batches) = sync_channel(BATCHES);
        let (recycle, recycled) = sync_channel(BATCHES);
        for _ in 0..BATCHES {
            recycle
                .send(Vec::with_capacity(BATCH_BYTES))
                .expect("the channel holds every batch");
        }
        let writer = std::thread::Builder::new()
            .name("sandtrace-log".to_owned())
            .spawn(move || write_batches(log, &batches, &recycle, format.as_mut()))
            .context("starting the event log's writer thread")?;
        Ok(Self {
            batch: None,
            to_writer: Some(to_writer),
            recycled,
            writer,
        })
    }

    /// Queues one ring-buffer record (one that decodes) for the log. Waits for the writer
    /// when every batch is in use.
    pub fn append(&mut self, record: &[u8]) {
        self.queue(RECORD, record);
    }

    /// Queues a query of the session's resolver, as its `dns` line (serialized by serde from
    /// the schema: these lines are few).
    pub fn append_dns(&mut self, line: &DnsLine) {
        self.append_line(&Line::Dns(line.clone()));
    }

    fn append_line(&mut self, line: &Line) {
        let mut text = serde_json::to_vec(line).expect("a line serializes");
        text.push(b'\n');
        self.queue(LINE, &text);
    }

    fn queue(&mut self, kind: u8, entry: &[u8]) {
        if self.to_writer.is_none() {
            // The writer has stopped (a write error, which `finish` reports).
            return;
        }
        let needed = HEADER_BYTES + entry.len();
        if self
            .batch
            .as_ref()
            .is_some_and(|b| b.len() + needed > b.capacity())
        {
            self.hand_over();
        }
        if self.batch.is_none() {
            // Fails only when the writer has stopped.
            self.batch = self.recycled.recv().ok();
        }
        if let Some(batch) = &mut self.batch {
            batch.push(kind);
            batch.extend_from_slice(&entry.len().to_ne_bytes());
            batch.extend_from_slice(entry);
        }
    }

    /// Hands the records queued so far to the writer: the ring buffer is empty for now, and
    /// they should not wait for more.
    pub fn hand_over(&mut self) {
        if let Some(batch) = self.batch.take_if(|b| !b.is_empty())
            && let Some(to_writer) = &self.to_writer
            && to_writer.send(batch).is_err()
        {
            // The writer has stopped; `finish` reports why.
            self.to_writer = None;
        }
    }

    /// Writes every record appended, then the summary as the last line (serialized once, by
    /// serde, from the schema), and flushes the file to disk.
    pub fn finish(mut self, summary: &Summary) -> Result<()> {
        self.append_line(&Line::Summary(SummaryLine::from(summary)));
        self.hand_over();
        // The writer's loop ends once it has written every batch sent.
        drop(self.to_writer.take());
        let mut log = self
            .writer
            .join()
            .map_err(|_| anyhow!("the event log's writer thread panicked"))??;
        log.finish()
    }
}

/// The writer thread: turns the entries of each batch into the file's contents, returning
/// the batch. Output reaches the file once no batch is waiting (or a chunk is full), so the
/// log follows a slow session closely and a busy one is written in large chunks. Stops at the
/// first error; the draining thread then drops what it would have sent.
fn write_batches(
    mut log: LogFile,
    batches: &Receiver<Vec<u8>>,
    recycle: &SyncSender<Vec<u8>>,
    format: &mut dyn LogFormat,
) -> Result<LogFile> {
    let mut next = batches.recv().ok();
    while let Some(mut batch) = next {
        if let Err(e) = write_batch(&mut log, format, &batch) {
            // Keep what was complete before the error: the log ends where it struck.
            let _ = log.write_pending();
            return Err(e);
        }
        batch.clear();
        // The draining thread may be gone already: after its last batch.
        let _ = recycle.send(batch);
        next = match batches.try_recv() {
            Ok(batch) => Some(batch),
            Err(TryRecvError::Empty) => {
                log.write_pending()?;
                batches.recv().ok()
            }
            Err(TryRecvError::Disconnected) => None,
        };
    }
    log.write_pending()?;
    Ok(log)
}

fn write_batch(log: &mut LogFile, format: &mut dyn LogFormat, batch: &[u8]) -> Result<()> {
    format.before_batch(&mut log.pending);
    let mut rest = batch;
    while let Some((&kind, after)) = rest.split_first()
        && let Some((length, after)) = after.split_first_chunk::<{ HEADER_BYTES - 1 }>()
    {
        let (entry, after) = after
            .split_at_checked(usize::from_ne_bytes(*length))
            .ok_or_else(|| anyhow!("an event batch ends inside a record"))?;
        rest = after;
        if kind == LINE {
            format.line(&mut log.pending, entry);
        } else {
            format
                .record(&mut log.pending, entry)
                .with_context(|| format!("writing {}", log.path.display()))?;
        }
        if log.pending.len() >= WRITE_BYTES {
            log.write_pending()?;
        }
    }
    Ok(())
}

/// The file and the output not yet written to it.
struct LogFile {
    file: File,
    path: PathBuf,
    pending: Vec<u8>,
}

impl LogFile {
    fn write_pending(&mut self) -> Result<()> {
        self.file
            .write_all(&self.pending)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is left and flushes the file to disk.
    fn finish(&mut self) -> Result<()> {
        self.write_pending()?;
        self.file
            .sync_data()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use sandtrace_common::event::{EventHeader, EventKind, SyscallEvent};

    use super::*;
    use crate::{
        events::Clock,
        output::{
            Labels,
            jsonl::JsonlFormat,
            summary::{Ending, RunAs, RunResult, Tally},
        },
    };

    fn jsonl() -> Box<dyn LogFormat> {
        Box::new(JsonlFormat::new(Clock::new(), Labels::default()))
    }

    /// A `getppid` record numbered `n` (in its first argument).
    pub(crate) fn record(n: u64) -> Vec<u8> {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"perl");
        let event = SyscallEvent {
            header: EventHeader {
                kind: EventKind::Syscall as u32,
                pid: 7,
                tgid: 7,
                _pad: 0,
                ts_ns: n * 1_000,
                comm,
            },
            nr: 110,
            flags: 0,
            args: [n, 0, 0, 0, 0, 0],
            ret: 1,
            duration_ns: 500,
        };
        // SAFETY: a plain `repr(C)` struct read as its bytes.
        unsafe {
            std::slice::from_raw_parts((&raw const event).cast::<u8>(), size_of::<SyscallEvent>())
        }
        .to_vec()
    }

    /// The dns line written after record `n`.
    pub(crate) fn dns_line(n: u64) -> DnsLine {
        DnsLine {
            timestamp: "2026-12-02T06:21:28.123456Z".to_owned(),
            transport: "udp".to_owned(),
            client: "127.0.0.1:40000".to_owned(),
            server: None,
            name: format!("n{n}.evil.test"),
            query_type: "A".to_owned(),
            action: "deny".to_owned(),
            response: "NXDOMAIN".to_owned(),
            answers: vec![],
            ttl: None,
            rule: None,
            reason: "no allow_hosts entry covers this name".to_owned(),
        }
    }

    pub(crate) fn summary() -> Summary {
        Tally::default().finish(
            &[],
            0,
            0,
            RunResult {
                duration: Duration::from_millis(5),
                exit_code: 0,
                signal: None,
                ending: Ending::Exited,
                mode: "trace-only",
                unenforced: &[],
                approximated: &[],
                run_as: RunAs::default(),
                removed_environment: &[],
            },
        )
    }

    #[test]
    fn writes_every_record_in_order_then_the_summary() {
        let dir = std::env::temp_dir().join(format!("sandtrace-jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut log = EventLog::create(&path, jsonl()).unwrap();
        // Several times the batches in circulation, handed over full and partial, with a
        // dns line after every 100th record.
        let count = 4 * BATCHES * BATCH_BYTES / record(0).len();
        for n in 0..count as u64 {
            log.append(&record(n));
            if n % 100 == 99 {
                log.append_dns(&dns_line(n));
            }
            if n % 1000 == 999 {
                log.hand_over();
            }
        }
        log.finish(&summary()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let dns_lines = count / 100;
        assert_eq!(
            lines.len(),
            count + dns_lines + 1,
            "every record, every dns line and the summary"
        );
        let mut records = 0;
        for (i, line) in lines[..count + dns_lines].iter().enumerate() {
            if records % 100 == 0 && records > 0 && line["event_type"] == "dns" {
                let text = serde_json::to_string(line).unwrap();
                assert_eq!(
                    Line::parse(&text).unwrap(),
                    Some(Line::Dns(dns_line(records - 1))),
                    "line {i}"
                );
                continue;
            }
            assert_eq!(line["event_type"], "syscall", "line {i}");
            assert_eq!(
                line["args"]["raw"][0], records,
                "line {i} is record {records}"
            );
            records += 1;
        }
        assert_eq!(records, count as u64);
        assert_eq!(lines[count + dns_lines]["event_type"], "summary");
    }

    #[test]
    fn handed_over_records_reach_the_file_without_waiting_for_more() {
        let dir = std::env::temp_dir().join(format!("sandtrace-jsonl-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("events.jsonl");
        let mut log = EventLog::create(&path, jsonl()).unwrap();
        for n in 0..3 {
            log.append(&record(n));
        }
        log.hand_over();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let lines = loop {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            if lines == 3 || std::time::Instant::now() > deadline {
                break lines;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        log.finish(&summary()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(lines, 3, "lines in the file before the session ends");
    }

    #[test]
    fn a_write_error_is_reported_at_the_end() {
        // Every write to /dev/full fails with ENOSPC.
        let mut log = EventLog::create(Path::new("/dev/full"), jsonl()).expect("/dev/full opens");
        for n in 0..(2 * BATCHES * BATCH_BYTES / record(0).len()) as u64 {
            log.append(&record(n));
        }
        let error = log
            .finish(&summary())
            .expect_err("writing to /dev/full fails");
        assert_eq!(
            format!("{error:#}"),
            "writing /dev/full: No space left on device (os error 28)"
        );
    }
}
