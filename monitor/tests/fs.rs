//! File-system streams end to end (PROTOCOL.md §10): each test boots a real
//! guest running a bundled `cat`, `ls` or `cp` against a temporary
//! `--fs-root`.

mod common;

use common::{TempDir, weft};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Output;

/// A temporary directory holding `root/` (the guest's `/`) and files next to
/// it; removed on drop.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = TempDir::new(&format!("fs-{name}"));
        fs::create_dir_all(dir.join("root")).unwrap();
        Self { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    fn root_arg(&self) -> String {
        self.root().display().to_string()
    }

    /// Runs `weft run --timeout 60 OPTIONS... PROGRAM ARGS...`.
    fn run(&self, options: &[&str], program: &[&str]) -> Output {
        weft()
            .args(["run", "--timeout", "60"])
            .args(options)
            .args(program)
            .output()
            .expect("spawn weft")
    }

    fn run_in_root(&self, program: &[&str]) -> Output {
        let root = self.root_arg();
        self.run(&["--fs-root", &root], program)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic pseudo-random bytes (xorshift).
fn pattern(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn cat_copies_files_byte_exact() {
    let s = Scratch::new("cat");
    let small = pattern(100_000, 1);
    fs::write(s.root().join("small"), &small).unwrap();
    fs::write(s.root().join("empty"), b"").unwrap();
    fs::create_dir(s.root().join("sub")).unwrap();
    fs::write(s.root().join("sub/text"), b"hello\n").unwrap();
    let o = s.run_in_root(&["cat", "/small", "empty", "sub/text", "/sub/../sub/text"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut want = small;
    want.extend_from_slice(b"hello\nhello\n");
    assert!(
        o.stdout == want,
        "output differs ({} bytes)",
        o.stdout.len()
    );
}

#[test]
fn cat_copies_a_100_mib_file() {
    let s = Scratch::new("big");
    let big = pattern(100 << 20, 7);
    fs::write(s.root().join("big"), &big).unwrap();
    let o = s.run_in_root(&["cat", "/big"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(o.stdout.len(), big.len());
    assert!(o.stdout == big, "100 MiB output differs");
}

#[test]
fn cat_goes_on_after_a_missing_file() {
    let s = Scratch::new("missing");
    fs::write(s.root().join("b"), b"bee\n").unwrap();
    fs::create_dir(s.root().join("dir")).unwrap();
    let o = s.run_in_root(&["cat", "a", "dir", "b"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(o.stdout, b"bee\n");
    let err = stderr(&o);
    assert!(err.contains("cat: not found: open a"), "{err}");
    assert!(err.contains("cat: is a directory: open dir"), "{err}");
}

#[test]
fn escapes_are_refused_and_show_nothing() {
    let s = Scratch::new("escape");
    fs::write(s.dir.join("secret"), b"SECRET\n").unwrap();
    symlink("/etc", s.root().join("etc-link")).unwrap();
    symlink(s.dir.join("secret"), s.root().join("secret-link")).unwrap();
    symlink("../secret", s.root().join("up-link")).unwrap();
    for path in [
        "../secret",
        "/../../etc/passwd",
        "etc-link/passwd",
        "secret-link",
        "up-link",
    ] {
        let o = s.run_in_root(&["cat", path]);
        assert_eq!(o.status.code(), Some(1), "{path}");
        assert!(o.stdout.is_empty(), "{path} printed something");
        let err = stderr(&o);
        let want = format!("cat: path leaves the file-system root: open {path}");
        assert!(err.contains(&want), "{path}: {err}");
    }
}

#[test]
fn cp_and_ls_work_inside_the_root() {
    let s = Scratch::new("cp");
    let data = pattern(300_000, 3);
    fs::write(s.root().join("src"), &data).unwrap();
    fs::create_dir(s.root().join("dir")).unwrap();
    symlink("src", s.root().join("link")).unwrap();
    let o = s.run_in_root(&["cp", "/src", "/dir/dst"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(fs::read(s.root().join("dir/dst")).unwrap() == data);

    let o = s.run_in_root(&["ls", "/"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "dir/\nlink\nsrc\n");
    let o = s.run_in_root(&["ls", "dir"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "dst\n");
    let o = s.run_in_root(&["ls", "nowhere"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("ls: not found: list nowhere"),
        "{}",
        stderr(&o)
    );
}

/// 2000 entries of 49 bytes need two `ENTRIES` frames.
#[test]
fn ls_lists_directories_of_many_frames() {
    let s = Scratch::new("many");
    let names: Vec<String> = (0..2000)
        .map(|i| format!("{i:05}-{}", "x".repeat(40)))
        .collect();
    for n in &names {
        fs::write(s.root().join(n), b"").unwrap();
    }
    let o = s.run_in_root(&["ls"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want: String = names.iter().map(|n| format!("{n}\n")).collect();
    assert!(
        String::from_utf8_lossy(&o.stdout) == want,
        "listing differs"
    );
}

#[test]
fn read_only_roots_refuse_writes() {
    let s = Scratch::new("ro");
    fs::write(s.root().join("src"), b"data").unwrap();
    let root = s.root_arg();
    let o = s.run(&["--fs-root", &root, "--read-only"], &["cp", "src", "dst"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("cp: read-only file system: open for writing dst"),
        "{err}"
    );
    assert!(!s.root().join("dst").exists());
    // Reading still works.
    let o = s.run(&["--fs-root", &root, "--read-only"], &["cat", "src"]);
    assert_eq!((o.status.code(), &o.stdout[..]), (Some(0), &b"data"[..]));
}

#[test]
fn without_fs_root_files_are_unavailable() {
    let s = Scratch::new("none");
    let o = s.run(&[], &["cat", "/anything"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let err = stderr(&o);
    assert!(err.contains("--fs-root"), "{err}");
}

#[test]
fn a_missing_root_is_a_usage_error() {
    let s = Scratch::new("noroot");
    let missing = s.dir.join("nope");
    let o = s.run(&["--fs-root", missing.to_str().unwrap()], &["ls"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn a_write_past_the_largest_file_size_is_refused_and_makes_no_sparse_file() {
    let s = Scratch::new("toolarge");
    let root = s.root_arg();
    let o = s.run(
        &["--fs-root", &root],
        &[&common::guest_program("stream-errors"), "grow", "/big"],
    );
    let (out, err) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(
        out.contains(
            "write at 2^40: Some(TooLarge) (write at offset 1099511627776: the file would \
             grow to 1099511627777 bytes, past the largest a guest may make \
             (68719476736 bytes, 64 GiB))\n"
        ),
        "{out}"
    );
    // The stream goes on: a write below the limit lands.
    assert!(out.contains("write at 0: Ok(1)\nsize: 1\n"), "{out}");
    let big = fs::metadata(s.root().join("big")).unwrap();
    assert_eq!(big.len(), 1, "no sparse file was made");
}

#[test]
fn a_quota_refuses_growth_past_it_and_counts_a_truncated_file_as_freed() {
    let s = Scratch::new("quota");
    let data = pattern(300_000, 5);
    fs::write(s.root().join("src"), &data).unwrap();
    fs::write(s.root().join("old"), pattern(300_000, 6)).unwrap();
    let root = s.root_arg();
    // Files found there are not charged; a copy of 300,000 bytes is.
    let o = s.run(
        &["--stats", "--fs-root", &root, "--fs-quota", "200K"],
        &["cp", "src", "dst"],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("fs_quota: added=196608 limit=204800 refused=1"),
        "{err}"
    );
    assert!(
        err.contains("file-system quota used up (--fs-quota)")
            && err.contains("would pass --fs-quota 204800"),
        "{err}"
    );
    let copied = fs::read(s.root().join("dst")).unwrap();
    assert!(copied.len() <= 200 << 10 && data.starts_with(&copied));
    let o = s.run(
        &["--fs-root", &root, "--fs-quota", "300000"],
        &["cp", "src", "dst2"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // Overwriting a file first frees what it held: no net growth.
    let o = s.run(
        &["--fs-root", &root, "--fs-quota", "1000"],
        &["cp", "src", "old"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(fs::read(s.root().join("old")).unwrap() == data);
}

#[test]
fn a_wasi_program_past_the_quota_sees_edquot() {
    let s = Scratch::new("quota-wasi");
    fs::write(s.root().join("a.txt"), b"hello").unwrap();
    let program = common::target().join("wasm/conformance/file_write.wasm");
    let root = s.root_arg();
    let o = s.run(
        &["--fs-root", &root, "--fs-quota", "8"],
        &[program.to_str().unwrap()],
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    // 6 bytes fit; the hole's byte at 10 and 3 more at 6 would not.
    for line in [
        "write: 6\n",
        "pwrite at 10 (hole): -1 EDQUOT\n",
        "write after the hole: -1 EDQUOT\n",
        "content of new.txt: \"abXYef\"\n",
        "content of a.txt: \"Jello\"\n",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
}
