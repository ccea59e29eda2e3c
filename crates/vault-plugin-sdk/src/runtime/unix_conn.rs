//! The plugin's Unix-socket connections to the server, watched by the
//! reactor for readability only.
//!
//! Tokio registers every socket for both directions, edge-triggered. On a
//! Unix stream socket the kernel signals "writable" each time the peer
//! reads what was sent (the send buffer shrank), so a plugin waiting for the
//! server's answer was woken, and switched in and out, once per message it
//! had sent: about a quarter of its wake-ups, for nothing. Here writes go
//! straight to the socket, which takes them all unless its buffer is full;
//! only then is a second handle on the socket watched for writability, until
//! the write goes through.

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

use super::sys;

/// A connected Unix stream socket (non-blocking) for TLS and HTTP/2 on top.
pub(super) struct UnixConn {
    socket: AsyncFd<UnixStream>,
    /// A duplicate of `socket`'s descriptor, watched for writability while
    /// a write waits for room in the send buffer; `None` otherwise.
    write_wait: Option<AsyncFd<UnixStream>>,
}

impl UnixConn {
    pub(super) fn new(socket: UnixStream) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket: sys::watch(socket, Interest::READABLE)?,
            write_wait: None,
        })
    }

    /// Takes a socket over from tokio (which registered it both ways).
    pub(super) fn from_tokio(socket: tokio::net::UnixStream) -> io::Result<Self> {
        Self::new(socket.into_std()?)
    }

    /// Runs `write` until the socket takes (part of) the data, waiting for
    /// room in the send buffer when it is full.
    fn poll_write_with(
        &mut self,
        cx: &mut Context<'_>,
        mut write: impl FnMut(&UnixStream) -> io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            match write(self.socket.get_ref()) {
                Ok(n) => {
                    self.write_wait = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Poll::Ready(Err(e)),
                Err(_) => {}
            }
            if self.write_wait.is_none() {
                // Registered after the write failed: epoll reports a socket
                // that has room by then at once, so no wake-up is lost.
                let watched = self.socket.get_ref().try_clone()?;
                self.write_wait = Some(sys::watch(watched, Interest::WRITABLE)?);
            }
            let waiter = self.write_wait.as_ref().expect("set above");
            ready!(waiter.poll_write_ready(cx))?.clear_ready();
        }
    }
}

impl AsyncRead for UnixConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.socket.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let room = unfilled.len();
            match guard.try_io(|socket| socket.get_ref().read(unfilled)) {
                Ok(Ok(n)) => {
                    if n > 0 && n < room {
                        // Less than asked for: the socket is drained, and
                        // what arrives next signals anew (as tokio's own
                        // sockets do). Saves a read that would only block.
                        guard.clear_ready();
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                // Drained: try_io cleared the readiness; wait for the next.
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for UnixConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write(data))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(cx, |mut socket| socket.write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.socket.get_ref().shutdown(std::net::Shutdown::Write) {
            // Already gone is as good as shut.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            other => Poll::Ready(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Much more than a socket buffer holds, so writes must wait for the
    /// reader: the writability watch must wake the writer each time.
    #[tokio::test(flavor = "current_thread")]
    async fn a_write_larger_than_the_socket_buffer_waits_for_the_reader() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (UnixConn::new(a).unwrap(), UnixConn::new(b).unwrap());
        let sent: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let writer = tokio::spawn(async move {
            a.write_all(&sent).await.unwrap();
            a.shutdown().await.unwrap();
            a.write_wait.is_none()
        });
        let mut received = Vec::new();
        b.read_to_end(&mut received).await.unwrap();
        assert!(received == expected, "the bytes arrive whole and in order");
        assert!(
            writer.await.unwrap(),
            "the watch ends with the write that needed it"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn messages_go_both_ways_and_a_closed_peer_reads_as_the_end() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut a, mut b) = (UnixConn::new(a).unwrap(), UnixConn::new(b).unwrap());
        for round in 0..100u32 {
            a.write_all(&round.to_be_bytes()).await.unwrap();
            let mut got = [0u8; 4];
            b.read_exact(&mut got).await.unwrap();
            b.write_all(&got).await.unwrap();
            let mut echo = [0u8; 4];
            a.read_exact(&mut echo).await.unwrap();
            assert_eq!(u32::from_be_bytes(echo), round);
        }
        drop(a);
        let mut rest = Vec::new();
        assert_eq!(b.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
