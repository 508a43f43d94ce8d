//! DNS queries of the session's resolver as the outputs show them: the JSONL `dns` line and
//! the terminal's line.

use super::{Labels, RuleLabel};
use crate::{
    dns::{Decision, DnsQuery},
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
