//! Safe file and directory outputs: every file perfcast writes goes through this module.
//!
//! Rules (issue 19):
//! - **A regular file (or a path that does not exist yet)** is written to a temporary file in the
//!   same directory, synced and renamed over the target ([`write_atomic`], [`AtomicFile`]): a reader
//!   sees the old file or the new one, never a partial one. An existing file keeps its permission
//!   bits; a new one gets `rw-r--r--` (minus the umask).
//! - **A character device or a FIFO** (`--out /dev/null`, `/dev/stdout`, a named pipe) is written
//!   through: opened for writing, never replaced. Opening a FIFO waits for a reader, as a shell's
//!   `>` does. A block device or a socket is refused (a report is never written over a disk).
//! - **A symbolic link** is followed (up to [`MAX_LINKS`] links), and the rules apply to what it
//!   names; the link itself is never replaced.
//! - **Where a directory is needed** ([`ensure_dir`], [`ReportDir`]) only a real directory (or a
//!   path to create) is accepted: a symbolic link, a file or a special file is refused with one
//!   line naming the path and what it is.
//! - **Temporary names** are `.perfcast-<pid>-<random>.tmp` in the target's directory. A process
//!   killed by a signal cannot remove its own; the next write into that directory removes every
//!   such file or directory whose process is no longer running ([`clean_stale`]).
//! - **A report directory is replaced as a whole** ([`ReportDir`]): files are written into a
//!   sibling temporary directory, which is then swapped with the old report in one
//!   `renameat2(RENAME_EXCHANGE)` on Linux (two renames elsewhere, where a reader may briefly find
//!   no directory, but never a mix of old and new files).
//!
//! Races between the check of a path and the write (someone replacing the target meanwhile) are
//! not guarded against: these rules protect users from mistakes, not from other processes.

use crate::error::{Error, Result};
use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

/// Symbolic links followed before a path is refused (as Linux's `MAXSYMLINKS`).
pub const MAX_LINKS: usize = 40;

/// Prefix of every temporary file and directory perfcast creates.
pub const TEMP_PREFIX: &str = ".perfcast-";

/// Suffix of every temporary file and directory perfcast creates.
pub const TEMP_SUFFIX: &str = ".tmp";

/// The marker file at the top of every report directory `perfcast run` writes; only a directory
/// holding it (or an older report: `summary.md` with CSV, PNG, SVG and Markdown files only, or an
/// empty directory) is replaced by the next run.
pub const REPORT_MARKER: &str = ".perfcast-report";

/// What is at a path, in words for error messages.
fn kind_words(m: &Metadata) -> &'static str {
    let t = m.file_type();
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// Whether `m` is a character device or a FIFO, which outputs write through.
fn is_write_through(m: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        t.is_char_device() || t.is_fifo()
    }
    #[cfg(not(unix))]
    {
        let _ = m;
        false
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Follows symbolic links from `path` to the first path that is not one (it may not exist).
///
/// # Errors
/// More than [`MAX_LINKS`] links, or a link that cannot be read.
fn resolve_links(path: &Path) -> Result<(PathBuf, Option<Metadata>)> {
    let mut p = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match std::fs::symlink_metadata(&p) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((p, None)),
            Err(e) => return Err(Error::io(&p, e)),
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(m) => return Ok((p, Some(m))),
        }
    }
    Err(refuse(
        path,
        format!("more than {MAX_LINKS} symbolic links: a loop?"),
    ))
}

/// The directory a file at `path` lives in (`.` for a bare name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// A file being written: either a temporary file renamed over the target by
/// [`AtomicFile::commit`], or a device/FIFO written through. Dropping it without `commit`
/// removes the temporary file (a device already received what was written).
pub struct AtomicFile {
    /// The path the user gave (for error messages).
    path: PathBuf,
    inner: Inner,
}

enum Inner {
    Temp {
        tmp: tempfile::NamedTempFile,
        target: PathBuf,
    },
    Through(File),
}

impl AtomicFile {
    /// Opens `path` for writing under the rules of this module.
    ///
    /// # Errors
    /// [`Error::Output`] for a directory, a block device, a socket or a symbolic-link loop;
    /// [`Error::Io`] when the directory or device cannot be written.
    pub fn create(path: &Path) -> Result<Self> {
        let (target, meta) = resolve_links(path)?;
        if let Some(m) = &meta {
            if is_write_through(m) {
                let f = OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .map_err(|e| Error::io(path, e))?;
                return Ok(AtomicFile {
                    path: path.to_path_buf(),
                    inner: Inner::Through(f),
                });
            }
            if !m.is_file() {
                let what = kind_words(m);
                let linked = if target != path {
                    format!(" (the symbolic link points to {})", target.display())
                } else {
                    String::new()
                };
                return Err(refuse(
                    path,
                    format!("is {what}{linked}: must be a regular file, a path to create, a character device or a FIFO"),
                ));
            }
        }
        let dir = parent_dir(&target);
        clean_stale_once(dir);
        let mut builder = tempfile::Builder::new();
        let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
        builder.prefix(&prefix).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Reports are meant to be shared: rw-r--r-- (the umask still applies), not tempfile's
            // 0600; an existing file keeps its own bits.
            let mode = meta
                .as_ref()
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            builder.permissions(std::fs::Permissions::from_mode(mode));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            inner: Inner::Temp { tmp, target },
        })
    }

    /// Finishes the write: syncs and renames the temporary file over the target (or flushes a
    /// device).
    ///
    /// # Errors
    /// [`Error::Io`] naming the path the caller gave.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        match self.inner {
            Inner::Through(mut f) => f.flush().map_err(|e| Error::io(&path, e)),
            Inner::Temp { mut tmp, target } => {
                tmp.flush().map_err(|e| Error::io(&path, e))?;
                tmp.as_file().sync_all().map_err(|e| Error::io(&path, e))?;
                tmp.persist(&target)
                    .map_err(|e| Error::io(&path, e.error))?;
                Ok(())
            }
        }
    }

    /// The path the caller gave.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.inner {
            Inner::Temp { tmp, .. } => tmp.write(buf),
            Inner::Through(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.inner {
            Inner::Temp { tmp, .. } => tmp.flush(),
            Inner::Through(f) => f.flush(),
        }
    }
}

/// Writes `bytes` to `path` under the rules of this module: a regular file is replaced
/// atomically (a reader never sees a partial file and a failure leaves no file behind); a
/// character device or FIFO is written through; a symbolic link is followed.
///
/// # Errors
/// [`Error::Output`] for a target that cannot hold a file (a directory, a block device, ...),
/// [`Error::Io`] naming `path` when writing fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.commit()
}

/// Checks that `dir` is a real directory or missing (nothing is created): refuses a symbolic
/// link, a regular file or a special file.
///
/// # Errors
/// [`Error::Output`] naming what is at `dir`; [`Error::Io`] when it cannot be inspected.
pub fn check_dir(dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) => Err(refuse(
            dir,
            format!(
                "is {}: must be a directory or a path to create{}",
                kind_words(&m),
                if m.file_type().is_symlink() {
                    " (give the directory the link points to)"
                } else {
                    ""
                }
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(dir, e)),
    }
}

/// Makes sure `dir` is a directory perfcast may write into: creates it (and its parents) when
/// missing; refuses what [`check_dir`] refuses.
///
/// # Errors
/// [`Error::Output`] naming what is at `dir`; [`Error::Io`] when it cannot be created.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    check_dir(dir)?;
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    Ok(())
}

/// Directories already cleaned by this process.
static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

fn clean_stale_once(dir: &Path) {
    let key = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let first = CLEANED
        .lock()
        .map(|mut g| g.get_or_insert_with(HashSet::new).insert(key))
        .unwrap_or(false);
    if first {
        clean_stale(dir);
    }
}

/// The process id in a temporary name `.perfcast-<pid>-<random>.tmp`.
fn temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?.strip_suffix(TEMP_SUFFIX)?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether process `pid` is running (on this machine's process namespace).
fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Ok(p) = libc::pid_t::try_from(pid) else {
            return false;
        };
        if p <= 0 {
            return false;
        }
        // SAFETY: kill with signal 0 sends nothing; it only checks that the process exists.
        let r = unsafe { libc::kill(p, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        // Without a way to ask, keep everything: a live write must never lose its file.
        true
    }
}

/// Removes the temporary files and directories (`.perfcast-<pid>-<random>.tmp`) that processes
/// no longer running left in `dir` (a write killed by a signal). Returns the paths removed.
/// Failures are ignored: cleaning is a courtesy, never a reason to fail a write.
pub fn clean_stale(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let p = e.path();
        let ok = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p).is_ok(),
            Ok(_) => std::fs::remove_file(&p).is_ok(),
            Err(_) => false,
        };
        if ok {
            removed.push(p);
        }
    }
    removed
}

/// Whether an existing directory may be replaced by a new report: it holds [`REPORT_MARKER`], is
/// empty, or is a report written before the marker existed (`summary.md` and only `.csv`,
/// `.png`, `.svg`, `.md` files).
fn replaceable(dir: &Path) -> Result<bool> {
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    if entries.is_empty() || dir.join(REPORT_MARKER).is_file() {
        return Ok(true);
    }
    let legacy = dir.join("summary.md").is_file()
        && entries.iter().all(|e| {
            e.file_type().is_ok_and(|t| t.is_file())
                && Path::new(&e.file_name())
                    .extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| matches!(x, "csv" | "png" | "svg" | "md"))
        });
    Ok(legacy)
}

/// A report directory written as a whole: files go into a sibling temporary directory
/// ([`ReportDir::path`]); [`ReportDir::commit`] swaps it with the old report, so a reader sees
/// the old report or the new one, never a mix. Dropped without `commit`, the temporary
/// directory is removed.
#[derive(Debug)]
pub struct ReportDir {
    out: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl ReportDir {
    /// Checks `out` and creates the staging directory next to it (creating `out`'s parents).
    ///
    /// `out` must be missing, or a directory that an earlier report left (it holds
    /// [`REPORT_MARKER`]), or empty; not a symbolic link, a file or a special file, nor `.`,
    /// `..` or `/`.
    ///
    /// # Errors
    /// [`Error::Output`] naming `out` and what is wrong; [`Error::Io`] when the parent cannot be
    /// written.
    pub fn begin(out: &Path) -> Result<Self> {
        let last = out.components().next_back();
        if !matches!(last, Some(Component::Normal(_))) || out.file_name().is_none() {
            return Err(refuse(
                out,
                "must name a report directory (not ., .. or /): the whole directory is replaced",
            ));
        }
        match std::fs::symlink_metadata(out) {
            Ok(m) if m.is_dir() => {
                if !replaceable(out)? {
                    return Err(refuse(
                        out,
                        format!(
                            "exists and is not a perfcast report (no {REPORT_MARKER} file): \
                             `run` replaces its --out directory as a whole, so give a new or empty directory"
                        ),
                    ));
                }
            }
            Ok(m) => {
                return Err(refuse(
                    out,
                    format!(
                        "is {}: must be a directory or a path to create{}",
                        kind_words(&m),
                        if m.file_type().is_symlink() {
                            " (a report directory is replaced as a whole, so give the directory the link points to)"
                        } else {
                            ""
                        }
                    ),
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(out, e)),
        }
        let parent = parent_dir(out);
        ensure_dir(parent)?;
        clean_stale_once(parent);
        let mut b = tempfile::Builder::new();
        let prefix = format!("{TEMP_PREFIX}{}-", std::process::id());
        b.prefix(&prefix).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            b.permissions(std::fs::Permissions::from_mode(0o755));
        }
        let staging = b.tempdir_in(parent).map_err(|e| Error::io(out, e))?.keep();
        let dir = ReportDir {
            out: out.to_path_buf(),
            staging,
            committed: false,
        };
        write_atomic(
            &dir.staging.join(REPORT_MARKER),
            format!(
                "perfcast {} report directory: the next `perfcast run --out` here replaces it as a whole.\n",
                env!("CARGO_PKG_VERSION")
            )
            .as_bytes(),
        )?;
        Ok(dir)
    }

    /// Where to write the report's files until [`ReportDir::commit`].
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// `p` (under [`ReportDir::path`]) as it will be named once committed.
    pub fn final_path(&self, p: &Path) -> PathBuf {
        p.strip_prefix(&self.staging)
            .map(|rel| self.out.join(rel))
            .unwrap_or_else(|_| p.to_path_buf())
    }

    /// Puts the new report in place of the old one in one step and removes the old one.
    ///
    /// # Errors
    /// [`Error::Io`] naming the output directory.
    pub fn commit(mut self) -> Result<()> {
        let out = self.out.clone();
        let io = |e: std::io::Error| Error::io(&out, e);
        if let Ok(d) = File::open(&self.staging) {
            let _ = d.sync_all();
        }
        match std::fs::symlink_metadata(&out) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::rename(&self.staging, &out).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
            Ok(_) => {
                if exchange(&self.staging, &out).is_err() {
                    // No atomic exchange here: move the old report aside, then the new one in.
                    let aside = self.staging.with_extension("old.tmp");
                    std::fs::rename(&out, &aside).map_err(io)?;
                    std::fs::rename(&self.staging, &out).map_err(io)?;
                    self.staging = aside;
                }
                // `staging` now holds the old report.
                let _ = std::fs::remove_dir_all(&self.staging);
            }
        }
        self.committed = true;
        if let Ok(d) = File::open(parent_dir(&out)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both strings are NUL-terminated and live across the call; AT_FDCWD resolves
    // relative paths against the working directory, as `rename` does.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn regular_file_replaced_atomically_keeping_its_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.csv");
        write_atomic(&p, b"one").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(names(d.path()), vec!["a.csv"]);
    }

    #[test]
    fn missing_directory_fails_and_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("no/such/dir/x.csv");
        assert!(matches!(write_atomic(&p, b"x"), Err(Error::Io { .. })));
        assert!(names(d.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn symlink_is_followed_not_replaced() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("real.csv");
        std::fs::write(&target, "old").unwrap();
        let link = d.path().join("link.csv");
        std::os::unix::fs::symlink("real.csv", &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // A dangling link gets its target created.
        let dangling = d.path().join("dangling.csv");
        std::os::unix::fs::symlink("made.csv", &dangling).unwrap();
        write_atomic(&dangling, b"made").unwrap();
        assert!(std::fs::symlink_metadata(&dangling)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(d.path().join("made.csv")).unwrap(),
            "made"
        );
        // A loop is one clear error.
        let a = d.path().join("loop-a");
        std::os::unix::fs::symlink("loop-b", &a).unwrap();
        std::os::unix::fs::symlink("loop-a", d.path().join("loop-b")).unwrap();
        let e = write_atomic(&a, b"x").unwrap_err().to_string();
        assert!(e.contains("symbolic links"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn dev_null_is_written_through() {
        let before = std::fs::metadata("/dev/null").unwrap();
        write_atomic(Path::new("/dev/null"), b"discarded").unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let after = std::fs::metadata("/dev/null").unwrap();
        assert!(after.file_type().is_char_device());
        assert_eq!(before.ino(), after.ino());
        // /dev/full: the device's own error, naming the path.
        if Path::new("/dev/full").exists() {
            let e = write_atomic(Path::new("/dev/full"), b"x")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("/dev/full: "), "{e}");
            assert!(std::fs::metadata("/dev/full")
                .unwrap()
                .file_type()
                .is_char_device());
        }
    }

    #[cfg(unix)]
    #[test]
    fn fifo_is_written_through() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(&fifo).unwrap())
        };
        write_atomic(&fifo, b"through the pipe").unwrap();
        assert_eq!(reader.join().unwrap(), b"through the pipe");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(names(d.path()), vec!["pipe"]);
    }

    /// A device node in a temporary directory (needs root: CAP_MKNOD); the old code renamed a
    /// regular file over it.
    #[cfg(target_os = "linux")]
    #[test]
    fn device_node_copy_is_not_replaced() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "SKIPPED device_node_copy_is_not_replaced: needs root to mknod (CI runs as root)"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let node = d.path().join("null");
        let c = std::ffi::CString::new(node.to_str().unwrap()).unwrap();
        // SAFETY: a valid path; makedev(1, 3) is /dev/null's device number.
        let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        if r != 0 {
            eprintln!(
                "SKIPPED device_node_copy_is_not_replaced: mknod failed ({}), e.g. in a container without CAP_MKNOD",
                std::io::Error::last_os_error()
            );
            return;
        }
        write_atomic(&node, b"discarded").unwrap();
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::symlink_metadata(&node)
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(names(d.path()), vec!["null"]);
    }

    #[test]
    fn directory_target_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = write_atomic(d.path(), b"x").unwrap_err().to_string();
        assert!(e.contains("is a directory: must be a regular file"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn ensure_dir_refuses_links_files_and_specials() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        ensure_dir(&real.join("a/b")).unwrap();
        assert!(real.join("a/b").is_dir());
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = ensure_dir(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link: must be a directory"), "{e}");
        std::fs::write(d.path().join("f"), "x").unwrap();
        let e = ensure_dir(&d.path().join("f")).unwrap_err().to_string();
        assert!(e.contains("is a regular file"), "{e}");
        let e = ensure_dir(Path::new("/dev/null")).unwrap_err().to_string();
        assert!(e.contains("is a character device"), "{e}");
    }

    #[test]
    fn temp_names_parse() {
        assert_eq!(temp_pid(".perfcast-123-abcdef.tmp"), Some(123));
        assert_eq!(temp_pid(".perfcast-abcdef.tmp"), None);
        assert_eq!(temp_pid(".perfcast-12-.tmp"), None);
        assert_eq!(temp_pid("perfcast-12-x.tmp"), None);
        assert_eq!(temp_pid(".perfcast-report"), None);
    }

    #[cfg(unix)]
    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let d = tempfile::tempdir().unwrap();
        // A process that has exited: its id is not running (until reused, which `wait` makes
        // unlikely within this test).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale_file = d.path().join(format!(".perfcast-{dead}-abc123.tmp"));
        std::fs::write(&stale_file, "debris").unwrap();
        let stale_dir = d.path().join(format!(".perfcast-{dead}-dir999.tmp"));
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("x.csv"), "debris").unwrap();
        let live = d
            .path()
            .join(format!(".perfcast-{}-live00.tmp", std::process::id()));
        std::fs::write(&live, "in progress").unwrap();
        let unrelated = d.path().join(".perfcast-notes.tmp");
        std::fs::write(&unrelated, "not ours").unwrap();
        let mut removed = clean_stale(d.path());
        removed.sort();
        let mut want = vec![stale_file, stale_dir];
        want.sort();
        assert_eq!(removed, want);
        assert!(live.exists() && unrelated.exists());
    }

    #[test]
    fn report_dir_swaps_as_a_whole() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("rep");
        let r = ReportDir::begin(&out).unwrap();
        write_atomic(&r.path().join("a.csv"), b"1").unwrap();
        write_atomic(&r.path().join("b.csv"), b"1").unwrap();
        assert!(!out.exists(), "nothing visible before commit");
        assert_eq!(r.final_path(&r.path().join("a.csv")), out.join("a.csv"));
        r.commit().unwrap();
        assert_eq!(names(&out), vec![REPORT_MARKER, "a.csv", "b.csv"]);
        // The second report has no b.csv: the old one must not survive into the new report.
        let r = ReportDir::begin(&out).unwrap();
        write_atomic(&r.path().join("a.csv"), b"2").unwrap();
        assert_eq!(std::fs::read_to_string(out.join("a.csv")).unwrap(), "1");
        r.commit().unwrap();
        assert_eq!(names(&out), vec![REPORT_MARKER, "a.csv"]);
        assert_eq!(std::fs::read_to_string(out.join("a.csv")).unwrap(), "2");
        assert_eq!(names(d.path()), vec!["rep"], "no temporary left");
        // Dropped without commit: the staging directory goes, the report stays.
        let r = ReportDir::begin(&out).unwrap();
        drop(r);
        assert_eq!(names(d.path()), vec!["rep"]);
    }

    #[cfg(unix)]
    #[test]
    fn report_dir_refuses_what_it_must_not_replace() {
        let d = tempfile::tempdir().unwrap();
        let mine = d.path().join("mine");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("thesis.tex"), "precious").unwrap();
        let e = ReportDir::begin(&mine).unwrap_err().to_string();
        assert!(e.contains("not a perfcast report"), "{e}");
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&mine, &link).unwrap();
        let e = ReportDir::begin(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        for p in [".", "..", "/"] {
            let e = ReportDir::begin(Path::new(p)).unwrap_err().to_string();
            assert!(e.contains("not ., .. or /"), "{p}: {e}");
        }
        // An older report (summary.md + csv/png/svg/md) and an empty directory are replaced.
        let old = d.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(old.join("summary.md"), "# old").unwrap();
        std::fs::write(old.join("s.csv"), "a\n1\n").unwrap();
        ReportDir::begin(&old).unwrap().commit().unwrap();
        assert_eq!(names(&old), vec![REPORT_MARKER]);
        assert_eq!(names(&mine), vec!["thesis.tex"]);
    }
}
