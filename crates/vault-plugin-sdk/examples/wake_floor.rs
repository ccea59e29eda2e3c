//! The floor under a plugin's CPU per message on this machine: one round trip
//! on a Unix socket pair from a current-thread tokio runtime (write, sleep in
//! epoll, wake, read), with nothing on top: no TLS, HTTP/2, gRPC or JSON. A
//! plugin is woken this way for every message the server sends it (requests,
//! host-call answers, HTTP/2 pings), so `make bench` multiplies this by the
//! plugin's wake-ups per issue+revoke pair to show how much of its CPU the
//! machine's context switches alone take.
//!
//! ```text
//! cargo run --release -p vault-plugin-sdk --example wake_floor [round trips]
//! ```
//!
//! Prints `wake_floor_us=<CPU of the runtime's thread per round trip, µs>`.
//! The echoing peer is a thread of the same process: a switch between
//! processes costs a little more, so this is a lower bound.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WARM_UP: usize = 1_000;

/// CPU time of the calling thread so far, in nanoseconds (exact, from the
/// scheduler's own accounting).
fn thread_cpu_ns() -> std::io::Result<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    stat.split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .ok_or_else(|| std::io::Error::other("unreadable /proc/thread-self/schedstat"))
}

fn echo(mut peer: UnixStream) {
    let mut buf = [0u8; 64];
    while let Ok(n @ 1..) = peer.read(&mut buf) {
        if peer.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| std::io::Error::other(format!("not a number of round trips: {n:?}")))?,
        None => 20_000,
    };
    let (ours, peer) = UnixStream::pair()?;
    std::thread::spawn(move || echo(peer));
    ours.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let per_round_ns = runtime.block_on(async move {
        let mut socket = tokio::net::UnixStream::from_std(ours)?;
        let mut buf = [0u8; 4];
        let mut round_trip = async |socket: &mut tokio::net::UnixStream| {
            socket.write_all(b"ping").await?;
            socket.read_exact(&mut buf).await.map(drop)
        };
        for _ in 0..WARM_UP {
            round_trip(&mut socket).await?;
        }
        let start = thread_cpu_ns()?;
        for _ in 0..rounds {
            round_trip(&mut socket).await?;
        }
        Ok::<_, std::io::Error>((thread_cpu_ns()? - start) as f64 / rounds.max(1) as f64)
    })?;
    println!("wake_floor_us={:.2}", per_round_ns / 1000.0);
    Ok(())
}
