//! The fixture tree every program starts from, and a snapshot of a tree
//! for comparing what programs left behind.

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Builds the fixture in `root` (which must not exist): files with content,
/// nested and empty directories, relative symlinks to a file and to a
/// directory, a dangling symlink, a loop, symlinks leaving the root
/// (relative and absolute), and a read-only file.
pub fn build(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::create_dir(root.join("emptydir")).unwrap();
    for (path, content) in [
        ("a.txt", "hello\n"),
        ("b.txt", "one\ntwo\nthree\n"),
        ("empty.txt", ""),
        ("ro.txt", "read only\n"),
        ("dir/c.txt", "c\n"),
        ("dir/sub/d.txt", "d\n"),
    ] {
        fs::write(root.join(path), content).unwrap();
    }
    fs::set_permissions(root.join("ro.txt"), fs::Permissions::from_mode(0o444)).unwrap();
    for (link, target) in [
        ("link-file", "a.txt"),
        ("link-dir", "dir"),
        ("dir/link-up", "../b.txt"),
        ("dangling", "missing.txt"),
        ("loop-a", "loop-b"),
        ("loop-b", "loop-a"),
        ("escape", "../outside"),
        ("abs-link", "/a.txt"),
    ] {
        symlink(target, root.join(link)).unwrap();
    }
}

/// Every entry under `root`, one line each in path order: the relative
/// path, the kind, the permission bits (files and directories) and the
/// content (a file's, escaped, or its length and hash when long or binary)
/// or the target (a symlink's).
pub fn snapshot(root: &Path) -> String {
    let mut out = String::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut String) {
    let mut entries: Vec<_> = match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(e) => {
            let _ = writeln!(out, "{}: unreadable ({e})", rel(root, dir));
            return;
        }
    };
    entries.sort();
    for path in entries {
        let meta = fs::symlink_metadata(&path).unwrap();
        let name = rel(root, &path);
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&path).unwrap();
            let _ = writeln!(out, "{name} symlink -> {}", target.display());
        } else if meta.is_dir() {
            let _ = writeln!(out, "{name}/ dir {mode:o}");
            walk(root, &path, out);
        } else if meta.is_file() {
            let content = fs::read(&path).unwrap();
            let _ = writeln!(out, "{name} file {mode:o} {}", describe(&content));
        } else {
            let _ = writeln!(out, "{name} other {mode:o}");
        }
    }
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap().display().to_string()
}

/// Short UTF-8 content as an escaped string, anything else as its length
/// and FNV-1a hash.
fn describe(content: &[u8]) -> String {
    match std::str::from_utf8(content) {
        Ok(text) if text.len() <= 256 => format!("{text:?}"),
        _ => {
            let hash = content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            format!("{} bytes, fnv1a {hash:016x}", content.len())
        }
    }
}
