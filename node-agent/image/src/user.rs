//! What a container runs as and runs: the image's `User` resolved against the rootfs's
//! /etc/passwd and /etc/group, and Kubernetes' rules for merging command/args and env
//! with the image's Entrypoint/Cmd/Env.

use std::fs;
use std::path::Path;

use crate::store::ImageConfig;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("image user {user:?}: no such user in the image's /etc/passwd; use a numeric uid (securityContext.runAsUser)")]
    UnknownUser { user: String },
    #[error(
        "image user {user:?}: no such group {group:?} in the image's /etc/group; use a numeric gid"
    )]
    UnknownGroup { user: String, group: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A resolved identity: uid, primary gid and supplementary gids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolves `user` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) like runc does:
/// numeric ids need no passwd entry, names must exist; the primary gid comes from
/// passwd unless given; supplementary groups are those listing the user by name.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<Identity> {
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    // passwd: name:x:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    let entry = entries
        .iter()
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let uid = match u.parse::<u32>() {
        Ok(n) => n,
        Err(_) => match entry.and_then(|f| f[2].parse().ok()) {
            Some(n) => n,
            None => {
                return Err(Error::UnknownUser {
                    user: user.to_string(),
                })
            }
        },
    };
    let name = entry.map(|f| f[0]).unwrap_or("");
    // group: name:x:gid:member,member
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    let gid = match g {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::UnknownGroup {
                    user: user.to_string(),
                    group: g.to_string(),
                })?,
        },
        _ => entry.and_then(|f| f[3].parse().ok()).unwrap_or(uid),
    };
    let mut additional_gids: Vec<u32> = if name.is_empty() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|&x| x != gid)
            .collect()
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(Identity {
        uid,
        gid,
        additional_gids,
    })
}

impl ImageConfig {
    /// The argv per Kubernetes: `command` replaces Entrypoint (and drops Cmd); `args`
    /// replaces Cmd.
    pub fn argv(&self, command: &[String], args: &[String]) -> Vec<String> {
        let mut out = if command.is_empty() {
            self.entrypoint.clone()
        } else {
            command.to_vec()
        };
        if !args.is_empty() {
            out.extend(args.iter().cloned());
        } else if command.is_empty() {
            out.extend(self.cmd.iter().cloned());
        }
        out
    }

    /// The image's Env with the container's variables set over it (same name wins,
    /// order kept: image variables first).
    pub fn merged_env(&self, container: &[(String, String)]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .env
            .iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        for (k, v) in container {
            match out.iter_mut().find(|(x, _)| x == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn users_resolve_against_the_images_passwd_and_group() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\napp:x:1001:\nwheel:x:10:app,bob\naudio:x:29:app\n",
        )
        .unwrap();
        let id = |uid, gid, extra: &[u32]| Identity {
            uid,
            gid,
            additional_gids: extra.to_vec(),
        };
        let cases = [
            ("", Ok(id(0, 0, &[]))),
            ("root", Ok(id(0, 0, &[]))),
            ("app", Ok(id(1000, 1001, &[10, 29]))),
            ("1000", Ok(id(1000, 1001, &[10, 29]))),
            ("app:wheel", Ok(id(1000, 10, &[29]))),
            ("4242", Ok(id(4242, 4242, &[]))),
            ("4242:7", Ok(id(4242, 7, &[]))),
            (
                "ghost",
                Err(Error::UnknownUser {
                    user: "ghost".into(),
                }),
            ),
            (
                "app:nogroup",
                Err(Error::UnknownGroup {
                    user: "app:nogroup".into(),
                    group: "nogroup".into(),
                }),
            ),
        ];
        for (user, want) in cases {
            assert_eq!(resolve_user(dir.path(), user), want, "{user:?}");
        }
    }

    #[test]
    fn argv_follows_kubernetes_command_and_args_rules() {
        let img = ImageConfig {
            entrypoint: s(&["/entry"]),
            cmd: s(&["--default"]),
            ..Default::default()
        };
        let cases = [
            (vec![], vec![], s(&["/entry", "--default"])),
            (vec![], s(&["--x"]), s(&["/entry", "--x"])),
            (s(&["/bin/sh"]), vec![], s(&["/bin/sh"])),
            (
                s(&["/bin/sh"]),
                s(&["-c", "true"]),
                s(&["/bin/sh", "-c", "true"]),
            ),
        ];
        for (command, args, want) in cases {
            assert_eq!(img.argv(&command, &args), want, "{command:?} {args:?}");
        }
    }

    #[test]
    fn container_env_overrides_the_images() {
        let img = ImageConfig {
            env: s(&["PATH=/bin", "A=1", "EMPTY"]),
            ..Default::default()
        };
        let got = img.merged_env(&[("A".into(), "2".into()), ("B".into(), "3".into())]);
        let want: Vec<(String, String)> = [("PATH", "/bin"), ("A", "2"), ("EMPTY", ""), ("B", "3")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }
}
