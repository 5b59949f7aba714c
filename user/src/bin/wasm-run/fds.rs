//! The module's file descriptors: 0–2 the standard streams, 3 the root
//! directory (the `--fs-root` directory, preopened as `/`), then files and
//! directories it opens. Files are `weft_user::fs` streams; a directory
//! descriptor is only a path (for `*at` calls and `fd_readdir`).

use crate::errno;
use crate::mem::WasiResult;
use alloc::string::String;
use alloc::vec::Vec;
use embedded_io::{Read, Seek, SeekFrom, Write};
use weft_user::fs::{self, File, FileKind, Metadata, OpenOptions};
use weft_user::{Code, Error, Stream, read_stdin};

/// The preopened root directory's descriptor and name.
pub const ROOT_FD: i32 = 3;
pub const ROOT_NAME: &str = "/";

/// WASI file types.
pub mod filetype {
    pub const UNKNOWN: u8 = 0;
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const DIRECTORY: u8 = 3;
    pub const REGULAR_FILE: u8 = 4;
    pub const SYMBOLIC_LINK: u8 = 7;
}

/// One open descriptor.
pub enum Fd {
    Stdin,
    Stdout,
    Stderr,
    /// A directory, by its absolute guest path.
    Dir(String),
    /// Boxed: a file is much larger than the other kinds.
    File(alloc::boxed::Box<File>),
}

/// The descriptor table.
pub struct Fds {
    table: Vec<Option<Fd>>,
}

/// The WASI errno for a stream error.
pub fn errno_for(e: &Error) -> i32 {
    match e.code() {
        Code::NotFound => errno::NOENT,
        Code::Exists => errno::EXIST,
        Code::NotDirectory => errno::NOTDIR,
        Code::IsDirectory => errno::ISDIR,
        Code::NotEmpty => errno::NOTEMPTY,
        Code::PermissionDenied => errno::ACCES,
        Code::ReadOnly => errno::ROFS,
        Code::Escape => errno::NOTCAPABLE,
        Code::Invalid => errno::INVAL,
        Code::Unsupported => errno::NOTCAPABLE,
        Code::TooLarge => errno::FBIG,
        _ => errno::IO,
    }
}

fn wasi<T>(r: Result<T, Error>) -> WasiResult<T> {
    r.map_err(|e| errno_for(&e))
}

/// The WASI file type of `kind`.
pub fn filetype_of(kind: FileKind) -> u8 {
    match kind {
        FileKind::File => filetype::REGULAR_FILE,
        FileKind::Dir => filetype::DIRECTORY,
        FileKind::Symlink => filetype::SYMBOLIC_LINK,
        FileKind::Other => filetype::UNKNOWN,
    }
}

impl Fds {
    pub fn new() -> Self {
        Self {
            table: alloc::vec![
                Some(Fd::Stdin),
                Some(Fd::Stdout),
                Some(Fd::Stderr),
                Some(Fd::Dir(String::from(ROOT_NAME))),
            ],
        }
    }

    pub fn get(&mut self, fd: i32) -> WasiResult<&mut Fd> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.table.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(errno::BADF)
    }

    fn insert(&mut self, fd: Fd) -> i32 {
        let i = match self.table.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.table.push(None);
                self.table.len() - 1
            }
        };
        self.table[i] = Some(fd);
        i as i32
    }

    pub fn close(&mut self, fd: i32) -> WasiResult<()> {
        self.get(fd)?;
        self.table[fd as usize] = None;
        Ok(())
    }

    /// The absolute guest path of `path` relative to directory `dir`.
    pub fn resolve(&mut self, dir: i32, path: &str) -> WasiResult<String> {
        let Fd::Dir(base) = self.get(dir)? else {
            return Err(errno::NOTDIR);
        };
        if path.starts_with('/') {
            // WASI paths are relative to their directory descriptor.
            return Err(errno::NOTCAPABLE);
        }
        let mut out = base.clone();
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(path);
        Ok(out)
    }

    /// `path_open`: a file (opened as asked) or a directory.
    pub fn open(&mut self, path: &str, want: Open) -> WasiResult<i32> {
        let is_dir = match fs::metadata(path) {
            Ok(m) => m.kind == FileKind::Dir,
            Err(e) if e.code() == Code::NotFound && want.create => false,
            Err(e) => return Err(errno_for(&e)),
        };
        if is_dir {
            if want.write || want.truncate || (want.create && want.exclusive) {
                return Err(errno::ISDIR);
            }
            return Ok(self.insert(Fd::Dir(String::from(path))));
        }
        if want.directory {
            return Err(errno::NOTDIR);
        }
        let file = wasi(
            OpenOptions::new()
                .read(want.read || !want.write)
                .write(want.write)
                .create(want.create)
                .create_new(want.create && want.exclusive)
                .truncate(want.truncate)
                .append(want.append)
                .open(path),
        )?;
        Ok(self.insert(Fd::File(alloc::boxed::Box::new(file))))
    }

    pub fn read(&mut self, fd: i32, buf: &mut [u8]) -> WasiResult<usize> {
        match self.get(fd)? {
            Fd::Stdin => read_stdin(buf).map_err(|_| errno::IO),
            Fd::File(f) => wasi(f.read(buf)),
            Fd::Dir(_) => Err(errno::ISDIR),
            _ => Err(errno::BADF),
        }
    }

    pub fn write(&mut self, fd: i32, bytes: &[u8]) -> WasiResult<usize> {
        let stream = match self.get(fd)? {
            Fd::Stdout => Stream::Stdout,
            Fd::Stderr => Stream::Stderr,
            Fd::File(f) => return wasi(f.write_all(bytes)).map(|()| bytes.len()),
            Fd::Dir(_) => return Err(errno::ISDIR),
            Fd::Stdin => return Err(errno::BADF),
        };
        stream.write_all(bytes).map_err(|_| errno::IO)?;
        Ok(bytes.len())
    }

    pub fn seek(&mut self, fd: i32, to: SeekFrom) -> WasiResult<u64> {
        match self.get(fd)? {
            Fd::File(f) => wasi(f.seek(to)),
            Fd::Dir(_) => Err(errno::ISDIR),
            _ => Err(errno::SPIPE),
        }
    }

    /// The file type and metadata (none for the standard streams).
    pub fn stat(&mut self, fd: i32) -> WasiResult<(u8, Option<Metadata>)> {
        match self.get(fd)? {
            Fd::File(f) => wasi(f.metadata()).map(|m| (filetype_of(m.kind), Some(m))),
            Fd::Dir(path) => {
                let path = path.clone();
                wasi(fs::metadata(&path)).map(|m| (filetype::DIRECTORY, Some(m)))
            }
            _ => Ok((filetype::CHARACTER_DEVICE, None)),
        }
    }

    pub fn sync(&mut self, fd: i32) -> WasiResult<()> {
        match self.get(fd)? {
            Fd::File(f) => wasi(f.sync_all()),
            _ => Ok(()),
        }
    }

    /// The entries of directory `fd`: `.` and `..` first, then the host's.
    pub fn entries(&mut self, fd: i32) -> WasiResult<Vec<(String, u8)>> {
        let Fd::Dir(path) = self.get(fd)? else {
            return Err(errno::NOTDIR);
        };
        let path = path.clone();
        let mut out = alloc::vec![
            (String::from("."), filetype::DIRECTORY),
            (String::from(".."), filetype::DIRECTORY),
        ];
        for e in wasi(fs::read_dir(&path))? {
            out.push((String::from(e.name()), filetype_of(e.file_type())));
        }
        Ok(out)
    }
}

/// What `path_open` asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Open {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub directory: bool,
    pub exclusive: bool,
    pub truncate: bool,
    pub append: bool,
}

/// `path_create_directory`, `path_remove_directory`, `path_unlink_file`,
/// `path_rename`, `path_filestat_get` on absolute guest paths.
pub mod path {
    use super::{WasiResult, wasi};
    use weft_user::fs::{self, Metadata};

    pub fn create_dir(p: &str) -> WasiResult<()> {
        wasi(fs::create_dir(p))
    }
    pub fn remove_dir(p: &str) -> WasiResult<()> {
        wasi(fs::remove_dir(p))
    }
    pub fn remove_file(p: &str) -> WasiResult<()> {
        wasi(fs::remove_file(p))
    }
    pub fn rename(from: &str, to: &str) -> WasiResult<()> {
        wasi(fs::rename(from, to))
    }
    pub fn metadata(p: &str) -> WasiResult<Metadata> {
        wasi(fs::metadata(p))
    }
}
