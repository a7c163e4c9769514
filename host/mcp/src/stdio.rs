//! The gateway's own stdin and stdout as streams on tokio's reactor.
//!
//! tokio's `Stdin` and `Stdout` (what `rmcp::transport::stdio()` uses)
//! hand every read, write and flush to the blocking thread pool, a thread
//! hop and a condvar wake-up per message: measured, most of the gateway's
//! CPU per call went to the kernel that way. An MCP client starts its
//! server with pipes (or a socket pair), which epoll can watch, so those
//! are read and written without blocking threads; a terminal or a file
//! falls back to tokio's own.

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A stream the client writes into.
pub(crate) type Input = Pin<Box<dyn AsyncRead + Send>>;
/// A stream the client reads from.
pub(crate) type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// Stdin and stdout, on the reactor where they are pipes or sockets.
pub(crate) fn streams() -> (Input, Output) {
    #[cfg(unix)]
    {
        (
            unix::reader().unwrap_or_else(|| Box::pin(tokio::io::stdin())),
            unix::writer().unwrap_or_else(|| Box::pin(tokio::io::stdout())),
        )
    }
    #[cfg(not(unix))]
    {
        (Box::pin(tokio::io::stdin()), Box::pin(tokio::io::stdout()))
    }
}

#[cfg(unix)]
mod unix {
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt as _;

    use tokio::net::UnixStream;
    use tokio::net::unix::pipe;

    use super::{Input, Output};

    enum Kind {
        Pipe,
        Socket,
    }

    /// A duplicate of `fd` and whether epoll can watch it (`None`: it is a
    /// terminal, a file, or closed). The duplicate shares the open file, so
    /// making it non-blocking makes the original so too: only this process
    /// reads its stdin and writes its stdout.
    fn watchable(fd: impl AsFd) -> Option<(OwnedFd, Kind)> {
        let owned = fd.as_fd().try_clone_to_owned().ok()?;
        let file = std::fs::File::from(owned);
        let kind = file.metadata().ok()?.file_type();
        let kind = if kind.is_fifo() {
            Kind::Pipe
        } else if kind.is_socket() {
            Kind::Socket
        } else {
            return None;
        };
        Some((OwnedFd::from(file), kind))
    }

    fn socket(fd: OwnedFd) -> Option<UnixStream> {
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true).ok()?;
        UnixStream::from_std(std).ok()
    }

    pub(super) fn reader() -> Option<Input> {
        match watchable(std::io::stdin())? {
            (fd, Kind::Pipe) => Some(Box::pin(pipe::Receiver::from_owned_fd(fd).ok()?)),
            (fd, Kind::Socket) => Some(Box::pin(socket(fd)?)),
        }
    }

    pub(super) fn writer() -> Option<Output> {
        match watchable(std::io::stdout())? {
            (fd, Kind::Pipe) => Some(Box::pin(pipe::Sender::from_owned_fd(fd).ok()?)),
            (fd, Kind::Socket) => Some(Box::pin(socket(fd)?)),
        }
    }
}
