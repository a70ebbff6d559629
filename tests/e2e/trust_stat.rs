//! Lookups by path of the files that exist only inside the sandbox
//! (/etc/ssl/certs/sandlock-ca.pem, sandlock-bundle.pem and OpenSSL's
//! `<hash>.0`): stat, lstat, statx, access and the xattr reads of `ls -l`
//! find them, with the size of what an open of them reads, and OpenSSL's
//! hashed-directory lookup (which stats before it opens) trusts the
//! sandbox CA. Ordinary files still stat as on the host. Twins: without an
//! HTTP rule the files do not exist in the sandbox, and they never exist
//! on the host.

use crate::common::*;
use std::fs;
use std::path::Path;
use std::process::Command;

const CA_ONLY: &str = "/etc/ssl/certs/sandlock-ca.pem";
const FULL_BUNDLE: &str = "/etc/ssl/certs/sandlock-bundle.pem";
const CERT_DIR: &str = "/etc/ssl/certs";

/// The sandbox-only files never reach the host's disk.
#[track_caller]
fn assert_host_has_none(extra: &[String]) {
    for p in [CA_ONLY, FULL_BUNDLE]
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
    {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "{p} exists on the host after the run"
        );
    }
}

/// `openssl x509 -hash -noout -in CA`, run by the test.
fn subject_hash(ca: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-hash", "-noout", "-in", ca])
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl x509 -hash failed: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// The name sandlock gives the CA in the hashed directory: the first
/// `<hash>.N` the host does not have.
fn hash_name(hash: &str) -> String {
    (0..10)
        .map(|i| format!("{hash}.{i}"))
        .find(|n| !Path::new(CERT_DIR).join(n).exists())
        .expect("a free hash slot")
}

/// The sandbox CA's hashed-directory name, as the workload finds it
/// (`HASH` is its subject hash): `HSTAT N SIZE` for `<hash>.N`.
const HASH_LOOKUP: &str = r#"h=$(openssl x509 -hash -noout -in "$1")
echo "HASH $h"
for i in 0 1 2 3 4 5 6 7 8 9; do
  if cmp -s "$1" "/etc/ssl/certs/$h.$i"; then
    echo "HSTAT $i $(stat -c %s "/etc/ssl/certs/$h.$i")"
    break
  fi
done"#;

/// The value after `KEY ` on its own line of stdout.
#[track_caller]
fn field<'a>(out: &'a Out, key: &str) -> &'a str {
    let prefix = format!("{key} ");
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {key} line\n{}", out.dump()))
}

/// $1: the CA written with --http-ca-out, $2: a directory the workload may
/// write. Prints one "KEY value" line per
/// lookup.
const LOOKUPS: &str = r#"ca=/etc/ssl/certs/sandlock-ca.pem
ls -l "$ca" >/dev/null && echo "LS ok"
echo "STAT $(stat -c %s "$ca")"
echo "MODE $(stat -c '%F %a %h' "$ca")"
echo "BUNDLE $(stat -c %s /etc/ssl/certs/sandlock-bundle.pem)"
echo "BUNDLEREAD $(wc -c < /etc/ssl/certs/sandlock-bundle.pem)"
[ -e "$ca" ] && echo "EXISTS yes"
[ -r "$ca" ] && echo "READABLE yes"
[ -w "$ca" ] || echo "WRITABLE no"
cd /etc/ssl/certs && echo "RELATIVE $(stat -c %s sandlock-ca.pem)"; cd /
ln -s /etc/ssl/certs "$2/certs"
python3 - "$ca" "$2/certs/sandlock-ca.pem" <<'EOF'
import os, stat, sys
p, via = sys.argv[1], sys.argv[2]
print("PY", os.stat(p).st_size, os.lstat(p).st_size, os.path.exists(p),
      os.path.isfile(p), os.access(p, os.R_OK), os.access(p, os.W_OK))
d = os.open("/etc/ssl", os.O_RDONLY | os.O_DIRECTORY)
print("DIRFD", os.stat("certs/sandlock-ca.pem", dir_fd=d).st_size)
print("VIALINK", os.stat(via).st_size, stat.S_ISREG(os.lstat(via).st_mode))
for q in [p + "/", "/tmp/sandlock-ca.pem", "/etc/ssl/certs/sandlock-ca.pem.x"]:
    try:
        os.stat(q)
        print("NOTFOUND", q, "found")
    except OSError as e:
        print("NOTFOUND", q, e.errno)
EOF
echo "HOST $(stat -c %s /etc/hostname)"
openssl verify -no-CAfile -no-CAstore -CApath /etc/ssl/certs "$1"
"#;

both!(sandbox_only_files_answer_stat, |ctx| {
    let d = TempDir::new("trust-stat");
    let ca = d.join("ca.pem");
    let script = format!("{LOOKUPS}\n{HASH_LOOKUP}");
    let out = ctx.sl(run_args(
        &[
            "--http-allow",
            "GET x.test/*",
            "--add-host",
            "x.test:127.0.0.1",
            "--http-ca-out",
            &ca,
            "-w",
            &d.s(),
        ],
        &["/bin/sh", "-c", &script, "sh", &ca, &d.s()],
    ));
    let c = out.dump();
    out.expect_code(0);
    let hash = subject_hash(&ca);
    let name = hash_name(&hash);
    assert_eq!(field(&out, "HASH"), hash, "{c}");
    let size = fs::metadata(&ca).unwrap().len().to_string();

    assert_eq!(field(&out, "LS"), "ok", "{c}");
    assert!(!out.stderr.contains("ls:"), "ls -l complained\n{c}");
    assert_eq!(field(&out, "STAT"), size, "{c}");
    assert_eq!(field(&out, "MODE"), "regular file 444 1", "{c}");
    assert_eq!(field(&out, "EXISTS"), "yes", "{c}");
    assert_eq!(field(&out, "READABLE"), "yes", "{c}");
    assert_eq!(field(&out, "WRITABLE"), "no", "{c}");
    assert_eq!(field(&out, "RELATIVE"), size, "{c}");
    assert_eq!(
        field(&out, "PY"),
        format!("{size} {size} True True True False"),
        "{c}"
    );
    assert_eq!(field(&out, "DIRFD"), size, "{c}");
    // Through a symlinked spelling of the directory.
    assert_eq!(field(&out, "VIALINK"), format!("{size} True"), "{c}");
    // stat agrees with what an open reads.
    assert_eq!(field(&out, "BUNDLE"), field(&out, "BUNDLEREAD"), "{c}");
    // Only the exact sandbox-only paths exist.
    let notfound: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("NOTFOUND "))
        .collect();
    assert_eq!(notfound.len(), 3, "{c}");
    for l in notfound {
        assert!(l.ends_with(" 2") || l.ends_with(" 20"), "{l}\n{c}");
    }
    // OpenSSL's hashed-directory lookup: stat, then open.
    let index = name.rsplit('.').next().unwrap();
    assert_eq!(field(&out, "HSTAT"), format!("{index} {size}"), "{c}");
    assert!(
        out.stdout.lines().any(|l| l == format!("{ca}: OK")),
        "openssl verify -CApath did not find the CA\n{c}"
    );
    // An ordinary file still stats as on the host.
    let hostname = fs::metadata("/etc/hostname").unwrap().len().to_string();
    assert_eq!(field(&out, "HOST"), hostname, "{c}");

    // twin: on the host, the same CApath does not hold the CA.
    let host = Command::new("openssl")
        .args([
            "verify",
            "-no-CAfile",
            "-no-CAstore",
            "-CApath",
            CERT_DIR,
            &ca,
        ])
        .output()
        .unwrap();
    assert!(!host.status.success(), "host verify: {host:?}\n{c}");
    assert_host_has_none(&[format!("{CERT_DIR}/{name}")]);
});

both!(without_an_http_rule_there_is_nothing_to_stat, |ctx| {
    let script = r#"stat -c %s /etc/ssl/certs/sandlock-ca.pem; echo "STAT $?"
[ -e /etc/ssl/certs/sandlock-ca.pem ] || echo "EXISTS no"
python3 -c 'import os
try: os.stat("/etc/ssl/certs/sandlock-ca.pem"); print("PY found")
except OSError as e: print("PY", e.errno)'
echo "HOST $(stat -c %s /etc/hostname)""#;
    let out = ctx.sl(run_args(&[], &["/bin/sh", "-c", script]));
    let c = out.dump();
    out.expect_code(0);
    assert_eq!(field(&out, "STAT"), "1", "{c}");
    assert!(out.stderr.contains("No such file or directory"), "{c}");
    assert_eq!(field(&out, "EXISTS"), "no", "{c}");
    assert_eq!(field(&out, "PY"), "2", "{c}");
    let hostname = fs::metadata("/etc/hostname").unwrap().len().to_string();
    assert_eq!(field(&out, "HOST"), hostname, "{c}");
    assert_host_has_none(&[]);
});
