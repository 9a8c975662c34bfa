//! Persistent IP allocation from the podCIDR, like CNI's host-local plugin: one small file
//! per allocated address (`<dir>/<ip>`, content = pod uid), created atomically and
//! exclusively (written under a temporary name, then hard-linked into place, which fails if
//! the address is taken), so an allocation is either fully there or not at all, and pods
//! keep their IPs across agent restarts.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::{io_err, Error, Ipv4Cidr, Result};

/// Remembers the last handed-out address so addresses are reused round-robin, not at once
/// (a just-freed IP may still be in peers' ARP and conntrack tables or endpoint lists).
const LAST_RESERVED: &str = "last_reserved_ip";

/// The allocations of one node (in memory, mirrored on disk).
#[derive(Debug)]
pub struct Ipam {
    dir: PathBuf,
    cidr: Ipv4Cidr,
    by_ip: BTreeMap<Ipv4Addr, String>,
    last: Option<Ipv4Addr>,
}

impl Ipam {
    /// Loads the allocations found in `dir` (created if missing). Allocations outside `cidr`
    /// (the podCIDR changed) are kept and reported until released, but never handed out.
    pub fn open(dir: &Path, cidr: Ipv4Cidr) -> Result<Self> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut by_ip = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(ip) = name.parse::<Ipv4Addr>() {
                let uid = fs::read_to_string(entry.path()).map_err(io_err(entry.path()))?;
                by_ip.insert(ip, uid.trim().to_string());
            } else if name.starts_with(".tmp-") {
                // Left by a crash between write and link; never an allocation.
                let _ = fs::remove_file(entry.path());
            }
        }
        let last = fs::read_to_string(dir.join(LAST_RESERVED))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Ok(Ipam {
            dir: dir.to_path_buf(),
            cidr,
            by_ip,
            last,
        })
    }

    /// The address allocated to `uid`, if any.
    pub fn get(&self, uid: &str) -> Option<Ipv4Addr> {
        self.by_ip
            .iter()
            .find(|(_, u)| u.as_str() == uid)
            .map(|(ip, _)| *ip)
    }

    /// Every allocation as (uid, ip).
    pub fn all(&self) -> Vec<(String, Ipv4Addr)> {
        self.by_ip
            .iter()
            .map(|(ip, uid)| (uid.clone(), *ip))
            .collect()
    }

    /// The address of `uid`: the existing one (re-adoption) or the next free one after the
    /// last handed out.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr> {
        if let Some(ip) = self.get(uid) {
            return Ok(ip);
        }
        let range: Vec<Ipv4Addr> = self.cidr.pod_range().collect();
        let start = match self.last {
            Some(last) => range.iter().position(|ip| *ip == last).map_or(0, |i| i + 1),
            None => 0,
        };
        for i in 0..range.len() {
            let ip = range[(start + i) % range.len()];
            if self.by_ip.contains_key(&ip) {
                continue;
            }
            if self.claim(ip, uid)? {
                self.by_ip.insert(ip, uid.to_string());
                self.last = Some(ip);
                // Only a hint: losing it just restarts the round-robin at the bottom.
                let _ = fs::write(self.dir.join(LAST_RESERVED), ip.to_string());
                return Ok(ip);
            }
        }
        Err(Error::Exhausted {
            cidr: self.cidr.to_string(),
            uid: uid.to_string(),
        })
    }

    /// Releases `uid`'s address; returns it (None if it had none).
    pub fn release(&mut self, uid: &str) -> Result<Option<Ipv4Addr>> {
        let Some(ip) = self.get(uid) else {
            return Ok(None);
        };
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        self.by_ip.remove(&ip);
        Ok(Some(ip))
    }

    /// Forgets every allocation (node cleanup).
    pub fn clear(&mut self) -> Result<()> {
        for (uid, _) in self.all() {
            self.release(&uid)?;
        }
        let _ = fs::remove_file(self.dir.join(LAST_RESERVED));
        Ok(())
    }

    /// Creates `<dir>/<ip>` with `uid` inside, atomically; false if the address is taken
    /// (by a file this process did not know about).
    fn claim(&self, ip: Ipv4Addr, uid: &str) -> Result<bool> {
        let tmp = self.dir.join(format!(".tmp-{ip}-{}", std::process::id()));
        let path = self.dir.join(ip.to_string());
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(uid.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(io_err(&tmp))?;
        drop(f);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_err(path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        Ipv4Cidr::parse(s).unwrap()
    }

    #[test]
    fn allocations_are_unique_stable_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.1.0.0/24")).unwrap();
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(b, Ipv4Addr::new(10, 1, 0, 3));
        assert_eq!(ipam.allocate("a").unwrap(), a, "same uid, same address");
        assert_eq!(
            fs::read_to_string(dir.path().join("10.1.0.2")).unwrap(),
            "a"
        );

        let mut reopened = Ipam::open(dir.path(), cidr("10.1.0.0/24")).unwrap();
        assert_eq!(reopened.get("a"), Some(a));
        assert_eq!(reopened.get("b"), Some(b));
        let c = reopened.allocate("c").unwrap();
        assert_eq!(c, Ipv4Addr::new(10, 1, 0, 4));
    }

    #[test]
    fn a_released_address_is_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.1.0.0/24")).unwrap();
        let a = ipam.allocate("a").unwrap();
        assert_eq!(ipam.release("a").unwrap(), Some(a));
        assert_eq!(ipam.release("a").unwrap(), None, "releasing twice is fine");
        assert_ne!(ipam.allocate("b").unwrap(), a);
        assert!(!dir.path().join(a.to_string()).exists());
    }

    #[test]
    fn a_full_range_is_an_error_naming_the_cidr_and_wraps_around_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.1.0.0/29")).unwrap(); // .2 - .6
        for uid in ["a", "b", "c", "d", "e"] {
            ipam.allocate(uid).unwrap();
        }
        let err = ipam.allocate("f").unwrap_err().to_string();
        assert!(err.contains("10.1.0.0/29") && err.contains('f'), "{err}");
        ipam.release("b").unwrap();
        assert_eq!(ipam.allocate("f").unwrap(), Ipv4Addr::new(10, 1, 0, 3));
    }

    #[test]
    fn an_address_claimed_by_another_process_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.1.0.0/24")).unwrap();
        fs::write(dir.path().join("10.1.0.2"), "other").unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), Ipv4Addr::new(10, 1, 0, 3));
    }

    #[test]
    fn clear_removes_every_allocation_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut ipam = Ipam::open(dir.path(), cidr("10.1.0.0/24")).unwrap();
        ipam.allocate("a").unwrap();
        ipam.allocate("b").unwrap();
        ipam.clear().unwrap();
        assert!(ipam.all().is_empty());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
