//! The containers' root filesystem, assembled from the host once per test
//! process (no registry, no image build tool): busybox (static), curl with
//! the libraries and loader it links, the host's CA bundle (which holds no
//! sandlock CA: trust in the proxy can only come from the splice), the
//! tests' private root at /etc/sandlock-test/root.pem for the
//! supervisor's `upstream-ca`, and users root and nobody.
//!
//! For containerd the same tree becomes an OCI image layout tarball
//! (one uncompressed layer), imported with `ctr images import`.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use crate::common::*;

/// busybox applets the tests use.
const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "env", "grep", "head", "id", "kill", "ls", "nc", "sleep", "touch", "tr",
    "true", "wc", "wget",
];

/// The root filesystem's path.
pub fn rootfs() -> &'static str {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(build).path().to_str().unwrap()
}

fn build() -> TempDir {
    let d = TempDir::new("oci-rootfs");
    for dir in [
        "bin",
        "usr/bin",
        "etc/ssl/certs",
        "etc/sandlock-test",
        "proc",
        "dev",
        "sys",
        "root",
    ] {
        d.dir(dir, 0o755);
    }
    d.dir("tmp", 0o1777);
    copy("/bin/busybox", &d.join("bin/busybox"));
    for applet in APPLETS {
        symlink("busybox", d.join(&format!("bin/{applet}"))).unwrap();
    }
    copy_with_libraries("/usr/bin/curl", d.path());
    copy(
        "/etc/ssl/certs/ca-certificates.crt",
        &d.join("etc/ssl/certs/ca-certificates.crt"),
    );
    copy(
        &tls::tls_files().root_ca,
        &d.join("etc/sandlock-test/root.pem"),
    );
    d.file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
    );
    d.file("etc/group", "root:x:0:\nnogroup:x:65534:\n");
    d
}

/// Copies a file's content (symlinks followed), mode kept.
fn copy(from: &str, to: &str) {
    let to = Path::new(to);
    fs::create_dir_all(to.parent().unwrap()).unwrap();
    fs::copy(from, to).unwrap_or_else(|e| panic!("copy {from}: {e} (scripts/deps.sh installs it)"));
    let mode = fs::metadata(from).unwrap().permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode & 0o7777)).unwrap();
}

/// Copies `program` and everything `ldd` lists for it to the same paths
/// beneath `root`.
fn copy_with_libraries(program: &str, root: &Path) {
    let out = Command::new("ldd").arg(program).output().unwrap();
    assert!(out.status.success(), "ldd {program}");
    let mut files = vec![program.to_string()];
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.trim(),
            None => line.trim(),
        };
        let path = path.split(" (").next().unwrap().trim();
        if path.starts_with('/') {
            files.push(path.to_string());
        }
    }
    for f in files {
        copy(&f, root.join(f.trim_start_matches('/')).to_str().unwrap());
    }
}

/// The root filesystem as an OCI image layout tarball, for containerd.
pub fn image_tar() -> &'static str {
    static TAR: OnceLock<(TempDir, String)> = OnceLock::new();
    &TAR.get_or_init(build_image).1
}

fn build_image() -> (TempDir, String) {
    let d = TempDir::new("oci-image");
    let blobs = d.dir("layout/blobs/sha256", 0o755);
    let layer = d.join("layer.tar");
    run(Command::new("tar").args(["-C", rootfs(), "-cf", &layer, "."]));
    let put = |bytes: &[u8]| -> (String, usize) {
        let tmp = d.join("blob");
        fs::write(&tmp, bytes).unwrap();
        let digest = sha256(&tmp);
        fs::rename(&tmp, format!("{blobs}/{digest}")).unwrap();
        (format!("sha256:{digest}"), bytes.len())
    };
    let (layer_digest, layer_size) = put(&fs::read(&layer).unwrap());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer_digest}"]}},"config":{{"Env":["PATH=/usr/bin:/bin"],"Cmd":["/bin/sh"]}}}}"#
    );
    let (config_digest, config_size) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#
    );
    let (manifest_digest, manifest_size) = put(manifest.as_bytes());
    d.file(
        "layout/index.json",
        &format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest_digest}","size":{manifest_size},"annotations":{{"io.containerd.image.name":"{IMAGE}"}}}}]}}"#
        ),
    );
    d.file("layout/oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#);
    let tar = d.join("image.tar");
    run(Command::new("tar").args(["-C", &d.join("layout"), "-cf", &tar, "."]));
    (d, tar)
}

/// The image's name once imported.
pub const IMAGE: &str = "localhost/sandlock-e2e:1";

fn sha256(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

fn run(cmd: &mut Command) {
    let st = cmd.status().unwrap();
    assert!(st.success(), "{cmd:?}: {st}");
}

/// The root filesystem as a hostile image would make it: every process
/// that loads the dynamic loader or asks libc's NSS runs the image's
/// library (`/etc/ld.so.preload`, and `hosts: evil files` in
/// nsswitch.conf with `libnss_evil.so.2`), which appends "COMM PID" to
/// /shared/loaded.
pub fn hostile_rootfs() -> &'static str {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    static ROOT: OnceLock<String> = OnceLock::new();
    ROOT.get_or_init(|| DIR.get_or_init(build_hostile).join("rootfs"))
}

const EVIL_C: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
__attribute__((constructor)) static void evil(void) {
    char comm[64] = {0}, line[128];
    int c = open("/proc/self/comm", O_RDONLY);
    if (c >= 0) {
        ssize_t n = read(c, comm, sizeof comm - 1);
        if (n > 0 && comm[n - 1] == '\n') comm[n - 1] = 0;
        close(c);
    }
    int fd = open("/shared/loaded", O_WRONLY | O_APPEND | O_CREAT, 0666);
    if (fd < 0) return;
    int n = snprintf(line, sizeof line, "%s %d\n", comm, (int)getpid());
    if (n > 0) write(fd, line, (size_t)n);
    close(fd);
}
"#;

fn build_hostile() -> TempDir {
    let d = TempDir::new("oci-hostile");
    let root = d.join("rootfs");
    run(Command::new("cp").args(["-a", rootfs(), &root]));
    let src = d.file("evil.c", EVIL_C);
    let lib = format!("{root}/lib/evil.so");
    run(Command::new("cc").args(["-shared", "-fPIC", "-o", &lib, &src]));
    fs::copy(
        &lib,
        format!("{root}/lib/x86_64-linux-gnu/libnss_evil.so.2"),
    )
    .unwrap();
    fs::write(format!("{root}/etc/ld.so.preload"), "/lib/evil.so\n").unwrap();
    fs::write(format!("{root}/etc/nsswitch.conf"), "hosts: evil files\n").unwrap();
    d
}

/// The root filesystem with an image's symlinks aimed past the sandbox:
/// `/lib32 -> /` (a system directory granted by name) and the CA bundle
/// `-> /proc/self/environ` (read by the supervisor to splice it).
pub fn symlinked_rootfs() -> &'static str {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    static ROOT: OnceLock<String> = OnceLock::new();
    ROOT.get_or_init(|| {
        let d = DIR.get_or_init(|| {
            let d = TempDir::new("oci-symlinked");
            let root = d.join("rootfs");
            run(Command::new("cp").args(["-a", rootfs(), &root]));
            symlink("/", format!("{root}/lib32")).unwrap();
            let bundle = format!("{root}/etc/ssl/certs/ca-certificates.crt");
            fs::remove_file(&bundle).unwrap();
            symlink("/proc/self/environ", &bundle).unwrap();
            d
        });
        d.join("rootfs")
    })
}
