//! A loopback TCP proxy in front of a Redis server that counts the commands
//! clients send through it: one command is one round trip for a client
//! that does not pipeline (mender's Redis backend sends one at a time).
//! Commands a Lua script runs inside Redis are not seen here, which is the
//! point: they cost no network trip.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

/// The proxy; it runs until the test process ends.
pub struct RespCounter {
    addr: SocketAddr,
    commands: Arc<AtomicU64>,
}

impl RespCounter {
    /// A proxy to the Redis at `upstream`.
    pub fn start(upstream: SocketAddr) -> RespCounter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the counting proxy");
        let addr = listener.local_addr().expect("proxy address");
        let commands = Arc::new(AtomicU64::new(0));
        let counted = commands.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                pipe_back(&server, &client);
                let counted = counted.clone();
                thread::spawn(move || forward_counting(client, server, &counted));
            }
        });
        RespCounter { addr, commands }
    }

    /// The URL clients use to reach Redis through the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Commands sent so far.
    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }
}

/// Copies the server's replies back to the client.
fn pipe_back(server: &TcpStream, client: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Copies the client's commands to the server, counting each complete one.
fn forward_counting(mut client: TcpStream, mut server: TcpStream, counted: &AtomicU64) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(used) = command_len(&pending) {
            counted.fetch_add(1, Ordering::SeqCst);
            pending.drain(..used);
        }
        if server.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// The length of the first complete command in `buf` (a RESP array of bulk
/// strings, as clients send), or `None` if it is not all there yet.
fn command_len(buf: &[u8]) -> Option<usize> {
    let (count, mut at) = header(buf, b'*')?;
    for _ in 0..count {
        let (len, body) = header(&buf[at..], b'$')?;
        at += body + len + 2;
        if buf.len() < at {
            return None;
        }
    }
    Some(at)
}

/// `<tag><number>\r\n` at the start of `buf`: the number and the bytes the
/// header takes.
fn header(buf: &[u8], tag: u8) -> Option<(usize, usize)> {
    if buf.first() != Some(&tag) {
        return None;
    }
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let n = std::str::from_utf8(&buf[1..end]).ok()?.parse().ok()?;
    Some((n, end + 2))
}

#[cfg(test)]
mod tests {
    use super::command_len;

    #[test]
    fn counts_whole_commands_only() {
        let get = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        assert_eq!(command_len(get), Some(get.len()));
        assert_eq!(command_len(&get[..get.len() - 1]), None);
        let value_with_stars = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n*2\r\n\r\n";
        assert_eq!(command_len(value_with_stars), Some(value_with_stars.len()));
    }
}
