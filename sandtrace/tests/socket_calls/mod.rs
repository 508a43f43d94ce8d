//! A python3 program that makes one socket call of every kind the `socket` lines record, all
//! between sockets of its own (nothing outside the session takes part), and the checks that
//! the event log recorded each with its decoded address and result. Shared by the host test
//! (`tests/sockets.rs`) and the VM test (`tests/vm_sockets.rs`).
#![allow(dead_code)] // each test crate uses a different subset

use std::{path::Path, process::Output};

use serde_json::Value;

use crate::common::{Scratch, describe, find_program, of_type, read_jsonl, run};

/// argv: the scratch directory (it writes `calls.json` there: its fds and ports), then
/// optionally `HOST:PORT` to connect to, recording the errno (a destination the policy
/// denies).
const PROGRAM: &str = r#"
import errno, json, os, socket, sys
d = sys.argv[1]
out = {}
# TCP: bind, listen, connect, accept.
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(4)
cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
cli.connect(srv.getsockname())
conn, peer = srv.accept()
out["tcp"] = {"listener": srv.fileno(), "port": srv.getsockname()[1], "client": cli.fileno(),
              "client_port": peer[1], "accepted": conn.fileno()}
# A bound TCP socket that does not listen: connecting to it is refused.
closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
closed.bind(("127.0.0.1", 0))
refused = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
out["refused"] = {"fd": refused.fileno(), "port": closed.getsockname()[1],
                  "errno": refused.connect_ex(closed.getsockname())}
# UDP without connect: sendto, sendmsg with msg_name, and an IPv4-mapped IPv6 destination.
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
port = rx.getsockname()[1]
to = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
to.sendto(b"a", ("127.0.0.1", port))
msg = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
msg.sendmsg([b"b"], [], 0, ("127.0.0.1", port))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.sendto(b"c", ("::ffff:127.0.0.1", port))
out["udp"] = {"port": port, "sendto": to.fileno(), "sendmsg": msg.fileno(), "mapped": v6.fileno()}
# UNIX: a pathname socket and an abstract one, each bound, listening and connected to.
path = os.path.join(d, "s.sock")
name = "sandtrace-test-%d" % os.getpid()
for kind, addr in (("path", path), ("abstract", "\0" + name)):
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(addr)
    ls.listen(1)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(addr)
    a, _ = ls.accept()
    out[kind] = {"listener": ls.fileno(), "client": c.fileno(), "accepted": a.fileno()}
    globals()["keep_" + kind] = (ls, c, a)
out["unix"] = {"path": path, "name": name}
# netlink: a NETLINK_ROUTE socket bound (the kernel picks the port id).
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
nl.bind((0, 0))
out["netlink"] = {"fd": nl.fileno()}
if len(sys.argv) > 2:
    host, p = sys.argv[2].rsplit(":", 1)
    denied = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    out["denied"] = {"fd": denied.fileno(), "errno": denied.connect_ex((host, int(p)))}
with open(os.path.join(d, "calls.json"), "w") as f:
    json.dump(out, f)
"#;

/// What one run of the program did, and the log of its session.
pub struct Calls {
    /// The program's own account (`calls.json`).
    pub made: Value,
    pub events: Vec<Value>,
    pub out: Output,
}

/// Runs the program under `sandtrace run FLAGS -o LOG -- python3 ...` in `scratch` (`{dir}` in
/// `flags` is the scratch directory), with `extra` as its further argument; `None` when there
/// is no python3.
pub fn run_in_session(scratch: &Scratch, flags: &[&str], extra: Option<&str>) -> Option<Calls> {
    let python = find_program("python3")?;
    let log = scratch.path("events.jsonl");
    let dir = scratch.0.to_str().unwrap();
    let mut args = vec!["run", "-o", log.to_str().unwrap()];
    args.extend_from_slice(flags);
    args.extend(["--", python.to_str().unwrap(), "-c", PROGRAM, dir]);
    args.extend(extra);
    let out = run(&args);
    assert!(out.status.success(), "{}", describe(&out));
    let made = std::fs::read_to_string(scratch.path("calls.json"))
        .unwrap_or_else(|e| panic!("calls.json: {e}\n{}", describe(&out)));
    Some(Calls {
        made: serde_json::from_str(&made).unwrap(),
        events: read_jsonl(&log),
        out,
    })
}

impl Calls {
    /// The `socket` line of `operation` on `fd` that has every field of `want`.
    pub fn line(&self, operation: &str, fd: &Value, want: &[(&str, Value)]) -> &Value {
        let lines = of_type(&self.events, "socket");
        lines
            .iter()
            .find(|l| {
                l["operation"] == operation
                    && l["fd"] == *fd
                    && want.iter().all(|(k, v)| pointer(l, k) == Some(v))
            })
            .unwrap_or_else(|| {
                let of_fd: Vec<_> = lines.iter().filter(|l| l["fd"] == *fd).collect();
                panic!("no {operation} line on fd {fd} with {want:?} among {of_fd:#?}")
            })
    }

    /// Checks a line of every call the program made.
    pub fn check_every_call(&self) {
        let m = &self.made;
        let ok = ("success", Value::from(true));
        let tcp = &m["tcp"];
        let port = &tcp["port"];
        let v4 = |port: &Value| {
            [
                ("family", Value::from("ipv4")),
                ("address", Value::from("127.0.0.1")),
                ("port", port.clone()),
            ]
        };
        let tcp_socket = [
            ("socket_type", Value::from("stream")),
            ("protocol", Value::from("tcp")),
        ];
        self.line(
            "socket",
            &tcp["listener"],
            &[
                ("family", "ipv4".into()),
                tcp_socket[0].clone(),
                tcp_socket[1].clone(),
                ("return_value", tcp["listener"].clone()),
            ],
        );
        self.line("bind", &tcp["listener"], &v4(&0.into()));
        self.line(
            "listen",
            &tcp["listener"],
            &[
                ok.clone(),
                ("local/address", "127.0.0.1".into()),
                ("local/port", 0.into()),
                tcp_socket[1].clone(),
            ],
        );
        let mut connect = v4(port).to_vec();
        connect.extend(tcp_socket.clone());
        connect.extend([ok.clone(), ("return_value", 0.into())]);
        self.line("connect", &tcp["client"], &connect);
        let mut accept = v4(&tcp["client_port"]).to_vec();
        accept.extend([
            ("return_value", tcp["accepted"].clone()),
            ("local/port", 0.into()),
            tcp_socket[1].clone(),
        ]);
        self.line("accept", &tcp["listener"], &accept);

        let refused = &m["refused"];
        assert_eq!(refused["errno"], 111, "{refused}");
        let mut failed = v4(&refused["port"]).to_vec();
        failed.extend([
            ("success", false.into()),
            ("return_value", (-111).into()),
            ("errno", "ECONNREFUSED".into()),
        ]);
        self.line("connect", &refused["fd"], &failed);

        let udp = &m["udp"];
        let mut send = v4(&udp["port"]).to_vec();
        send.extend([
            ok.clone(),
            ("socket_type", "dgram".into()),
            ("protocol", "udp".into()),
        ]);
        self.line("send", &udp["sendto"], &send);
        self.line("send", &udp["sendmsg"], &send);
        self.line(
            "send",
            &udp["mapped"],
            &[
                ok.clone(),
                ("family", "ipv6".into()),
                ("address", "::ffff:127.0.0.1".into()),
                ("port", udp["port"].clone()),
                ("protocol", "udp".into()),
            ],
        );

        let unix = &m["unix"];
        for (kind, key, value) in [
            ("path", "path", &unix["path"]),
            ("abstract", "abstract", &unix["name"]),
        ] {
            let calls = &m[kind];
            let at = [
                ok.clone(),
                ("family", "unix".into()),
                ("socket_type", "stream".into()),
                (key, value.clone()),
            ];
            self.line("bind", &calls["listener"], &at);
            self.line("connect", &calls["client"], &at);
            let local = format!("local/{key}");
            self.line(
                "listen",
                &calls["listener"],
                &[ok.clone(), (local.as_str(), value.clone())],
            );
            // The connecting socket was not bound: its peer address has no name.
            self.line(
                "accept",
                &calls["listener"],
                &[
                    ("return_value", calls["accepted"].clone()),
                    ("unnamed", true.into()),
                    (local.as_str(), value.clone()),
                ],
            );
        }

        let netlink = &m["netlink"]["fd"];
        self.line(
            "socket",
            netlink,
            &[
                ("family", "netlink".into()),
                ("socket_type", "raw".into()),
                ("netlink_family", "route".into()),
            ],
        );
        self.line(
            "bind",
            netlink,
            &[
                ok,
                ("family", "netlink".into()),
                ("netlink_family", "route".into()),
                ("netlink_pid", 0.into()),
                ("netlink_groups", 0.into()),
            ],
        );
    }
}

/// The field at a `/`-separated path.
fn pointer<'v>(line: &'v Value, path: &str) -> Option<&'v Value> {
    line.pointer(&format!("/{path}"))
}

/// The policy for a session that lets the program run: it reads and executes anything, and
/// writes (its UNIX socket, `calls.json`) in `dir` only; `network` is the `[network]` table.
pub fn policy(dir: &Path, network: &str) -> String {
    format!(
        "[filesystem]\nallow_read = [\"/\"]\nallow_exec = [\"/\"]\nallow_write = [\"{}/**\"]\n\
         [network]\n{network}\n",
        dir.display()
    )
}
