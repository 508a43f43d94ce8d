//! The session's resolver at work: a thread of its own with a current-thread tokio runtime,
//! so that neither the session's event loop nor the resolver ever waits for the other.
//! Answers UDP and TCP queries on the sockets [`BoundResolver`] bound, and sends one
//! [`DnsQuery`] per query to the session's event loop.
//!
//! Names no `allow_hosts` entry covers get NXDOMAIN, not REFUSED: NXDOMAIN is a definitive
//! answer, which stub resolvers neither retry on the next server of `resolv.conf` nor treat
//! as a failure, and which ends a search-domain walk at once; and no other server is asked,
//! so nothing of the name (`<secret>.evil.test`) leaves the machine.

use std::{
    cell::RefCell,
    net::{IpAddr, SocketAddr},
    rc::Rc,
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result};
use hickory_proto::{
    op::Query,
    rr::{Name, RecordType},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream, UdpSocket},
    sync::{Semaphore, mpsc, oneshot},
    task::{LocalSet, spawn_local},
};

use super::{
    AddressAdmission, ResolvedNames,
    admission::{Admissions, expiry_after},
    bind::BoundResolver,
    event::{Decision, DnsQuery, Response, Transport},
    hosts_file,
    message::{Question, display_name, encode, format_error, reply, type_name, udp_limit},
    upstream::{Answer, Upstream},
};
use crate::policy::hosts::HostRule;

/// How long a TCP connection may stay silent between queries (RFC 7766 asks servers to close
/// idle connections; a few seconds is what resolvers use).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The largest DNS message (TCP frames carry a 16-bit length).
const MAX_MESSAGE: usize = u16::MAX as usize;
/// Most queries answered at once, and most TCP connections open at once. Beyond them the
/// resolver reads no more until one is done: the kernel drops what overflows the sockets'
/// buffers, clients retry, and a command that floods its resolver cannot make it allocate
/// without bound.
const MAX_IN_FLIGHT: usize = 256;
const MAX_CONNECTIONS: usize = 64;

const NOT_COVERED: &str = "no allow_hosts entry covers this name";
const NOT_A_HOST_NAME: &str =
    "not a host name: a label holds a character other than a letter, a digit, `-` or `_`";
const TABLE_FULL: &str = "the session's address table is full";
const NAMES_FULL: &str = "the session's name table is full";

/// The resolver running on its thread. Dropping it (or [`RunningResolver::stop`]) stops the
/// thread; the events sent until then can still be taken.
pub struct RunningResolver {
    events: mpsc::UnboundedReceiver<DnsQuery>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningResolver {
    /// The next query answered; `None` once the resolver has stopped and every event was taken.
    pub async fn next(&mut self) -> Option<DnsQuery> {
        self.events.recv().await
    }

    /// A query answered and not taken yet, without waiting.
    pub fn try_next(&mut self) -> Option<DnsQuery> {
        self.events.try_recv().ok()
    }

    /// Stops answering and waits for the thread to end.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only when the thread has ended already.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningResolver {
    fn drop(&mut self) {
        self.stop();
    }
}

impl BoundResolver {
    /// Starts answering with the host's resolver configuration: names covered by `rules`
    /// (index = entry number) are resolved, their addresses admitted to `table` before each
    /// answer and recorded in `names`. The addresses `/etc/hosts` gives covered names are
    /// admitted for good before this returns.
    pub fn start(
        self,
        rules: Vec<HostRule>,
        table: Box<dyn AddressAdmission>,
        names: ResolvedNames,
    ) -> Result<RunningResolver> {
        let hosts = match std::fs::read_to_string(hosts_file::HOSTS_FILE) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(e).with_context(|| format!("reading {}", hosts_file::HOSTS_FILE));
            }
        };
        self.start_with(rules, table, names, Upstream::system, &hosts)
    }

    /// [`Self::start`] with another upstream and hosts file (tests).
    fn start_with(
        self,
        rules: Vec<HostRule>,
        table: Box<dyn AddressAdmission>,
        names: ResolvedNames,
        upstream: impl FnOnce() -> Result<Upstream>,
        hosts: &str,
    ) -> Result<RunningResolver> {
        let mut admissions = Admissions::new(table);
        for (addr, name) in hosts_file::entries(hosts) {
            let covering = covering_rules(&rules, &name);
            if covering.is_empty() {
                continue;
            }
            let id = names
                .id(&name)
                .ok_or_else(|| anyhow::anyhow!("{NAMES_FULL} with the names of /etc/hosts"))?;
            admissions
                .admit(&[addr], &covering, u64::MAX, id)
                .map_err(|_| anyhow::anyhow!("{TABLE_FULL} with the names of /etc/hosts"))?;
            names.handed_out(addr, id);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .context("starting the session resolver's runtime")?;
        let (sockets, upstream) = {
            // Registering sockets and building the resolver need the runtime.
            let _runtime = runtime.enter();
            (self.into_tokio()?, upstream()?)
        };
        let (events_tx, events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel();
        let handler = Handler {
            rules,
            admissions: RefCell::new(admissions),
            names,
            upstream,
            events: events_tx,
        };
        let thread = std::thread::Builder::new()
            .name("sandtrace-dns".to_owned())
            .spawn(move || {
                LocalSet::new().block_on(&runtime, serve(Rc::new(handler), sockets, stopped));
            })
            .context("starting the session resolver's thread")?;
        Ok(RunningResolver {
            events,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    fn into_tokio(self) -> Result<Vec<(UdpSocket, TcpListener)>> {
        let mut sockets = Vec::new();
        for (udp, tcp) in std::iter::once(self.v4).chain(self.v6) {
            udp.set_nonblocking(true)?;
            tcp.set_nonblocking(true)?;
            sockets.push((UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?));
        }
        Ok(sockets)
    }
}

/// Whether every label of `name` is made of what host names are (letters, digits, `-`, `_`).
/// The entries are matched against the name's text, where a label holding a `.` would read
/// as two labels: `a\.good.test` is one label under `test`, not a name below `good.test`.
fn is_host_name(name: &Name) -> bool {
    name.iter().all(|label| {
        !label.is_empty()
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// The indices of the entries that cover `name`.
fn covering_rules(rules: &[HostRule], name: &str) -> Vec<u32> {
    (0u32..)
        .zip(rules)
        .filter(|(_, rule)| rule.covers_name(name))
        .map(|(index, _)| index)
        .collect()
}

async fn serve(
    handler: Rc<Handler>,
    sockets: Vec<(UdpSocket, TcpListener)>,
    stop: oneshot::Receiver<()>,
) {
    for (udp, tcp) in sockets {
        spawn_local(serve_udp(handler.clone(), Rc::new(udp)));
        spawn_local(serve_tcp(handler.clone(), tcp));
    }
    // Sent, or the `RunningResolver` is gone: either way the thread ends, and with it every
    // task of the runtime.
    let _ = stop.await;
}

async fn serve_udp(handler: Rc<Handler>, socket: Rc<UdpSocket>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut buffer = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let Ok((len, client)) = socket.recv_from(&mut buffer).await else {
            continue;
        };
        let query = buffer[..len].to_vec();
        let (handler, socket) = (handler.clone(), socket.clone());
        spawn_local(async move {
            if let Some(answer) = handler.answer(&query, Transport::Udp, client).await {
                // A client that is gone is no concern of the resolver's.
                let _ = socket.send_to(&answer, client).await;
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(handler: Rc<Handler>, listener: TcpListener) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = open.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, client)) => {
                let handler = handler.clone();
                spawn_local(async move {
                    serve_connection(handler, stream, client).await;
                    drop(permit);
                });
            }
            // Out of descriptors, most likely: wait for connections to close.
            Err(_) => tokio::time::sleep(TCP_IDLE / 10).await,
        }
    }
}

/// Queries one after the other on one connection, each framed by its 2-byte length, until
/// the client closes it or stays silent for [`TCP_IDLE`].
async fn serve_connection(handler: Rc<Handler>, mut stream: TcpStream, client: SocketAddr) {
    loop {
        let mut length = [0u8; 2];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut length)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if !matches!(
            tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(answer) = handler.answer(&query, Transport::Tcp, client).await else {
            return;
        };
        let mut framed = Vec::with_capacity(2 + answer.len());
        framed.extend_from_slice(&(answer.len() as u16).to_be_bytes());
        framed.extend_from_slice(&answer);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// What answering needs; shared by the tasks of the resolver's one thread.
struct Handler {
    rules: Vec<HostRule>,
    admissions: RefCell<Admissions>,
    names: ResolvedNames,
    upstream: Upstream,
    events: mpsc::UnboundedSender<DnsQuery>,
}

impl Handler {
    /// The answer to one query message (none for a message too broken to answer), after the
    /// addresses in it are admitted; reports the query as an event.
    async fn answer(
        &self,
        bytes: &[u8],
        transport: Transport,
        client: SocketAddr,
    ) -> Option<Vec<u8>> {
        let mut event = DnsQuery {
            time: SystemTime::now(),
            transport,
            client,
            name: String::new(),
            query_type: String::new(),
            decision: Decision::Deny,
            response: Response::FormErr,
            answers: Vec::new(),
            ttl: None,
            rule: None,
            reason: String::new(),
        };
        let limit = |request| match transport {
            Transport::Udp => udp_limit(request),
            Transport::Tcp => MAX_MESSAGE,
        };
        let answer = match Question::read(bytes) {
            Question::Malformed { id, why } => {
                event.reason = why.to_owned();
                id.and_then(|id| encode(&format_error(id), limit(None)))
            }
            Question::Unanswered {
                request,
                query,
                why,
            } => {
                event.name = display_name(query.name());
                event.query_type = type_name(query.query_type());
                event.response = Response::Refused;
                event.reason = why.to_owned();
                let message = reply(&request, Some(&query), Response::Refused, &[], 0);
                encode(&message, limit(Some(&request)))
            }
            Question::Lookup { request, query } => {
                self.lookup(&query, &mut event).await;
                let message = reply(
                    &request,
                    Some(&query),
                    event.response,
                    &event.answers,
                    event.ttl.unwrap_or(0),
                );
                encode(&message, limit(Some(&request)))
            }
        };
        event.time = SystemTime::now();
        // The session may have stopped listening; the answer stands either way.
        let _ = self.events.send(event);
        answer
    }

    /// Decides and, for a covered name, resolves one question into `event`.
    async fn lookup(&self, query: &Query, event: &mut DnsQuery) {
        let name = display_name(query.name());
        let record_type = query.query_type();
        event.name.clone_from(&name);
        event.query_type = type_name(record_type);
        if !is_host_name(query.name()) {
            event.response = Response::NxDomain;
            event.reason = NOT_A_HOST_NAME.to_owned();
            return;
        }
        let covering = covering_rules(&self.rules, &name);
        let Some(&first) = covering.first() else {
            event.response = Response::NxDomain;
            event.reason = NOT_COVERED.to_owned();
            return;
        };
        event.decision = Decision::Allow;
        event.rule = Some(first as usize);
        event.response = Response::NoError;
        if !matches!(record_type, RecordType::A | RecordType::AAAA) {
            event.reason =
                "only addresses (A, AAAA) are resolved: no records of this type".to_owned();
            return;
        }
        match self.upstream.addresses(query.name(), record_type).await {
            Answer::Addresses { addrs, ttl } => match self.admit(&name, &addrs, &covering, ttl) {
                Ok(()) => {
                    event.answers = addrs;
                    event.ttl = Some(ttl);
                    event.reason = "covered by an allow_hosts entry".to_owned();
                }
                Err(full) => {
                    event.response = Response::ServFail;
                    event.reason = full.to_owned();
                }
            },
            Answer::NoData => event.reason = "the name has no records of this type".to_owned(),
            Answer::NxDomain => {
                event.response = Response::NxDomain;
                event.reason =
                    "the name does not exist (the upstream resolver said NXDOMAIN)".to_owned();
            }
            Answer::Failed(why) => {
                event.response = Response::ServFail;
                event.reason = format!("the upstream resolver failed: {why}");
            }
        }
    }

    /// Admits `addrs` of `name` for the entries `rules` for `ttl` seconds and the grace; fails
    /// with what is full.
    fn admit(
        &self,
        name: &str,
        addrs: &[IpAddr],
        rules: &[u32],
        ttl: u32,
    ) -> Result<(), &'static str> {
        let id = self
            .names
            .id(&name.to_ascii_lowercase())
            .ok_or(NAMES_FULL)?;
        self.admissions
            .borrow_mut()
            .admit(addrs, rules, expiry_after(ttl), id)
            .map_err(|_| TABLE_FULL)?;
        for &addr in addrs {
            self.names.handed_out(addr, id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
