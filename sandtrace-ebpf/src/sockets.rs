//! The record of socket calls: `socket`, `connect`, `sendto`/`sendmsg` with a destination,
//! `bind`, `listen`, `accept`/`accept4` of the session's tasks, in every mode, each sent as
//! one `SocketEvent` from `sys_exit` with its address and result.
//!
//! A record, not enforcement: the cgroup socket programs and BPF LSM decide (and report their
//! decisions as network events). The address is read from the caller's memory when the call
//! returns: the kernel has paged it in by then (`bpf_probe_read_user` cannot fault pages in,
//! so at entry it could miss an address never touched before), and the registers still hold
//! the arguments. Another thread of the caller may rewrite that memory while the call runs
//! (TOCTOU): the record shows what the caller's memory held, which is what the kernel used
//! unless the caller raced itself. io_uring's socket operations pass no syscall tracepoint and
//! are not recorded (the socket programs still decide their connects and binds).

use aya_ebpf::helpers::generated::bpf_probe_read_user;
use sandtrace_common::{
    event::EventKind,
    network::{SOCKADDR_CAP, SocketEvent, SocketOp},
};

use crate::{emit, kernel};

const NR_SOCKET: u32 = 41;
const NR_CONNECT: u32 = 42;
const NR_ACCEPT: u32 = 43;
const NR_SENDTO: u32 = 44;
const NR_SENDMSG: u32 = 46;
const NR_BIND: u32 = 49;
const NR_LISTEN: u32 = 50;
const NR_ACCEPT4: u32 = 288;

/// `struct user_msghdr`: `msg_name` at 0, `msg_namelen` at 8.
const MSGHDR_NAMELEN: u64 = 8;

/// Whether `nr` is a call this module records: the only test other syscalls pay.
#[inline(always)]
pub fn is_recorded(nr: u32) -> bool {
    matches!(
        nr,
        NR_SOCKET
            | NR_CONNECT
            | NR_ACCEPT
            | NR_SENDTO
            | NR_SENDMSG
            | NR_BIND
            | NR_LISTEN
            | NR_ACCEPT4
    )
}

/// At `sys_exit` of a session task's call `nr` (one [`is_recorded`] accepts), with the call's
/// arguments and return value: sends its record.
#[inline(always)]
pub fn record(nr: u32, args: [u64; 6], ret: i64) {
    // The operation, and where the address is in the caller's memory and how long it is.
    let (op, addr, len) = match nr {
        NR_SOCKET => (SocketOp::Socket, 0, 0),
        NR_CONNECT => (SocketOp::Connect, args[1], args[2] as u32),
        NR_BIND => (SocketOp::Bind, args[1], args[2] as u32),
        NR_LISTEN => (SocketOp::Listen, 0, 0),
        // Without a destination it is a send on a connected socket: no new destination.
        NR_SENDTO if args[4] == 0 => return,
        NR_SENDTO => (SocketOp::Send, args[4], args[5] as u32),
        NR_SENDMSG => {
            let name: u64 = kernel::user(args[1]).unwrap_or(0);
            if name == 0 {
                return;
            }
            let len: u32 = kernel::user(args[1] + MSGHDR_NAMELEN).unwrap_or(0);
            (SocketOp::Send, name, len)
        }
        // The kernel wrote the peer's address and its length back (a failed call wrote
        // nothing).
        NR_ACCEPT | NR_ACCEPT4 if args[1] == 0 || ret < 0 => (SocketOp::Accept, 0, 0),
        NR_ACCEPT | NR_ACCEPT4 => (
            SocketOp::Accept,
            args[1],
            kernel::user(args[2]).unwrap_or(0),
        ),
        _ => return,
    };
    let socket = op == SocketOp::Socket;
    emit::send(|e: *mut SocketEvent| unsafe {
        (*e).header = emit::header(EventKind::Socket);
        (*e).op = op as u16;
        (*e).addr_len = len;
        (*e).fd = if socket { -1 } else { args[0] as i32 };
        (*e).ret = ret;
        (*e).domain = if socket { args[0] as u32 } else { 0 };
        (*e).sock_type = if socket { args[1] as u32 } else { 0 };
        (*e).protocol = if socket { args[2] as u32 } else { 0 };
        let n = if len > SOCKADDR_CAP as u32 {
            SOCKADDR_CAP as u32
        } else {
            len
        };
        let dst = core::ptr::addr_of_mut!((*e).addr).cast::<u8>();
        (*e).addr_copied = 0;
        if addr != 0 && n > 0 && bpf_probe_read_user(dst.cast(), n, addr as *const _) == 0 {
            (*e).addr_copied = n as u16;
        }
    });
}
