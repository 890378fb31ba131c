//! The owner's socket (see `docs/processes.md`): only its user reaches it, and a bad message
//! costs its sender the connection, never the owner its service.

#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tiered::Cache;

const VERSION: u8 = 1;

/// A hand-made greeting: frame header (version, length) and postcard of
/// `Up { id: 1, request: Hello { pid: 1 } }`.
const HELLO: [u8; 8] = [VERSION, 3, 0, 0, 0, 1, 0, 1];

fn connect(dir: &Path) -> UnixStream {
    let stream = UnixStream::connect(dir.join("tiered.sock")).expect("connect to the owner");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `bytes` (then closes our side if `close`) and reads until the owner closes the
/// connection; returns what it sent back. Fails if the owner keeps it open.
fn owner_answer(dir: &Path, bytes: &[u8], close: bool) -> Vec<u8> {
    let mut stream = connect(dir);
    stream.write_all(bytes).unwrap();
    if close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut back = Vec::new();
    match stream.read_to_end(&mut back) {
        Ok(_) => back,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => back,
        Err(e) => panic!("the owner kept a connection that sent {bytes:?} open: {e}"),
    }
}

#[test]
fn bad_messages_close_their_connection_and_the_owner_keeps_serving() {
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    cache.insert("k", 7u32).unwrap();
    let mode = std::fs::metadata(dir.path().join("tiered.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is its user's only");

    // Another protocol version: an error answer, then the end.
    let answer = owner_answer(dir.path(), &[9, 1, 0, 0, 0, 0], false);
    assert!(!answer.is_empty(), "an error answer before the close");
    // Oversized: a length far past the bound, never allocated.
    owner_answer(dir.path(), &[VERSION, 0xff, 0xff, 0xff, 0xff], false);
    // Truncated: a header promising more than comes.
    owner_answer(dir.path(), &[VERSION, 100, 0, 0, 0, 1, 2, 3], true);
    // A body that does not decode.
    owner_answer(
        dir.path(),
        &[VERSION, 4, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
        false,
    );
    // A request before the greeting.
    owner_answer(dir.path(), &[VERSION, 3, 0, 0, 0, 2, 1, 5], false);
    // A greeting, then noise.
    let mut bytes = HELLO.to_vec();
    bytes.extend_from_slice(&[0x42; 64]);
    owner_answer(dir.path(), &bytes, false);
    // Random bytes, many times.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..50 {
        let len = (seed % 40) as usize + 1;
        let noise: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        owner_answer(dir.path(), &noise, true);
    }

    // The owner still serves: a real client (another process) reads and writes through it.
    let mut child = common::spawn_child("child_reads_k", dir.path(), &[]);
    let status = child.wait().unwrap();
    assert!(status.success(), "a client still reads through the owner");
    assert_eq!(
        cache.get::<_, u32>("from-child").unwrap().as_deref(),
        Some(&8)
    );
}

/// Child: a client of the test's folder: reads `k`, writes `from-child`.
#[test]
#[ignore = "child process of bad_messages_close_their_connection_and_the_owner_keeps_serving"]
fn child_reads_k() {
    let Some(dir) = common::child_dir() else {
        return;
    };
    let cache = Cache::builder()
        .path(&dir)
        .durability(tiered::Durability::Immediate)
        .open_timeout(Duration::from_secs(20))
        .open()
        .unwrap();
    assert!(
        cache.owner_pid().is_some(),
        "the test process owns the folder"
    );
    assert_eq!(cache.get::<_, u32>("k").unwrap().as_deref(), Some(&7));
    cache.insert("from-child", 8u32).unwrap();
}

/// Runs `attempt` in a forked child under the user `nobody` and returns its exit code.
fn as_nobody(attempt: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only makes system calls (setgid, setuid, socket, connect, write,
    // read) before `_exit`, all async-signal-safe; nothing allocates after the fork.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork");
        if pid == 0 {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(90);
            }
            libc::_exit(attempt());
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        assert!(libc::WIFEXITED(status), "the child ended by a signal");
        libc::WEXITSTATUS(status)
    }
}

/// Connects to `path` and greets; 0 if the owner closed the connection without a word (or
/// refused it), 1 if it answered.
fn greet_raw(addr: &libc::sockaddr_un) -> i32 {
    // SAFETY: plain system calls on a socket this function owns; `addr` is initialized.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if fd < 0 {
            return 91;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, (addr as *const libc::sockaddr_un).cast(), len) != 0 {
            return 0;
        }
        libc::write(fd, HELLO.as_ptr().cast(), HELLO.len());
        let mut buf = [0u8; 64];
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        // A greeted client that never acknowledges would hold the owner's writes for 5 s.
        libc::close(fd);
        if n > 0 {
            1
        } else {
            0
        }
    }
}

fn address(path: &Path) -> libc::sockaddr_un {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_os_str().as_bytes();
    assert!(bytes.len() < addr.sun_path.len());
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    addr
}

#[test]
fn a_process_of_another_user_cannot_use_the_socket() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        // Switching to another user needs root; CI runs as root, so this runs there.
        eprintln!("a_process_of_another_user_cannot_use_the_socket: not root, cannot switch user");
        return;
    }
    let dir = common::tempdir();
    let cache = Cache::open(dir.path()).unwrap();
    let socket = dir.path().join("tiered.sock");
    let addr = address(&socket);
    // Our own user is answered (the check below is not vacuous).
    assert_eq!(greet_raw(&addr), 1, "the owner answers its own user");

    // As the folder and socket are made: not even reachable.
    assert_eq!(as_nobody(|| greet_raw(&addr)), 0);
    // With the permissions opened by hand, the owner still refuses another user.
    for p in [dir.path(), &socket] {
        let mut perms = std::fs::metadata(p).unwrap().permissions();
        perms.set_mode(0o777);
        std::fs::set_permissions(p, perms).unwrap();
    }
    let tmp_parent = dir.path().parent().unwrap();
    let parent_mode = std::fs::metadata(tmp_parent).unwrap().permissions().mode();
    assert!(
        parent_mode & 0o001 != 0,
        "the temp folder's parent is reachable by others"
    );
    assert_eq!(
        as_nobody(|| greet_raw(&addr)),
        0,
        "the owner refuses another user"
    );
    cache.insert("still", 1u8).unwrap();
}
