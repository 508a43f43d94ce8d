//! Looks up the accounts CMD may run as (sandtrace's own user, the user who ran sudo, the one
//! `--user` names) in the passwd and group databases, before the pure planning stage.

use std::{
    ffi::{CString, OsStr, OsString},
    path::PathBuf,
};

use nix::unistd::{Gid, Group, Uid, User};

use super::process::{Account, Accounts, Identity, ProcessFlags, ProcessInputs};

impl ProcessInputs {
    /// sandtrace's environment and the account CMD runs as under `flags`.
    pub fn gather(flags: ProcessFlags) -> Result<Self, String> {
        let caller_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let accounts = gather(&caller_env, flags.user.as_deref())?;
        Ok(Self {
            identity: Identity::choose(&accounts, flags.as_root),
            caller_env,
            flags,
        })
    }
}

/// The accounts for a run with `--user` = `user`, from sandtrace's own ids, `caller_env`
/// (`SUDO_UID`, `SUDO_GID`, `HOME`) and the system's databases. The error says what is wrong
/// with `--user`, or with the `SUDO_*` variables.
pub fn gather(caller_env: &[(OsString, OsString)], user: Option<&str>) -> Result<Accounts, String> {
    let var = |name: &str| {
        caller_env
            .iter()
            .find(|(n, _)| n == OsStr::new(name))
            .map(|(_, v)| v.to_string_lossy().into_owned())
    };
    let caller = caller(var("HOME"));
    let sudo = match var("SUDO_UID") {
        Some(uid) if Uid::effective().is_root() => sudo_account(&uid, var("SUDO_GID"))?,
        _ => None,
    };
    let requested = user.map(requested_account).transpose()?;
    Ok(Accounts {
        caller,
        sudo,
        requested,
    })
}

/// sandtrace's own user: its real ids and groups, `$HOME` when it is absolute.
fn caller(home: Option<String>) -> Account {
    let uid = Uid::current();
    let gid = Gid::current();
    let entry = User::from_uid(uid).ok().flatten();
    let groups = nix::unistd::getgroups()
        .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default();
    Account {
        home: home
            .map(PathBuf::from)
            .filter(|h| h.is_absolute())
            .or_else(|| entry.as_ref().map(|e| e.dir.clone())),
        shell: entry.as_ref().map(|e| e.shell.clone()),
        name: entry.map(|e| e.name),
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        groups: with_primary(groups, gid.as_raw()),
    }
}

/// The user who ran sudo; `None` when that was root itself.
fn sudo_account(uid: &str, gid: Option<String>) -> Result<Option<Account>, String> {
    let uid: u32 = uid
        .parse()
        .map_err(|_| format!("SUDO_UID={uid:?} is not a user id; unset it or run through sudo"))?;
    if uid == 0 {
        return Ok(None);
    }
    let gid = gid
        .map(|gid| {
            gid.parse::<u32>().map_err(|_| {
                format!("SUDO_GID={gid:?} is not a group id; unset it or run through sudo")
            })
        })
        .transpose()?;
    account(
        Uid::from_raw(uid),
        gid.map(Gid::from_raw),
        &format!("SUDO_UID={uid}"),
    )
    .map(Some)
}

/// `USER[:GROUP]`, each a name or a number.
fn requested_account(spec: &str) -> Result<Account, String> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let gid = group
        .map(|group| match group.parse::<u32>() {
            Ok(gid) => Ok(Gid::from_raw(gid)),
            Err(_) => Group::from_name(group)
                .ok()
                .flatten()
                .map(|g| g.gid)
                .ok_or_else(|| format!("--user {spec}: no group named {group:?}")),
        })
        .transpose()?;
    let uid = match user.parse::<u32>() {
        Ok(uid) => Uid::from_raw(uid),
        Err(_) => User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.uid)
            .ok_or_else(|| {
                format!("--user {spec}: no user named {user:?} (give a user name or a uid)")
            })?,
    };
    account(uid, gid, &format!("--user {spec}"))
}

/// The account of `uid` with `gid` as primary group (its passwd group when `None`) and its
/// supplementary groups. A uid without a passwd entry has no name, home or shell, and needs
/// `gid`.
fn account(uid: Uid, gid: Option<Gid>, what: &str) -> Result<Account, String> {
    let entry = User::from_uid(uid).ok().flatten();
    let gid = match (gid, &entry) {
        (Some(gid), _) => gid,
        (None, Some(entry)) => entry.gid,
        (None, None) => {
            return Err(format!(
                "{what}: uid {uid} has no passwd entry, so its group is unknown; name it too, \
                 e.g. --user {uid}:{uid}"
            ));
        }
    };
    let groups = entry
        .as_ref()
        .and_then(|e| CString::new(e.name.as_bytes()).ok())
        .and_then(|name| nix::unistd::getgrouplist(&name, gid).ok())
        .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_default();
    Ok(Account {
        groups: with_primary(groups, gid.as_raw()),
        uid: uid.as_raw(),
        gid: gid.as_raw(),
        home: entry.as_ref().map(|e| e.dir.clone()),
        shell: entry.as_ref().map(|e| e.shell.clone()),
        name: entry.map(|e| e.name),
    })
}

/// `groups` sorted, deduplicated, with `gid` in it.
fn with_primary(mut groups: Vec<u32>, gid: u32) -> Vec<u32> {
    groups.push(gid);
    groups.sort_unstable();
    groups.dedup();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter().map(|(n, v)| (n.into(), v.into())).collect()
    }

    #[test]
    fn looks_up_users_by_name_and_number() {
        let root = requested_account("root").unwrap();
        assert_eq!(
            (root.uid, root.gid, root.name.as_deref()),
            (0, 0, Some("root"))
        );
        assert!(root.groups.contains(&0));
        assert_eq!(requested_account("0:0").unwrap(), root);
        let numbered = requested_account("4242:4343").unwrap();
        assert_eq!(
            (numbered.uid, numbered.gid, numbered.home),
            (4242, 4343, None)
        );
        assert!(
            requested_account("4242")
                .unwrap_err()
                .contains("no passwd entry")
        );
        assert!(
            requested_account("no-such-user-st")
                .unwrap_err()
                .contains("no user named")
        );
        assert!(
            requested_account("root:no-such-group-st")
                .unwrap_err()
                .contains("no group")
        );
    }

    #[test]
    fn the_user_who_ran_sudo() {
        let accounts = gather(&env(&[("SUDO_UID", "0"), ("HOME", "/h")]), None).unwrap();
        assert_eq!(accounts.sudo, None);
        assert_eq!(accounts.caller.home, Some(PathBuf::from("/h")));
        if Uid::effective().is_root() {
            let accounts =
                gather(&env(&[("SUDO_UID", "4242"), ("SUDO_GID", "4343")]), None).unwrap();
            let sudo = accounts.sudo.unwrap();
            assert_eq!((sudo.uid, sudo.gid, sudo.groups), (4242, 4343, vec![4343]));
            assert!(gather(&env(&[("SUDO_UID", "x")]), None).is_err());
        }
    }
}
