//! Network enforcement: the `[network]` rules compiled for the kernel programs
//! (`sandtrace-ebpf/src/network.rs`), and those programs attached to the session's cgroup.
//!
//! With `allow = true` nothing is attached. Otherwise every IPv4/IPv6 socket of the session
//! passes the cgroup programs, which allow exactly what `allow_connect` and `allow_bind` cover
//! (nothing, when they are empty), and, with `allow_hosts`, the addresses the session's
//! resolver hands out for the names those entries cover ([`host_addresses`]); DNS then goes
//! to that resolver whatever address it is sent to ([`DNS_PROGRAMS`] give the replies their
//! original source). They work on kernels without BPF LSM. Socket families that
//! reach the network past those programs (packet, vsock, ...) are refused by the BPF LSM
//! `socket_create` program where BPF LSM is available, and in every session by the seccomp
//! baseline (`plan/seccomp_baseline.rs`, with io_uring denied without BPF LSM). Abstract UNIX
//! sockets are scoped to the session with Landlock ([`crate::landlock`]).

pub mod host_addresses;

use std::{net::IpAddr, os::fd::BorrowedFd};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::Array,
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSock, CgroupSockAddr, Lsm},
};
use sandtrace_common::network::{
    HostRulePorts, NET_LIST_BIND, NET_LIST_CONNECT, NET_LIST_COUNT, NET_LIST_HOSTS, NetRule,
    V4_MAPPED_WORD,
};

use crate::policy::{
    EffectivePolicy,
    network::{AddressMatch, AddressRule, prefix_mask_v4, prefix_mask_v6},
};

/// The kernel's form of the session's address rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    pub connect: Vec<NetRule>,
    pub bind: Vec<NetRule>,
    /// The ports of each `allow_hosts` entry, by its index (the `rule` of `HOST_ADDRESSES`).
    pub hosts: Vec<HostRulePorts>,
    /// The policy allows the network, but an `[[after_exec]]` regime restricts it: the
    /// programs run for the regime's tasks and let the others do anything
    /// (`FLAG_BASE_NETWORK_OPEN`); the lists are empty.
    pub base_open: bool,
}

impl NetworkRules {
    /// The rules to enforce, or `None` when the network is allowed and no regime restricts
    /// it (nothing to attach).
    pub fn for_policy(policy: &EffectivePolicy) -> Option<Self> {
        if policy.network_allowed.value {
            let restricted = policy.regimes.iter().any(|r| r.network.is_some());
            return restricted.then(|| Self {
                connect: Vec::new(),
                bind: Vec::new(),
                hosts: Vec::new(),
                base_open: true,
            });
        }
        let compile = |rules: &[crate::policy::Located<AddressRule>]| {
            rules
                .iter()
                .enumerate()
                .flat_map(|(index, rule)| kernel_rules(&rule.value, index as u16))
                .collect()
        };
        Some(Self {
            connect: compile(&policy.allow_connect),
            bind: compile(&policy.allow_bind),
            hosts: policy
                .allow_hosts
                .iter()
                .map(|rule| HostRulePorts {
                    port_lo: rule.value.ports.first,
                    port_hi: rule.value.ports.last,
                })
                .collect(),
            base_open: false,
        })
    }

    /// The kernel rules a regime keeps (`RegimeConfig::keep_rules`): bit `i` of a list for its
    /// `i`th kernel rule when the policy entry it came from is kept.
    pub fn kept_by(&self, kept: &crate::policy::resolve::KeptNetwork) -> [u64; NET_LIST_COUNT] {
        let bits = |rules: &[NetRule], entries: &[usize]| {
            rules
                .iter()
                .enumerate()
                .filter(|(_, r)| entries.contains(&usize::from(r.rule)))
                .fold(0u64, |mask, (i, _)| mask | 1 << i)
        };
        let mut keep = [0; NET_LIST_COUNT];
        keep[usize::from(NET_LIST_CONNECT)] = bits(&self.connect, &kept.connect);
        keep[usize::from(NET_LIST_BIND)] = bits(&self.bind, &kept.bind);
        keep[usize::from(NET_LIST_HOSTS)] = kept.hosts.iter().fold(0u64, |mask, &i| mask | 1 << i);
        keep
    }

    /// Whether the session's resolver runs (`allow_hosts`): DNS is redirected to it, DNS over
    /// TLS refused, and the addresses it hands out allowed (`FLAG_SESSION_DNS`).
    pub fn session_dns(&self) -> bool {
        !self.hosts.is_empty()
    }
}

/// An address in the kernel programs' IPv6 form.
pub(crate) fn words(addr: IpAddr) -> [u32; 4] {
    match addr {
        IpAddr::V4(v4) => [0, 0, V4_MAPPED_WORD, u32::from_ne_bytes(v4.octets())],
        IpAddr::V6(v6) => {
            let o = v6.octets();
            std::array::from_fn(|i| {
                u32::from_ne_bytes([o[4 * i], o[4 * i + 1], o[4 * i + 2], o[4 * i + 3]])
            })
        }
    }
}

/// The kernel rules of one policy entry (`*` is one IPv4 and one IPv6 rule).
fn kernel_rules(rule: &AddressRule, index: u16) -> Vec<NetRule> {
    let rule_for = |addr: IpAddr, prefix_len: u8| {
        let (mask, ipv4) = match addr {
            IpAddr::V4(_) => {
                let mask = std::net::Ipv4Addr::from(prefix_mask_v4(prefix_len));
                let mut m = words(IpAddr::V4(mask));
                // The ::ffff: prefix must match exactly.
                m[..3].copy_from_slice(&[u32::MAX; 3]);
                (m, 1)
            }
            IpAddr::V6(_) => (
                words(IpAddr::V6(std::net::Ipv6Addr::from(prefix_mask_v6(
                    prefix_len,
                )))),
                0,
            ),
        };
        NetRule {
            addr: words(addr),
            mask,
            port_lo: rule.ports.first,
            port_hi: rule.ports.last,
            ipv4,
            _pad: 0,
            rule: index,
        }
    };
    match rule.address {
        AddressMatch::Network { addr, prefix_len } => vec![rule_for(addr, prefix_len)],
        AddressMatch::Any => vec![
            rule_for(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            rule_for(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0),
        ],
    }
}

/// cgroup sock_addr programs and their attach types.
pub const SOCK_ADDR_PROGRAMS: &[&str] = &[
    "net_connect4",
    "net_connect6",
    "net_sendmsg4",
    "net_sendmsg6",
    "net_bind4",
    "net_bind6",
];

/// cgroup sock_addr programs that give replies from the session's resolver the address the
/// query was sent to (`sandtrace-ebpf/src/dns_redirect.rs`); only while it runs.
pub const DNS_PROGRAMS: &[&str] = &[
    "dns_recvmsg4",
    "dns_recvmsg6",
    "dns_getpeername4",
    "dns_getpeername6",
];

/// The cgroup sock program that refuses socket types the session may not create.
pub const SOCK_CREATE_PROGRAM: &str = "net_sock_create";
/// The DNS record's `cgroup_skb` programs (`sandtrace-ebpf/src/dns_capture.rs`).
pub const DNS_CAPTURE_EGRESS_PROGRAM: &str = "dns_egress";
pub const DNS_CAPTURE_INGRESS_PROGRAM: &str = "dns_ingress";
/// The cgroup skb program on the session's ingress.
pub const INGRESS_PROGRAM: &str = "net_ingress";
/// The BPF LSM `socket_create` program (enforcing sessions only).
pub const SOCKET_CREATE_LSM_PROGRAM: &str = "net_socket_create";

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("program {name} missing from the eBPF object"))
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .with_context(|| format!("{name} map missing from the eBPF object"))
}

/// Attaches the programs that record the session's DNS packets (`FLAG_DNS_CAPTURE`): sent
/// ones always; received ones only when `rules_ingress` is false, since the network rules'
/// ingress program (one per cgroup) records them itself.
pub fn attach_dns_capture(
    ebpf: &mut Ebpf,
    cgroup: BorrowedFd<'_>,
    rules_ingress: bool,
) -> Result<()> {
    let mut programs = vec![(DNS_CAPTURE_EGRESS_PROGRAM, CgroupSkbAttachType::Egress)];
    if !rules_ingress {
        programs.push((DNS_CAPTURE_INGRESS_PROGRAM, CgroupSkbAttachType::Ingress));
    }
    for (name, direction) in programs {
        let prog: &mut CgroupSkb = program(ebpf, name)?.try_into()?;
        prog.load()
            .with_context(|| format!("loading the {name} program"))?;
        prog.attach(cgroup, direction, CgroupAttachMode::Single)
            .with_context(|| {
                format!(
                    "attaching the {name} cgroup program to the session cgroup (the kernel \
                     needs CONFIG_CGROUP_BPF)"
                )
            })?;
    }
    Ok(())
}

/// Fills the rule maps, then attaches the cgroup programs to `cgroup` (the session's cgroup
/// directory; [`DNS_PROGRAMS`] only while the session's resolver runs) and, with `lsm`, the
/// BPF LSM `socket_create` program. Everything is in force when this returns.
pub fn attach(
    ebpf: &mut Ebpf,
    rules: &NetworkRules,
    cgroup: BorrowedFd<'_>,
    lsm: bool,
) -> Result<()> {
    {
        let mut counts: Array<_, u32> = Array::try_from(map_mut(ebpf, "NET_RULE_COUNTS")?)?;
        counts.set(u32::from(NET_LIST_CONNECT), rules.connect.len() as u32, 0)?;
        counts.set(u32::from(NET_LIST_BIND), rules.bind.len() as u32, 0)?;
        counts.set(u32::from(NET_LIST_HOSTS), rules.hosts.len() as u32, 0)?;
    }
    {
        let mut ports: Array<_, HostRulePorts> =
            Array::try_from(map_mut(ebpf, "HOST_RULE_PORTS")?)?;
        for (i, entry) in rules.hosts.iter().enumerate() {
            ports
                .set(i as u32, entry, 0)
                .context("filling the allow_hosts port map HOST_RULE_PORTS")?;
        }
    }
    for (name, list) in [
        ("NET_CONNECT_RULES", &rules.connect),
        ("NET_BIND_RULES", &rules.bind),
    ] {
        let mut map: Array<_, NetRule> = Array::try_from(map_mut(ebpf, name)?)?;
        for (i, rule) in list.iter().enumerate() {
            map.set(i as u32, rule, 0)
                .with_context(|| format!("filling the network rule map {name}"))?;
        }
    }
    let attached = |name: &str| {
        format!(
            "attaching the {name} cgroup program to the session cgroup (the kernel needs \
             CONFIG_CGROUP_BPF)"
        )
    };
    let dns_programs = if rules.session_dns() {
        DNS_PROGRAMS
    } else {
        &[]
    };
    for name in SOCK_ADDR_PROGRAMS.iter().chain(dns_programs) {
        let prog: &mut CgroupSockAddr = program(ebpf, name)?.try_into()?;
        prog.load()
            .with_context(|| format!("loading the {name} program"))?;
        prog.attach(cgroup, CgroupAttachMode::Single)
            .with_context(|| attached(name))?;
    }
    let name = SOCK_CREATE_PROGRAM;
    let prog: &mut CgroupSock = program(ebpf, name)?.try_into()?;
    prog.load()
        .with_context(|| format!("loading the {name} program"))?;
    prog.attach(cgroup, CgroupAttachMode::Single)
        .with_context(|| attached(name))?;
    let name = INGRESS_PROGRAM;
    let prog: &mut CgroupSkb = program(ebpf, name)?.try_into()?;
    prog.load()
        .with_context(|| format!("loading the {name} program"))?;
    prog.attach(
        cgroup,
        CgroupSkbAttachType::Ingress,
        CgroupAttachMode::Single,
    )
    .with_context(|| attached(name))?;
    if lsm {
        let btf = crate::kernel_btf::aya_btf()?;
        let name = SOCKET_CREATE_LSM_PROGRAM;
        let prog: &mut Lsm = program(ebpf, name)?.try_into()?;
        prog.load("socket_create", btf)
            .context("loading the BPF LSM program for the socket_create hook")?;
        prog.attach()
            .context("attaching the BPF LSM program to socket_create")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::network::AddressRule;

    fn matches(rule: &NetRule, addr: IpAddr, port: u16) -> bool {
        let w = words(addr);
        let ipv4 = w[0] == 0 && w[1] == 0 && w[2] == V4_MAPPED_WORD;
        u8::from(ipv4) == rule.ipv4
            && (rule.port_lo..=rule.port_hi).contains(&port)
            && (0..4).all(|i| w[i] & rule.mask[i] == rule.addr[i])
    }

    fn rules_of(text: &str) -> Option<NetworkRules> {
        let path = std::path::Path::new("inline.toml");
        let policy = crate::policy::parse::parse(path, text.to_owned()).unwrap();
        let effective = crate::policy::resolve(
            &policy,
            &crate::policy::CliOverrides::default(),
            std::path::Path::new("/work"),
            None,
        )
        .unwrap();
        NetworkRules::for_policy(&effective)
    }

    #[test]
    fn allow_hosts_entries_give_their_ports_in_order_and_run_the_resolver() {
        let rules = rules_of(
            "[network]\nallow = false\nallow_connect = [\"10.0.0.1:80\"]\n\
             allow_hosts = [\"registry.npmjs.org:443\", \"*.example.com\", \"a.test:8000-8100\"]\n",
        )
        .unwrap();
        assert_eq!(
            rules.hosts,
            [
                HostRulePorts {
                    port_lo: 443,
                    port_hi: 443
                },
                HostRulePorts {
                    port_lo: 0,
                    port_hi: u16::MAX
                },
                HostRulePorts {
                    port_lo: 8000,
                    port_hi: 8100
                },
            ]
        );
        assert!(rules.session_dns());
        assert_eq!(rules.connect.len(), 1, "allow_connect as before");
    }

    #[test]
    fn without_allow_hosts_no_resolver_runs() {
        let rules =
            rules_of("[network]\nallow = false\nallow_connect = [\"10.0.0.1:80\"]\n").unwrap();
        assert!(rules.hosts.is_empty());
        assert!(!rules.session_dns());
        assert_eq!(rules_of("[network]\nallow = true\n"), None);
    }

    /// The kernel's matching (mirrored above) agrees with the policy's on every sample.
    #[test]
    fn kernel_rules_match_like_the_policy() {
        let samples: Vec<IpAddr> = [
            "127.0.0.1",
            "10.1.2.3",
            "11.0.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::5",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.9.9.9",
            "2001:db8::1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for text in [
            "127.0.0.1:8080",
            "10.0.0.0/8:443",
            "[::1]:*",
            "[fd00::]/8:53",
            "*:443",
            "0.0.0.0/0:*",
            "[::]/0:1-1024",
            "[::ffff:127.0.0.1]:80",
        ] {
            let rule = AddressRule::parse(text).unwrap();
            let kernel = kernel_rules(&rule, 7);
            for &addr in &samples {
                for port in [0, 53, 80, 443, 8080, 65535] {
                    let by_kernel = kernel.iter().any(|k| matches(k, addr, port));
                    assert_eq!(
                        by_kernel,
                        rule.covers(addr, port),
                        "{text} on {addr} port {port}"
                    );
                }
            }
            assert!(kernel.iter().all(|k| k.rule == 7));
        }
    }
}
