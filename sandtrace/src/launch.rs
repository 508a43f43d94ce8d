//! What the user explicitly launches: CMD, the `#!` interpreters it goes through and the program
//! `env` starts. The exec policy lets the session's first process run exactly these files
//! (identified by inode), so `sandtrace run -- ./build.sh` works under a policy whose
//! `allow_exec` is empty, while everything CMD starts afterwards needs `allow_exec`.
//!
//! Also finds the system's dynamic loaders, which must not be run directly (see
//! `sandtrace-ebpf/src/exec.rs`). Files are named by their resolved path, as the kernel's
//! `d_path` reports them.

use std::{
    ffi::{OsStr, OsString},
    fs,
    io::Read as _,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use sandtrace_common::file::PathKey;

/// The kernel follows at most this many nested `#!` interpreters (BINPRM_MAX_RECURSION + 1).
const MAX_CHAIN: usize = 6;

/// The key the kernel programs compare a file's resolved path with; `None` if the file does
/// not exist or its resolved path is too long to list.
pub fn path_key(path: &Path) -> Option<PathKey> {
    PathKey::new(fs::canonicalize(path).ok()?.as_os_str().as_bytes())
}

/// The `#!` line of a file: interpreter and optional single argument, as the kernel splits it.
fn shebang(path: &Path) -> Option<(PathBuf, Option<OsString>)> {
    let mut head = [0u8; 256];
    let n = fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let line = line.trim_ascii();
    let split = line.iter().position(u8::is_ascii_whitespace);
    let (interp, arg) = match split {
        Some(i) => (&line[..i], Some(line[i..].trim_ascii())),
        None => (line, None),
    };
    if interp.is_empty() {
        return None;
    }
    Some((
        PathBuf::from(OsStr::from_bytes(interp)),
        arg.filter(|a| !a.is_empty())
            .map(|a| OsStr::from_bytes(a).to_owned()),
    ))
}

fn is_env(path: &Path) -> bool {
    path.file_name() == Some(OsStr::new("env"))
}

fn search_path(name: &OsStr) -> Option<PathBuf> {
    if name.as_bytes().contains(&b'/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The program `env ARGS...` runs: the first argument that is not an option or `NAME=VALUE`.
fn env_target(args: &[OsString]) -> Option<(PathBuf, Vec<OsString>)> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if a == b"--" {
            i += 1;
            break;
        }
        if a == b"-u" || a == b"-C" || a == b"--unset" || a == b"--chdir" {
            i += 2;
        } else if a == b"-S" || a == b"--split-string" {
            // `env -S "prog args"`: the program is the first word of the next argument.
            let words: Vec<OsString> = args
                .get(i + 1)?
                .as_bytes()
                .split(u8::is_ascii_whitespace)
                .filter(|w| !w.is_empty())
                .map(|w| OsStr::from_bytes(w).to_owned())
                .collect();
            let (prog, rest) = words.split_first()?;
            let mut rest = rest.to_vec();
            rest.extend_from_slice(&args[i + 2..]);
            return env_target(&[&[prog.clone()][..], &rest].concat());
        } else if a.starts_with(b"-") || a.contains(&b'=') {
            i += 1;
        } else {
            break;
        }
    }
    let prog = search_path(args.get(i)?)?;
    Some((prog, args[i + 1..].to_vec()))
}

/// Files of the launch chain of `program` started with `args` (not including argv[0]).
pub fn launch_chain(program: &Path, args: &[OsString]) -> Vec<PathBuf> {
    let mut chain = vec![program.to_path_buf()];
    let mut current = program.to_path_buf();
    let mut current_args = args.to_vec();
    while chain.len() < MAX_CHAIN {
        if let Some((interp, arg)) = shebang(&current) {
            chain.push(interp.clone());
            let mut next_args: Vec<OsString> = arg.into_iter().collect();
            next_args.push(current.clone().into_os_string());
            next_args.extend(current_args);
            current = interp;
            current_args = next_args;
        } else if is_env(&current) {
            match env_target(&current_args) {
                Some((prog, rest)) => {
                    chain.push(prog.clone());
                    current = prog;
                    current_args = rest;
                }
                None => break,
            }
        } else {
            break;
        }
    }
    chain
}

/// The ELF interpreter (`PT_INTERP`) a binary names, if any.
fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    use object::{
        Endianness,
        read::elf::{ElfFile64, ProgramHeader as _},
    };
    let data = fs::read(path).ok()?;
    let elf = ElfFile64::<Endianness>::parse(&*data).ok()?;
    let endian = elf.endian();
    elf.elf_program_headers().iter().find_map(|ph| {
        let interp = ph.interpreter(endian, &*data).ok()??;
        Some(PathBuf::from(OsStr::from_bytes(interp)))
    })
}

/// The dynamic loaders this system uses: the interpreters named by the launch chain and by
/// common system binaries, plus the usual locations, by resolved path (so the names that are
/// symlinks, such as `/lib64/ld-linux-x86-64.so.2`, are covered through their target).
pub fn dynamic_loaders(chain: &[PathBuf]) -> Vec<PathBuf> {
    let mut candidates: Vec<PathBuf> = chain
        .iter()
        .map(PathBuf::as_path)
        .chain([
            Path::new("/bin/sh"),
            Path::new("/usr/bin/env"),
            Path::new("/bin/ls"),
        ])
        .filter_map(elf_interpreter)
        .collect();
    for dir in [
        "/lib64",
        "/lib",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
    ] {
        if let Ok(entries) = fs::read_dir(dir) {
            candidates.extend(entries.flatten().map(|e| e.path()).filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(b"ld-linux"))
            }));
        }
    }
    let mut resolved: Vec<PathBuf> = candidates
        .iter()
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect();
    resolved.sort();
    resolved.dedup();
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn env_skips_options_and_assignments() {
        let (prog, rest) = env_target(&os(&["-i", "A=1", "-u", "B", "sh", "-c", "x"])).unwrap();
        assert_eq!(prog, search_path(OsStr::new("sh")).unwrap());
        assert_eq!(rest, os(&["-c", "x"]));
        let (prog, rest) = env_target(&os(&["-S", "sh -e", "file"])).unwrap();
        assert_eq!(prog.file_name().unwrap(), "sh");
        assert_eq!(rest, os(&["-e", "file"]));
    }

    #[test]
    fn chain_follows_shebang_and_env() {
        let dir = std::env::temp_dir().join(format!("sandtrace-launch-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        fs::write(&script, "#!/usr/bin/env sh\necho hi\n").unwrap();
        let chain = launch_chain(&script, &[]);
        assert_eq!(chain[0], script);
        assert_eq!(chain[1], Path::new("/usr/bin/env"));
        assert_eq!(chain[2].file_name().unwrap(), "sh");
        assert_eq!(chain.len(), 3, "{chain:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn finds_the_dynamic_loader() {
        let loaders = dynamic_loaders(&[PathBuf::from("/bin/true")]);
        let ld = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").expect("x86_64 glibc loader");
        assert!(loaders.contains(&ld), "{loaders:?}");
        assert!(!loaders.contains(&fs::canonicalize("/bin/true").unwrap()));
    }
}
