//! DNS queries as the outputs show them, the JSONL `dns` line and the terminal's line: those
//! of the session's resolver, and those seen in the session's traffic without it.

use super::{Labels, RuleLabel};
use crate::{
    dns::{Decision, DnsQuery, ObservedQuery},
    events::NetList,
    output::jsonl::schema::{DnsLine, RuleLine},
};

/// The `allow_hosts` entry that decided.
pub fn rule(query: &DnsQuery, labels: &Labels) -> Option<RuleLabel> {
    query
        .rule
        .and_then(|index| labels.network_rules.label(NetList::Hosts, index))
        .cloned()
}

/// The log's line for `query`.
pub fn line(query: &DnsQuery, labels: &Labels) -> DnsLine {
    DnsLine {
        timestamp: humantime::format_rfc3339_micros(query.time).to_string(),
        transport: query.transport.as_str().to_owned(),
        client: query.client.to_string(),
        server: None,
        name: query.name.clone(),
        query_type: query.query_type.clone(),
        action: query.decision.as_str().to_owned(),
        response: query.response.as_str().to_owned(),
        answers: query.answers.iter().map(ToString::to_string).collect(),
        ttl: query.ttl,
        rule: rule(query, labels).as_ref().map(RuleLine::from),
        reason: query.reason.clone(),
    }
}

/// `denied dns "evil.test" A: no allow_hosts entry covers this name (NXDOMAIN)`, or for an
/// answer `answered dns "good.test" A: 127.0.0.2 (ttl 300) by allow_hosts rule ...`; without
/// the leading verdict word and its colour, which the terminal adds.
pub fn describe(query: &DnsQuery, labels: &Labels) -> String {
    let what = format!("dns {:?} {}", query.name, query.query_type);
    match query.decision {
        Decision::Deny => format!("{what}: {} ({})", query.reason, query.response),
        Decision::Allow => {
            let answers = if query.answers.is_empty() {
                format!("{} ({})", query.response, query.reason)
            } else {
                let addrs: Vec<String> = query.answers.iter().map(ToString::to_string).collect();
                let ttl = query.ttl.map(|t| format!(" (ttl {t})")).unwrap_or_default();
                format!("{}{ttl}", addrs.join(", "))
            };
            let by = rule(query, labels)
                .map(|r| format!(" by {} rule `{}` ({})", r.kind, r.pattern, r.source))
                .unwrap_or_default();
            format!("{what}: {answers}{by}")
        }
    }
}

/// The log's line for a query seen in the session's traffic.
pub fn observed_line(query: &ObservedQuery) -> DnsLine {
    DnsLine {
        timestamp: humantime::format_rfc3339_micros(query.time).to_string(),
        transport: query.transport.as_str().to_owned(),
        client: query.client.to_string(),
        server: Some(query.server.to_string()),
        name: query.name.clone(),
        query_type: query.query_type.clone(),
        action: "observed".to_owned(),
        response: query.response.clone().unwrap_or_default(),
        answers: query.answers.iter().map(ToString::to_string).collect(),
        ttl: query.ttl,
        rule: None,
        reason: query.reason.clone(),
    }
}

/// `dns "example.test" A to 10.0.2.3:53: 192.0.2.1 (ttl 60)`, or with the reason when there
/// is no address to show.
pub fn describe_observed(query: &ObservedQuery) -> String {
    let what = format!(
        "dns {:?} {} to {}",
        query.name, query.query_type, query.server
    );
    if query.answers.is_empty() {
        let response = query
            .response
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        return format!("{what}: {}{response}", query.reason);
    }
    let addrs: Vec<String> = query.answers.iter().map(ToString::to_string).collect();
    let ttl = query.ttl.map(|t| format!(" (ttl {t})")).unwrap_or_default();
    format!("{what}: {}{ttl}", addrs.join(", "))
}

#[cfg(test)]
mod tests {
    use std::{
        net::{IpAddr, Ipv4Addr, SocketAddr},
        path::Path,
        time::UNIX_EPOCH,
    };

    use super::*;
    use crate::{
        dns::{Response, Transport},
        output::summary::{MAX_REFUSED_NAMES, Tally},
        policy::{CliOverrides, parse::parse, resolve},
    };

    fn labels() -> Labels {
        let policy = parse(
            Path::new("p.toml"),
            "[network]\nallow = false\nallow_hosts = [\"good.test\"]\n".to_owned(),
        )
        .unwrap();
        Labels::for_policy(
            &resolve(&policy, &CliOverrides::default(), Path::new("/"), None).unwrap(),
        )
    }

    fn query(name: &str, decision: Decision) -> DnsQuery {
        let allowed = decision == Decision::Allow;
        DnsQuery {
            time: UNIX_EPOCH,
            transport: Transport::Tcp,
            client: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000),
            name: name.to_owned(),
            query_type: "A".to_owned(),
            decision,
            response: if allowed {
                Response::NoError
            } else {
                Response::NxDomain
            },
            answers: if allowed {
                vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]
            } else {
                vec![]
            },
            ttl: allowed.then_some(300),
            rule: allowed.then_some(0),
            reason: if allowed {
                "covered"
            } else {
                "no allow_hosts entry covers this name"
            }
            .to_owned(),
        }
    }

    #[test]
    fn lines_and_descriptions() {
        let labels = labels();
        let answered = query("good.test", Decision::Allow);
        let line = line(&answered, &labels);
        assert_eq!(line.rule.unwrap().kind, "allow_hosts");
        assert_eq!(line.answers, ["127.0.0.2"]);
        assert_eq!(line.transport, "tcp");
        assert_eq!(line.timestamp, "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            describe(&answered, &labels),
            "dns \"good.test\" A: 127.0.0.2 (ttl 300) by allow_hosts rule `good.test` (p.toml:3:16)"
        );
        assert_eq!(
            describe(&query("evil.test", Decision::Deny), &labels),
            "dns \"evil.test\" A: no allow_hosts entry covers this name (NXDOMAIN)"
        );
    }

    #[test]
    fn the_summary_counts_queries_and_keeps_the_first_refused_names() {
        let mut tally = Tally::default();
        tally.observe_dns(&query("good.test", Decision::Allow));
        for i in 0..2 * MAX_REFUSED_NAMES {
            tally.observe_dns(&query(&format!("n{i}.evil.test"), Decision::Deny));
            tally.observe_dns(&query(&format!("n{i}.evil.test"), Decision::Deny));
        }
        let dns = tally.dns().unwrap();
        assert_eq!(
            (dns.answered, dns.refused),
            (1, 4 * MAX_REFUSED_NAMES as u64)
        );
        assert_eq!(dns.refused_names.len(), MAX_REFUSED_NAMES);
        assert_eq!(dns.refused_names[1], "n1.evil.test");
        let mut quiet = Tally::default();
        assert!(quiet.dns().is_none());
        quiet.count_dns_queries();
        assert_eq!(quiet.dns().unwrap().answered, 0);
    }
}
