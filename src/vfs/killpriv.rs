//! Clearing the set-user-ID and set-group-ID bits of a regular file when its contents or
//! owner change ("kill-priv"), by Linux's rules. The mount takes this over from the kernel
//! (`FUSE_HANDLE_KILLPRIV`): the kernel's own FUSE fallback keeps set-group-ID on a file
//! without group-execute and does nothing for `fallocate`.
//!
//! - A write, truncation or `fallocate` by a caller without `CAP_FSETID` clears set-user-ID,
//!   and set-group-ID when the file is group-executable or the caller is not in its group.
//! - A change of owner or group clears set-user-ID always (root included) and set-group-ID
//!   when the file is group-executable or the caller is neither in its group nor holds
//!   `CAP_FSETID`.
//!
//! The caller's capabilities and groups come from `/proc/<pid>/status`, read only when a
//! file with one of the bits set is changed (rare), so ordinary writes cost nothing.

use crate::meta::Kind;

const S_ISUID: u16 = 0o4000;
const S_ISGID: u16 = 0o2000;
const S_IXGRP: u16 = 0o0010;
/// `CAP_FSETID`'s bit in the capability sets of `/proc/<pid>/status`.
const CAP_FSETID: u32 = 4;
/// Most supplementary groups read from `/proc` (Linux allows 65536).
const MAX_GROUPS: usize = 65536;

/// What kill-priv needs to know about the process making a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Whether it holds `CAP_FSETID`.
    pub fsetid: bool,
    /// Its file system group and supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The process `pid` acting as `uid`/`gid` (the request's): its effective capabilities
    /// and groups from `/proc/<pid>/status`; when that cannot be read (pid 0, or gone), root
    /// counts as holding `CAP_FSETID` and only `gid` as its group.
    pub fn of_request(uid: u32, gid: u32, pid: u32) -> Caller {
        let status = if pid == 0 {
            None
        } else {
            std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
        };
        match status.as_deref().and_then(|s| parse_status(s, gid)) {
            Some(caller) => caller,
            None => Caller {
                fsetid: uid == 0,
                groups: vec![gid],
            },
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.groups.contains(&gid)
    }
}

/// Whether `perm` of a `kind` carries a bit kill-priv may clear (the cheap test done before
/// anything else).
pub fn has_setid(kind: Kind, perm: u16) -> bool {
    kind == Kind::File && perm & (S_ISUID | S_ISGID) != 0
}

/// The permission bits of a regular file in group `file_gid` after `caller` wrote,
/// truncated or fallocated it.
pub fn after_modify(perm: u16, file_gid: u32, caller: &Caller) -> u16 {
    if caller.fsetid {
        return perm;
    }
    let mut perm = perm & !S_ISUID;
    if perm & S_ISGID != 0 && (perm & S_IXGRP != 0 || !caller.in_group(file_gid)) {
        perm &= !S_ISGID;
    }
    perm
}

/// The permission bits of a regular file in group `file_gid` after `caller` changed its
/// owner or group.
pub fn after_chown(perm: u16, file_gid: u32, caller: &Caller) -> u16 {
    let mut perm = perm & !S_ISUID;
    if perm & S_ISGID != 0 && (perm & S_IXGRP != 0 || !(caller.fsetid || caller.in_group(file_gid)))
    {
        perm &= !S_ISGID;
    }
    perm
}

/// The caller described by a `/proc/<pid>/status` text; `fsgid` is the request's group.
fn parse_status(status: &str, fsgid: u32) -> Option<Caller> {
    let mut fsetid = None;
    let mut groups = vec![fsgid];
    for line in status.lines() {
        if let Some(hex) = line.strip_prefix("CapEff:") {
            let caps = u64::from_str_radix(hex.trim(), 16).ok()?;
            fsetid = Some(caps & (1 << CAP_FSETID) != 0);
        } else if let Some(list) = line.strip_prefix("Groups:") {
            groups.extend(
                list.split_whitespace()
                    .take(MAX_GROUPS)
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
    }
    Some(Caller {
        fsetid: fsetid?,
        groups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(groups: &[u32]) -> Caller {
        Caller {
            fsetid: false,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn modification_by_an_unprivileged_caller_follows_linux() {
        // xfstests generic/683-685: a user outside the file's group (0).
        let other = user(&[100]);
        assert_eq!(after_modify(0o6666, 0, &other), 0o666, "non-exec");
        assert_eq!(after_modify(0o6676, 0, &other), 0o676, "group-exec");
        assert_eq!(after_modify(0o6766, 0, &other), 0o766, "user-exec");
        assert_eq!(after_modify(0o6777, 0, &other), 0o777, "all-exec");
        assert_eq!(after_modify(0o2666, 0, &other), 0o666, "sgid only");
        assert_eq!(after_modify(0o2676, 0, &other), 0o676);
        // A member of the file's group keeps set-group-ID without group-execute.
        let member = user(&[100, 0]);
        assert_eq!(after_modify(0o6666, 0, &member), 0o2666);
        assert_eq!(after_modify(0o2676, 0, &member), 0o676);
        assert_eq!(after_modify(0o0666, 0, &other), 0o666, "nothing to clear");
    }

    #[test]
    fn a_caller_with_cap_fsetid_keeps_the_bits_on_modification() {
        let root = Caller {
            fsetid: true,
            groups: vec![0],
        };
        for perm in [0o6666, 0o6676, 0o6766, 0o6777] {
            assert_eq!(after_modify(perm, 5, &root), perm);
        }
    }

    #[test]
    fn chown_clears_set_user_id_even_for_root() {
        let root = Caller {
            fsetid: true,
            groups: vec![0],
        };
        assert_eq!(after_chown(0o6755, 5, &root), 0o755, "group-exec: both");
        assert_eq!(
            after_chown(0o6745, 5, &root),
            0o2745,
            "no group-exec: sgid kept"
        );
        assert_eq!(after_chown(0o2745, 5, &user(&[7])), 0o745);
        assert_eq!(after_chown(0o2745, 5, &user(&[5])), 0o2745);
    }

    #[test]
    fn proc_status_gives_capabilities_and_groups() {
        let status = "Name:\tcat\nUid:\t65534\t65534\t65534\t65534\n\
                      Groups:\t10 20 \nCapEff:\t0000000000000000\n";
        assert_eq!(
            parse_status(status, 65534),
            Some(Caller {
                fsetid: false,
                groups: vec![65534, 10, 20]
            })
        );
        let root = "Groups:\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_status(root, 0).map(|c| c.fsetid), Some(true));
        assert_eq!(parse_status("Name:\tx\n", 0), None, "no CapEff line");
        assert!(!Caller::of_request(65534, 65534, 0).fsetid, "pid 0: by uid");
        assert!(Caller::of_request(0, 0, 0).fsetid);
    }

    #[test]
    fn only_regular_files_with_a_bit_set_qualify() {
        assert!(has_setid(Kind::File, 0o4644));
        assert!(has_setid(Kind::File, 0o2644));
        assert!(!has_setid(Kind::File, 0o1777));
        assert!(!has_setid(Kind::Directory, 0o2755));
    }
}
