//! From samples to conclusions: medians and ratios to native, the event rate, the loader's
//! peak RSS, the targets of issue 7, the printed tables and `target/bench/results.json`.

use std::{fmt::Write as _, path::Path};

use anyhow::{Context as _, Result};
use serde::Serialize;

use super::{
    guest::GuestReport,
    runner::{Sample, Variant, WorkloadRuns},
    workloads::{EVENT_RATE_WORKLOAD, Kind},
};

/// The machine the numbers come from, and how busy it was.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when the benchmark started and ended.
    pub load_average_before: [f64; 3],
    pub load_average_after: [f64; 3],
}

impl Machine {
    /// Observes the machine as the benchmark starts; `finish` adds the load at the end.
    pub fn observe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            load_average_before: load_average(),
            load_average_after: [0.0; 3],
        }
    }

    pub fn finish(&mut self) {
        self.load_average_after = load_average();
    }
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fields = text
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0.0));
    [(); 3].map(|()| fields.next().unwrap_or(0.0))
}

/// The VM part: its results, or why it has none.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VmOutcome {
    Measured {
        kernel: String,
        repetitions: u32,
        workloads: Vec<WorkloadSummary>,
    },
    Skipped,
    Failed {
        error: String,
    },
}

impl VmOutcome {
    pub fn measured(report: GuestReport, repetitions: u32) -> Self {
        Self::Measured {
            kernel: report.kernel,
            repetitions,
            workloads: summarize(&report.workloads),
        }
    }
}

/// Everything `results.json` holds.
#[derive(Debug, Serialize)]
pub struct Results {
    pub quick: bool,
    pub repetitions: u32,
    pub machine: Machine,
    pub host: Vec<WorkloadSummary>,
    pub vm: VmOutcome,
    pub event_rate: Option<EventRate>,
    pub loader_peak_rss: LoaderRss,
    pub targets: Vec<Target>,
}

impl Results {
    pub fn new(
        quick: bool,
        repetitions: u32,
        machine: Machine,
        host: &[WorkloadRuns],
        vm: VmOutcome,
    ) -> Self {
        let host = summarize(host);
        let event_rate = EventRate::of(&host);
        let loader_peak_rss = LoaderRss::of(&host);
        let targets = targets(&host, &vm, event_rate.as_ref(), &loader_peak_rss);
        Self {
            quick,
            repetitions,
            machine,
            host,
            vm,
            event_rate,
            loader_peak_rss,
            targets,
        }
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The tables and conclusions, for people.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let load = |l: [f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
        let _ = writeln!(
            out,
            "Host: {} CPUs ({}), kernel {}; load average {} before, {} after.\n\
             Medians over {} interleaved repetitions{}.",
            m.cpus,
            m.cpu_model,
            m.kernel,
            load(m.load_average_before),
            load(m.load_average_after),
            self.repetitions,
            if self.quick {
                " at --quick sizes (the numbers only show that the harness works)"
            } else {
                ""
            }
        );
        let variants = &Variant::HOST;
        out.push_str(&table(
            "\nHost, in-session time (the workload timed inside the session; start-up: \
             end-to-end) and ratio to native:",
            &self.host,
            variants,
            |v| (v.median_s, v.ratio),
        ));
        out.push_str(&table(
            "\nHost, end-to-end wall time (sandtrace's start-up and teardown included):",
            &self.host,
            variants,
            |v| (v.median_wall_s, v.wall_ratio),
        ));
        out.push_str(&table(
            "\nHost, CPU time (user+system of the whole process tree, the loader's or strace's \
             own work included):",
            &self.host,
            variants,
            |v| (v.median_cpu_s, v.cpu_ratio),
        ));
        out.push_str(&enforcement_cost(
            "Host, degraded enforcement's own cost (seccomp filter and cgroup programs; \
             degraded / trace-only, in-session)",
            &self.host,
            Variant::Degraded,
        ));
        match &self.vm {
            VmOutcome::Measured {
                kernel,
                repetitions,
                workloads,
            } => {
                out.push_str(&table(
                    &format!(
                        "\nVM (kernel {kernel}, BPF LSM, software emulation: compare within \
                         this table only; medians of {repetitions} runs), in-session time and \
                         ratio to native:"
                    ),
                    workloads,
                    &Variant::VM,
                    |v| (v.median_s, v.ratio),
                ));
                out.push_str(&enforcement_cost(
                    "the LSM hooks' own cost (enforce / trace-only, in-session)",
                    workloads,
                    Variant::Enforce,
                ));
            }
            VmOutcome::Skipped => out.push_str("\nVM: skipped (--no-vm).\n"),
            VmOutcome::Failed { error } => {
                let _ = writeln!(out, "\nVM: failed: {error}");
            }
        }
        if let Some(rate) = &self.event_rate {
            let _ = writeln!(
                out,
                "\nEvent log ({EVENT_RATE_WORKLOAD} with -o, default ring buffer): {} events a \
                 run, written at {} (median; file creation to last write), offered at {} \
                 syscalls/s; at most {} events lost in a run.",
                rate.events_median,
                rate.delivered_per_s.map_or(
                    "an unknown rate (no file creation time)".to_owned(),
                    |r| format!("{} events/s", thousands(r))
                ),
                thousands(rate.offered_per_s),
                rate.lost_events_max,
            );
        }
        let rss = &self.loader_peak_rss;
        let _ = writeln!(
            out,
            "Loader peak RSS: {} at start-up (/bin/true), {} under load ({EVENT_RATE_WORKLOAD}, \
             -o included).",
            mib(rss.start_up_kib),
            mib(rss.under_load_kib)
        );
        out.push_str("\nTargets (issue 7):\n");
        for t in &self.targets {
            let _ = writeln!(
                out,
                "  {:<6} {:<62} {} (target {} {})",
                if t.met { "met" } else { "MISSED" },
                t.what,
                t.show(t.measured),
                t.comparison,
                t.show(t.limit)
            );
        }
        out
    }
}

/// One workload's medians and ratios under every variant, with the samples.
#[derive(Debug, Serialize)]
pub struct WorkloadSummary {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub variants: Vec<VariantSummary>,
}

#[derive(Debug, Serialize)]
pub struct VariantSummary {
    pub variant: Variant,
    /// In-session time (end-to-end for the start-up workload).
    pub median_s: f64,
    /// To native, in the same run; none for the start-up workload, whose native run is
    /// `/bin/true` alone.
    pub ratio: Option<f64>,
    pub median_wall_s: f64,
    pub wall_ratio: Option<f64>,
    pub median_cpu_s: f64,
    pub cpu_ratio: Option<f64>,
    /// Enforcing variants: in-session time to trace-only's, the cost of enforcement alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio_to_trace_only: Option<f64>,
    pub max_rss_kib: u64,
    /// With `-o`: the most events lost in one run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lost_events: Option<u64>,
    pub samples: Vec<Sample>,
}

impl WorkloadSummary {
    fn variant(&self, variant: Variant) -> Option<&VariantSummary> {
        self.variants.iter().find(|v| v.variant == variant)
    }
}

fn summarize(runs: &[WorkloadRuns]) -> Vec<WorkloadSummary> {
    runs.iter()
        .map(|workload| {
            let native = workload.samples(Variant::Native).unwrap_or_default();
            let native_time = median(native.iter().map(Sample::time_s));
            let native_wall = median(native.iter().map(|s| s.wall_s));
            let native_cpu = median(native.iter().map(|s| s.cpu_s));
            let trace_only = workload.samples(Variant::TraceOnly).unwrap_or_default();
            let trace_only_time = median(trace_only.iter().map(Sample::time_s));
            let with_ratios = workload.kind != Kind::StartUp;
            let ratio =
                |value: f64, native: f64| (with_ratios && native > 0.0).then(|| value / native);
            let variants = workload
                .variants
                .iter()
                .map(|runs| {
                    let samples = &runs.samples;
                    let time = median(samples.iter().map(Sample::time_s));
                    let wall = median(samples.iter().map(|s| s.wall_s));
                    let cpu = median(samples.iter().map(|s| s.cpu_s));
                    VariantSummary {
                        variant: runs.variant,
                        median_s: time,
                        ratio: ratio(time, native_time),
                        median_wall_s: wall,
                        wall_ratio: ratio(wall, native_wall),
                        median_cpu_s: cpu,
                        cpu_ratio: ratio(cpu, native_cpu),
                        ratio_to_trace_only: matches!(
                            runs.variant,
                            Variant::Enforce | Variant::Degraded
                        )
                        .then(|| ratio(time, trace_only_time))
                        .flatten(),
                        max_rss_kib: samples.iter().map(|s| s.max_rss_kib).max().unwrap_or(0),
                        max_lost_events: samples
                            .iter()
                            .filter_map(|s| s.event_log.as_ref().map(|log| log.lost_events))
                            .max(),
                        samples: samples.clone(),
                    }
                })
                .collect();
            WorkloadSummary {
                name: workload.name.clone(),
                description: workload.description.clone(),
                kind: workload.kind,
                variants,
            }
        })
        .collect()
}

/// The median (the mean of the middle two for an even count); 0 for no values.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// How fast the loader turns kernel events into JSONL: the `-o` runs of the getppid workload,
/// which make one event per syscall as fast as one CPU can.
#[derive(Debug, Serialize)]
pub struct EventRate {
    pub events_median: u64,
    /// Events written per second of the log's write window.
    pub delivered_per_s: Option<f64>,
    /// The workload's syscalls per second of its in-session time: what the kernel side
    /// produced.
    pub offered_per_s: f64,
    pub lost_events_max: u64,
}

impl EventRate {
    fn of(host: &[WorkloadSummary]) -> Option<Self> {
        let samples = &host
            .iter()
            .find(|w| w.name == EVENT_RATE_WORKLOAD)?
            .variant(Variant::TraceJsonl)?
            .samples;
        let logs: Vec<(&Sample, &super::runner::EventLog)> = samples
            .iter()
            .filter_map(|s| Some((s, s.event_log.as_ref()?)))
            .collect();
        if logs.is_empty() {
            return None;
        }
        let delivered: Vec<f64> = logs
            .iter()
            .filter_map(|(_, log)| Some(log.events as f64 / log.write_window_s?))
            .collect();
        Some(Self {
            events_median: median(logs.iter().map(|(_, log)| log.events as f64)) as u64,
            delivered_per_s: (delivered.len() == logs.len()).then(|| median(delivered.into_iter())),
            offered_per_s: median(
                logs.iter()
                    .map(|(s, log)| log.total_syscalls as f64 / s.time_s()),
            ),
            lost_events_max: logs
                .iter()
                .map(|(_, log)| log.lost_events)
                .max()
                .unwrap_or(0),
        })
    }
}

/// The loader's peak RSS. `wait4` reports the maximum over the loader and the processes it
/// reaped; the workloads used here (`/bin/true`, perl) stay far below the loader.
#[derive(Debug, Serialize)]
pub struct LoaderRss {
    pub start_up_kib: u64,
    pub under_load_kib: u64,
}

impl LoaderRss {
    fn of(host: &[WorkloadSummary]) -> Self {
        let peak = |workload: Option<&WorkloadSummary>| {
            workload.map_or(0, |w| {
                w.variants
                    .iter()
                    .filter(|v| v.variant.runs_sandtrace())
                    .map(|v| v.max_rss_kib)
                    .max()
                    .unwrap_or(0)
            })
        };
        Self {
            start_up_kib: peak(host.iter().find(|w| w.kind == Kind::StartUp)),
            under_load_kib: peak(host.iter().find(|w| w.name == EVENT_RATE_WORKLOAD)),
        }
    }
}

/// One of issue 7's targets, against this run's number.
#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: f64,
    /// `<=`, `<` or `>=`.
    pub comparison: &'static str,
    pub limit: f64,
    pub unit: &'static str,
    pub met: bool,
}

impl Target {
    fn at_most(what: String, measured: f64, limit: f64, unit: &'static str) -> Self {
        Self {
            what,
            measured,
            comparison: "<=",
            limit,
            unit,
            met: measured <= limit,
        }
    }

    fn below(what: String, measured: f64, limit: f64, unit: &'static str) -> Self {
        Self {
            comparison: "<",
            met: measured < limit,
            ..Self::at_most(what, measured, limit, unit)
        }
    }

    fn at_least(what: String, measured: f64, limit: f64, unit: &'static str) -> Self {
        Self {
            comparison: ">=",
            met: measured >= limit,
            ..Self::at_most(what, measured, limit, unit)
        }
    }

    fn show(&self, value: f64) -> String {
        match self.unit {
            "x" => format!("{value:.2}x"),
            "ms" => format!("{value:.0} ms"),
            "MiB" => format!("{value:.1} MiB"),
            "events/s" => format!("{} events/s", thousands(value)),
            unit => format!("{value} {unit}"),
        }
    }
}

fn targets(
    host: &[WorkloadSummary],
    vm: &VmOutcome,
    event_rate: Option<&EventRate>,
    rss: &LoaderRss,
) -> Vec<Target> {
    let mut targets = Vec::new();
    let ratio = |w: &WorkloadSummary, variant| w.variant(variant).and_then(|v| v.ratio);
    for w in host {
        let (Some(trace), Some(jsonl), Some(strace)) = (
            ratio(w, Variant::TraceOnly),
            ratio(w, Variant::TraceJsonl),
            ratio(w, Variant::Strace),
        ) else {
            continue;
        };
        match w.kind {
            Kind::Realistic => {
                targets.push(Target::at_most(
                    format!("{}: trace-only / native", w.name),
                    trace,
                    1.10,
                    "x",
                ));
                targets.push(Target::at_most(
                    format!("{}: trace-only -o / native", w.name),
                    jsonl,
                    1.5,
                    "x",
                ));
            }
            Kind::Micro if w.name == EVENT_RATE_WORKLOAD => targets.push(Target::at_most(
                format!("{}: trace-only / native", w.name),
                trace,
                2.0,
                "x",
            )),
            Kind::Micro | Kind::StartUp => {}
        }
        // "Its added overhead at most one fifth of strace -f's": (r_o - 1) <= (r_strace - 1) / 5.
        // Without a measurable strace overhead (noise) there is nothing to compare against.
        if strace > 1.0 {
            targets.push(Target::at_most(
                format!("{}: -o's added overhead / strace -f's", w.name),
                (jsonl - 1.0).max(0.0) / (strace - 1.0),
                0.2,
                "x",
            ));
        }
    }
    if let VmOutcome::Measured { workloads, .. } = vm {
        // Issue 7 holds enforcement to 1.05x on the realistic workloads only.
        for w in workloads.iter().filter(|w| w.kind == Kind::Realistic) {
            if let Some(enforce) = ratio(w, Variant::Enforce) {
                targets.push(Target::at_most(
                    format!("{}: enforce / native (VM)", w.name),
                    enforce,
                    1.05,
                    "x",
                ));
            }
        }
    }
    if let Some(start_up) = host.iter().find(|w| w.kind == Kind::StartUp) {
        for (variant, what) in [
            (
                Variant::TraceOnly,
                "start-up: sandtrace run --trace-only -- /bin/true",
            ),
            (
                Variant::Degraded,
                "start-up: sandtrace run (degraded: no BPF LSM) -- /bin/true",
            ),
        ] {
            if let Some(v) = start_up.variant(variant) {
                targets.push(Target::below(
                    what.to_owned(),
                    v.median_wall_s * 1000.0,
                    150.0,
                    "ms",
                ));
            }
        }
    }
    targets.push(Target::below(
        "loader peak RSS".to_owned(),
        rss.start_up_kib.max(rss.under_load_kib) as f64 / 1024.0,
        64.0,
        "MiB",
    ));
    if let Some(rate) = event_rate {
        // Events lost mean the rate was not sustained: count it as none.
        let sustained = if rate.lost_events_max == 0 {
            rate.delivered_per_s.unwrap_or(0.0)
        } else {
            0.0
        };
        targets.push(Target::at_least(
            "events/s into a JSONL file without loss".to_owned(),
            sustained,
            1e6,
            "events/s",
        ));
    }
    targets
}

/// One line of `variant`'s in-session time relative to trace-only's, per workload.
fn enforcement_cost(title: &str, workloads: &[WorkloadSummary], variant: Variant) -> String {
    let costs: Vec<String> = workloads
        .iter()
        .filter_map(|w| {
            let ratio = w.variant(variant)?.ratio_to_trace_only?;
            Some(format!("{} {ratio:.2}x", w.name))
        })
        .collect();
    format!("\n{title}: {}\n", costs.join(", "))
}

/// A table of workloads by variant; `cell` picks a time and a ratio from a variant's summary.
fn table(
    title: &str,
    workloads: &[WorkloadSummary],
    variants: &[Variant],
    cell: impl Fn(&VariantSummary) -> (f64, Option<f64>),
) -> String {
    const FIRST: usize = 11;
    const WIDTH: usize = 19;
    let mut out = String::new();
    let _ = writeln!(out, "{title}");
    let _ = write!(out, "{:<FIRST$}", "workload");
    for v in variants {
        let _ = write!(out, "{:>WIDTH$}", v.label());
    }
    out.push('\n');
    for w in workloads {
        let _ = write!(out, "{:<FIRST$}", w.name);
        for &v in variants {
            let text = match w.variant(v).map(&cell) {
                Some((time, Some(ratio))) => format!("{} {ratio:>5.2}x", duration(time)),
                Some((time, None)) => duration(time),
                None => "-".to_owned(),
            };
            let _ = write!(out, "{text:>WIDTH$}");
        }
        out.push('\n');
    }
    out
}

fn duration(seconds: f64) -> String {
    if seconds < 0.01 {
        format!("{:.2} ms", seconds * 1000.0)
    } else if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.2} s")
    }
}

/// A rate per second in thousands or millions, e.g. `1.02 M`.
fn thousands(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2} M", rate / 1e6)
    } else {
        format!("{:.0} k", rate / 1e3)
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::runner::{EventLog, VariantRuns};

    fn sample(time: f64, event_log: Option<EventLog>) -> Sample {
        Sample {
            wall_s: time + 0.1,
            in_session_s: Some(time),
            cpu_s: time / 2.0,
            max_rss_kib: 1024,
            event_log,
        }
    }

    fn runs(name: &str, kind: Kind, times: &[(Variant, [f64; 3])]) -> WorkloadRuns {
        WorkloadRuns {
            name: name.to_owned(),
            description: name.to_owned(),
            kind,
            variants: times
                .iter()
                .map(|(variant, times)| VariantRuns {
                    variant: *variant,
                    samples: times
                        .iter()
                        .map(|&t| {
                            let log = (*variant == Variant::TraceJsonl).then_some(EventLog {
                                events: 1_000_000,
                                lost_events: 0,
                                total_syscalls: 1_000_000,
                                write_window_s: Some(t + 0.5),
                            });
                            sample(t, log)
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn ratios_and_targets_come_from_medians() {
        let host = [runs(
            "compile",
            Kind::Realistic,
            &[
                (Variant::Native, [1.0, 9.0, 1.0]),
                (Variant::TraceOnly, [1.05, 1.05, 0.5]),
                (Variant::TraceJsonl, [1.2, 1.2, 1.2]),
                (Variant::Degraded, [1.26, 1.26, 1.26]),
                (Variant::Strace, [3.0, 2.0, 2.0]),
            ],
        )];
        let results = Results::new(false, 3, Machine::observe(), &host, VmOutcome::Skipped);
        let compile = &results.host[0];
        let trace = compile.variant(Variant::TraceOnly).unwrap();
        assert_eq!(trace.median_s, 1.05);
        assert!((trace.ratio.unwrap() - 1.05).abs() < 1e-9);
        assert_eq!(trace.ratio_to_trace_only, None);
        let degraded = compile.variant(Variant::Degraded).unwrap();
        assert!((degraded.ratio_to_trace_only.unwrap() - 1.2).abs() < 1e-9);
        let find = |what: &str| {
            results
                .targets
                .iter()
                .find(|t| t.what == what)
                .unwrap_or_else(|| panic!("no target {what:?} in {:#?}", results.targets))
        };
        assert!(find("compile: trace-only / native").met);
        assert!(find("compile: trace-only -o / native").met);
        // (1.2 - 1) / (2 - 1) = 0.2: exactly at the limit.
        let added = find("compile: -o's added overhead / strace -f's");
        assert!(
            (added.measured - 0.2).abs() < 1e-9 && added.met,
            "{added:?}"
        );
        let text = results.render();
        assert!(text.contains("1.05 s  1.05x"), "{text}");
        assert!(text.contains("compile 1.20x"), "{text}");
    }

    #[test]
    fn event_rate_is_not_sustained_when_events_are_lost() {
        let mut getppid = runs(
            EVENT_RATE_WORKLOAD,
            Kind::Micro,
            &[
                (Variant::Native, [0.5; 3]),
                (Variant::TraceOnly, [0.6; 3]),
                (Variant::TraceJsonl, [0.5; 3]),
                (Variant::Strace, [5.0; 3]),
            ],
        );
        let rate = |runs: &WorkloadRuns| {
            let results = Results::new(
                false,
                3,
                Machine::observe(),
                std::slice::from_ref(runs),
                VmOutcome::Skipped,
            );
            let target = results
                .targets
                .into_iter()
                .find(|t| t.what.starts_with("events/s"))
                .unwrap();
            (results.event_rate.unwrap(), target)
        };
        let (measured, target) = rate(&getppid);
        // 1,000,000 events in a 1 s window.
        assert_eq!(measured.delivered_per_s, Some(1e6));
        assert_eq!(measured.offered_per_s, 2e6);
        assert!(target.met, "{target:?}");

        let jsonl = &mut getppid.variants[2].samples[1];
        jsonl.event_log.as_mut().unwrap().lost_events = 10;
        let (measured, target) = rate(&getppid);
        assert_eq!(measured.lost_events_max, 10);
        assert!(!target.met && target.measured == 0.0, "{target:?}");
    }
}
