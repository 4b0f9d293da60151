//! The binary under test, installed the way an administrator would:
//! root-owned, mode 4755, in a private directory under /tmp.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Per-process directories are named `<PREFIX><pid>.<nanos>`.
const PREFIX: &str = "netsetgo-e2e.";

static RUN_DIR: OnceLock<PathBuf> = OnceLock::new();
static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The workspace root (this crate lives in `<root>/tests`).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// This test process's private directory under /tmp (root, 0755), made
/// once; leftovers of earlier runs whose process is gone are removed first.
fn run_dir() -> &'static Path {
    RUN_DIR.get_or_init(|| {
        remove_stale_run_dirs();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = PathBuf::from(format!("/tmp/{PREFIX}{}.{nanos}", std::process::id()));
        fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        chown(&dir, Some(0), Some(0)).expect("chown run dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod run dir");
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(remove_run_dir) };
        dir
    })
}

extern "C" fn remove_run_dir() {
    if let Some(dir) = RUN_DIR.get() {
        let _ = fs::remove_dir_all(dir);
    }
}

fn remove_stale_run_dirs() {
    let Ok(entries) = fs::read_dir("/tmp") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A fresh directory for one test's files (root, 0755) inside this
/// process's private directory, e.g. for fake programs or markers.
pub fn scratch_dir(tag: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = run_dir().join(format!("{tag}.{n}"));
    fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
    dir
}

/// The installed copy of the static release binary: root:root, 4755, in a
/// private directory under /tmp. Built (or taken from `NETSETGO_BIN`) once
/// per test process; the system user it works as is made as the packages
/// make it.
pub fn installed_binary() -> &'static Path {
    BINARY.get_or_init(|| {
        crate::users::ensure_worker();
        let source = match std::env::var_os("NETSETGO_BIN") {
            Some(path) => PathBuf::from(path),
            None => build_static(),
        };
        let dir = run_dir().join("bin");
        fs::create_dir(&dir).expect("create bin dir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod bin dir");
        let installed = dir.join("netsetgo");
        install_program(&source, &installed, 0o4755);
        let mode = fs::metadata(&installed)
            .expect("stat binary")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o4755, "installed binary mode");
        installed
    })
}

/// Copies the program `source` to `dest` (which must not exist), owned by
/// root:root with `mode`, ready to be executed.
///
/// The copy is written by a child `cp`, never through a descriptor of this
/// process: tests run in parallel threads that fork (every `Command`), and a
/// child forked while this process held the new file open for writing keeps
/// that descriptor until it execs (O_CLOEXEC closes it only then). An exec
/// of the file meanwhile fails with ETXTBSY ("Text file busy"), as the
/// kernel refuses to run a file that any process has open for writing; a
/// rename after the write would not help, since the inode stays the same.
pub fn install_program(source: &Path, dest: &Path, mode: u32) {
    let out = Command::new("cp")
        .arg("--no-preserve=all")
        .arg("--")
        .arg(source)
        .arg(dest)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run cp: {e}"));
    assert!(
        out.status.success(),
        "cp {} {}: {}",
        source.display(),
        dest.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    chown(dest, Some(0), Some(0)).unwrap_or_else(|e| panic!("chown {}: {e}", dest.display()));
    // After the chown, which would clear a set-user-ID bit.
    fs::set_permissions(dest, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {:o} {}: {e}", mode, dest.display()));
}

/// Writes a program (a script) to `dest` as [`install_program`] installs
/// one: the text goes to a file beside it that is never executed, and a
/// child copies it.
pub fn write_program(dest: &Path, text: &str, mode: u32) {
    let mut name = dest.file_name().expect("a file name").to_os_string();
    name.push(".text");
    let text_file = dest.with_file_name(name);
    fs::write(&text_file, text).unwrap_or_else(|e| panic!("write {}: {e}", text_file.display()));
    install_program(&text_file, dest, mode);
    let _ = fs::remove_file(&text_file);
}

/// Runs `scripts/build-static` and returns the path it prints last.
fn build_static() -> PathBuf {
    let script = workspace_root().join("scripts/build-static");
    let out = Command::new("timeout")
        .arg("1800")
        .arg(&script)
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "{} failed ({}); set NETSETGO_BIN to use a prebuilt binary",
        script.display(),
        out.status
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| PathBuf::from(l.trim()))
        .unwrap_or_else(|| panic!("{} printed no path", script.display()));
    assert!(
        path.is_file(),
        "build-static printed {}, not a file",
        path.display()
    );
    path
}
