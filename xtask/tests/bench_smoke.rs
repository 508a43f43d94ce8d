//! `cargo xtask bench --quick` still works: every workload runs under every host variant it
//! does not skip (`-o` and `--record` included), the start-up workload runs natively, traced
//! and enforced (BPF LSM) in the VM, and the results file says so. Timings are not checked.

use std::{path::PathBuf, process::Command};

use serde_json::Value;

#[test]
fn quick_benchmark_measures_every_workload_and_variant() {
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-smoke");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bench", "--quick", "--out-dir"])
        .arg(&out_dir)
        .output()
        .expect("running xtask bench --quick");
    assert!(
        output.status.success(),
        "xtask bench --quick failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    let path = out_dir.join("results.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let results: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));

    let names = |workloads: &Value| -> Vec<String> {
        workloads
            .as_array()
            .expect("a list of workloads")
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let host = &results["host"];
    assert_eq!(
        names(host),
        [
            "start-up",
            "getppid",
            "open-close",
            "file-walk",
            "file-walk-x5",
            "fork-exec",
            "compile"
        ],
        "{text}"
    );
    for workload in host.as_array().unwrap() {
        let variants: Vec<&str> = workload["variants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["variant"].as_str().unwrap())
            .collect();
        // file-walk-x5 skips strace (minutes, and no target).
        let expected: &[&str] = if workload["name"] == "file-walk-x5" {
            &[
                "native",
                "trace-only",
                "trace-jsonl",
                "trace-record",
                "degraded",
            ]
        } else {
            &[
                "native",
                "trace-only",
                "trace-jsonl",
                "trace-record",
                "degraded",
                "strace",
            ]
        };
        assert_eq!(variants, expected, "{}", workload["name"]);
        for variant in workload["variants"].as_array().unwrap() {
            let samples = variant["samples"].as_array().unwrap();
            assert_eq!(samples.len(), 1, "{variant}");
            assert!(samples[0]["wall_s"].as_f64().unwrap() > 0.0, "{variant}");
            // Every run but the start-up probe is timed inside the session.
            let timed = workload["name"] != "start-up";
            assert_eq!(samples[0]["in_session_s"].is_f64(), timed, "{variant}");
        }
    }
    // The -o and --record runs of getppid wrote one event per syscall at least (the capture
    // read through `sandtrace export`), into a file of some bytes per event.
    for index in [2, 3] {
        let log = &host[1]["variants"][index]["samples"][0]["event_log"];
        let events = log["events"].as_u64().unwrap();
        assert!(events >= 10_000, "{log}");
        assert!(log["bytes"].as_u64().unwrap() > events, "{log}");
    }
    let rates: Vec<&str> = results["event_rates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(
        rates,
        ["trace-jsonl", "trace-record"],
        "{}",
        results["event_rates"]
    );

    let vm = &results["vm"]["measured"];
    assert!(
        vm.is_object(),
        "the VM part measured nothing: {}",
        results["vm"]
    );
    assert_eq!(names(&vm["workloads"]), ["start-up"], "{vm}");
    let vm_variants: Vec<&str> = vm["workloads"][0]["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["variant"].as_str().unwrap())
        .collect();
    assert_eq!(vm_variants, ["native", "trace-only", "enforce"], "{vm}");

    let targets = results["targets"].as_array().unwrap();
    assert!(
        targets.iter().any(|t| t["what"] == "loader peak RSS"),
        "{targets:?}"
    );
    assert!(results["loader_peak_rss"]["start_up_kib"].as_u64().unwrap() > 0);
}
