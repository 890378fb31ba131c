//! The owner's Unix socket in the cache folder: where it is, who may connect.
//!
//! The socket is `tiered.sock` in the cache folder. The folder is created 0700 and the socket
//! is set to 0600, so only the user who owns the folder can reach it; the owner also checks
//! each connection's peer credentials and closes one from another user at once. A path too
//! long for a socket address (about 100 bytes) is reached through `/proc/self/fd` on Linux.

use std::fs::File;
use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// The socket's file name in the cache folder.
pub(crate) const SOCKET_FILE: &str = "tiered.sock";

/// The longest path a socket address takes, with room to spare (the limit is 108 on Linux,
/// 104 on macOS, counting the final NUL).
const MAX_ADDRESS: usize = 100;

/// A socket path usable as an address: the path itself when short, else one through an open
/// handle on the folder (kept open as long as the address is used).
struct Address {
    path: PathBuf,
    _folder: Option<File>,
}

fn address(dir: &Path) -> io::Result<Address> {
    let full = dir.join(SOCKET_FILE);
    if full.as_os_str().len() <= MAX_ADDRESS {
        return Ok(Address {
            path: full,
            _folder: None,
        });
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let folder = File::open(dir)?;
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}/{SOCKET_FILE}",
            folder.as_raw_fd()
        ));
        Ok(Address {
            path,
            _folder: Some(folder),
        })
    }
    #[cfg(not(target_os = "linux"))]
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the cache folder's path is too long for a socket address ({} bytes): use a \
             shorter path",
            full.as_os_str().len()
        ),
    ))
}

/// Serves the socket of `dir`, replacing a file left by an owner that died, and returns the
/// listener with the socket file's inode. Only the holder of the database may call this.
pub(crate) fn listen(dir: &Path) -> io::Result<(UnixListener, u64)> {
    let addr = address(dir)?;
    match std::fs::remove_file(dir.join(SOCKET_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&addr.path)?;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = dir.join(SOCKET_FILE);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let inode = std::fs::metadata(&path)?.ino();
    Ok((listener, inode))
}

/// Connects to the owner of `dir`.
pub(crate) fn connect(dir: &Path) -> io::Result<UnixStream> {
    let addr = address(dir)?;
    UnixStream::connect(&addr.path)
}

/// Whether the socket file is still the one this owner bound (`inode`): a later owner may
/// have replaced it. (The bound socket keeps its inode alive, so a new file cannot reuse it.)
pub(crate) fn is_ours(dir: &Path, inode: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(dir.join(SOCKET_FILE)).is_ok_and(|meta| meta.ino() == inode)
}

/// Removes the socket file if it is still the one this owner bound (`inode`).
pub(crate) fn remove(dir: &Path, inode: u64) {
    if is_ours(dir, inode) {
        let _ = std::fs::remove_file(dir.join(SOCKET_FILE));
    }
}

/// The user id of the process at the other end of `stream`.
pub(crate) fn peer_uid(stream: &UnixStream) -> io::Result<u32> {
    use std::os::fd::AsRawFd;
    let fd = stream.as_raw_fd();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut cred = libc::ucred {
            pid: 0,
            uid: 0,
            gid: 0,
        };
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: `cred` and `len` are valid for writes and `len` is `cred`'s size.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&mut cred as *mut libc::ucred).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(cred.uid)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let (mut uid, mut gid) = (0, 0);
        // SAFETY: both out-pointers are valid for writes.
        let rc = unsafe { libc::getpeereid(fd, &mut uid, &mut gid) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(uid)
    }
}

/// This process's effective user id.
pub(crate) fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
