//! Turns off Nagle's algorithm on the provider's gRPC sockets.
//!
//! tf-provider 0.2.2 binds and accepts Terraform's connection itself and leaves
//! `TCP_NODELAY` off; a gRPC response written in two segments then waits for Terraform's
//! delayed ACK, about 40 ms, several times per plan. tf-provider offers no way to set socket
//! options, so for the first seconds of the process a thread finds the process's own TCP
//! sockets in `/proc/self/fd` and sets `TCP_NODELAY` on them: on the listener (Linux passes
//! it on to accepted sockets) and on the accepted connection. Compiled on Linux only.

use std::collections::HashSet;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

/// How long the thread looks for new sockets.
const WATCH: Duration = Duration::from_secs(10);
/// How often it looks until it has found Terraform's connection.
const EAGER: Duration = Duration::from_millis(1);
/// How often it looks afterwards.
const RELAXED: Duration = Duration::from_millis(100);

/// Starts the watching thread.
pub fn start() {
    let _ = std::thread::Builder::new()
        .name("nodelay".into())
        .spawn(watch);
}

fn watch() {
    let started = Instant::now();
    let mut done = HashSet::new();
    let mut connected = false;
    while started.elapsed() < WATCH {
        connected |= sweep(&mut done);
        std::thread::sleep(if connected { RELAXED } else { EAGER });
    }
}

/// Sets `TCP_NODELAY` on every TCP socket not seen before; returns whether one of them is
/// a connection (not a listener).
fn sweep(done: &mut HashSet<i32>) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return true;
    };
    let mut connected = false;
    for entry in entries.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket || done.contains(&fd) {
            continue;
        }
        // SAFETY: the descriptor is only borrowed for the calls below. Should it be closed
        // and reused meanwhile, the calls act on (or fail on) whatever it names then:
        // setting TCP_NODELAY on any TCP socket of this process is harmless.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let socket = socket2::SockRef::from(&borrowed);
        let is_tcp = socket.r#type().is_ok_and(|t| t == socket2::Type::STREAM)
            && socket
                .local_addr()
                .is_ok_and(|a| a.is_ipv4() || a.is_ipv6());
        if is_tcp && socket.set_tcp_nodelay(true).is_ok() {
            done.insert(fd);
            connected |= socket.peer_addr().is_ok();
        }
    }
    connected
}
