//! The system view of `/etc` (issue 12, item 8): entries that are not
//! world-readable (a directory: not world-searchable) stay out, even when
//! sandlock runs as root, whatever their name; the rest of `/etc`, and the
//! rest of a directory that holds one, stays visible.
//!
//! The entries are made by the test (as root) under `/etc` with unique
//! names and removed when it ends, even when it fails.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// Entries under `/etc` that exist while the value lives.
struct EtcEntries {
    prefix: String,
    made: Vec<PathBuf>,
}

impl EtcEntries {
    fn new(tag: &str) -> EtcEntries {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        EtcEntries {
            prefix: format!("/etc/sandlock-e2e-{tag}-{}-{nanos:x}", std::process::id()),
            made: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> String {
        format!("{}-{rel}", self.prefix)
    }

    /// A file `PREFIX-rel` with `content` and `mode`.
    fn file(&mut self, rel: &str, content: &str, mode: u32) -> String {
        let p = self.path(rel);
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        if !rel.contains('/') {
            self.made.push(PathBuf::from(&p));
        }
        p
    }

    /// A directory `PREFIX-rel` with `mode` (root writes into it all the
    /// same).
    fn dir(&mut self, rel: &str, mode: u32) -> String {
        let p = self.path(rel);
        fs::create_dir(&p).unwrap();
        self.made.push(PathBuf::from(&p));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }
}

impl Drop for EtcEntries {
    fn drop(&mut self) {
        for p in &self.made {
            let _ = fs::remove_dir_all(p).or_else(|_| fs::remove_file(p));
        }
    }
}

both!(etc_entries_only_their_owner_may_read_stay_out, |ctx| {
    if !is_root() {
        eprintln!("skipped: creating entries in /etc needs root");
        return;
    }
    let mut etc = EtcEntries::new(if ctx.drop_to_nobody {
        "nobody"
    } else {
        "invoker"
    });
    // what only root may read: a 0600 file, and a 0700 directory whose
    // file is itself world-readable (the directory keeps it out)
    let secret = etc.file("secret.conf", "wg-private-key\n", 0o600);
    let closed = etc.dir("closed", 0o700);
    let inner = etc.file("closed/inner.conf", "nm-psk\n", 0o644);
    // a world-readable directory holding both kinds: only its 0600 file
    // stays out
    let mixed = etc.dir("mixed", 0o755);
    let key = etc.file("mixed/key.pem", "letsencrypt-key\n", 0o600);
    let conf = etc.file("mixed/site.conf", "mixed-public\n", 0o644);
    // the twin: a world-readable file next to them
    let public = etc.file("public.conf", "public-setting\n", 0o644);
    // outside the sandbox, root reads every one of them: what follows is
    // the sandbox's doing
    for p in [&secret, &inner, &key] {
        assert!(fs::read_to_string(p).is_ok(), "{p}");
    }

    let ops: Vec<String> = vec![
        format!("read,{secret}"),
        format!("read,{inner}"),
        format!("read,{key}"),
        format!("read,{conf}"),
        format!("read,{public}"),
        format!("listdir,{closed}"),
        format!("listdir,{mixed}"),
    ];
    let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = ctx.sl(probe_args(&[], &ops));
    let c = out.dump();
    out.expect_code(0);
    for (i, what) in [
        (0, "0600 file"),
        (1, "file in a 0700 dir"),
        (2, "0600 file in a 0755 dir"),
    ] {
        assert_eq!(
            out.probe_nth("read", i),
            Err("EACCES".into()),
            "{what}\n{c}"
        );
    }
    assert_eq!(
        out.probe_nth("read", 3),
        Ok("mixed-public\\n".into()),
        "{c}"
    );
    assert_eq!(
        out.probe_nth("read", 4),
        Ok("public-setting\\n".into()),
        "{c}"
    );
    // Names below a directory walked entry by entry may be listed (Landlock
    // grants listing beneath it, see README), contents not: as root the
    // closed directory lists its one name; as 65534 its mode refuses.
    let closed_listing = match ctx.as_root() {
        true => Ok("1".to_string()),
        false => Err("EACCES".to_string()),
    };
    assert_eq!(out.probe_nth("listdir", 0), closed_listing, "{c}");
    assert_eq!(out.probe_nth("listdir", 1), Ok("2".into()), "{c}");
    for leaked in ["wg-private-key", "nm-psk", "letsencrypt-key"] {
        assert!(!out.stdout.contains(leaked), "{leaked} leaked\n{c}");
    }
});
