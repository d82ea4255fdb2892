//! The connection under async-imap, which puts the password in at the last moment.
//!
//! async-imap logs each command it sends (`log::trace!`, which a `RUST_LOG=trace` would show),
//! `LOGIN` and its password included. So the client is handed a placeholder, and this stream
//! swaps it for the (quoted) password in the bytes on their way to the server: the password is
//! in no log line, no error and no `Debug` output.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use zeroize::Zeroizing;

/// What a connection is made of (TCP, or TLS over TCP).
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// A stream that replaces the first `"placeholder"` written by the quoted password.
pub(super) struct Conn {
    inner: Box<dyn Io>,
    /// The quoted placeholder and the quoted password, until the swap is made.
    swap: Option<(Vec<u8>, Zeroizing<Vec<u8>>)>,
    /// Bytes accepted from the client, not yet written (the line that held the password).
    pending: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// The stream, and the placeholder to give the client for `password`.
    pub(super) fn new(inner: Box<dyn Io>, password: &str) -> (Self, String) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let placeholder = format!("rotor-password-placeholder-{}-{nanos}", std::process::id());
        let conn = Self {
            inner,
            swap: Some((
                quote(&placeholder).into_bytes(),
                Zeroizing::new(quote(password).into_bytes()),
            )),
            pending: Zeroizing::new(Vec::new()),
        };
        (conn, placeholder)
    }

    /// Writes what is pending.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

/// An IMAP quoted string, as async-imap writes one.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        let at = self.swap.as_ref().and_then(|(placeholder, _)| {
            buf.windows(placeholder.len())
                .position(|window| window == placeholder.as_slice())
        });
        let Some(at) = at else {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        };
        let (placeholder, password) = self.swap.take().expect("found above");
        let mut line = Zeroizing::new(Vec::with_capacity(buf.len() + password.len()));
        line.extend_from_slice(&buf[..at]);
        line.extend_from_slice(&password);
        line.extend_from_slice(&buf[at + placeholder.len()..]);
        self.pending = line;
        // Accepted: written by this or the next poll (write, flush or shutdown).
        if let Poll::Ready(Err(err)) = self.poll_pending(cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_password_is_written_in_place_of_the_placeholder() {
        let (near, mut far) = tokio::io::duplex(8);
        let (mut conn, placeholder) = Conn::new(Box::new(near), r#"p"a\ss"#);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            far.read_to_end(&mut got).await.unwrap();
            got
        });
        conn.write_all(format!("a1 LOGIN \"u\" \"{placeholder}\"").as_bytes())
            .await
            .unwrap();
        conn.write_all(format!("\r\na2 NOOP \"{placeholder}\"\r\n").as_bytes())
            .await
            .unwrap();
        conn.shutdown().await.unwrap();
        drop(conn);
        let got = String::from_utf8(reader.await.unwrap()).unwrap();
        assert_eq!(
            got,
            format!("a1 LOGIN \"u\" \"p\\\"a\\\\ss\"\r\na2 NOOP \"{placeholder}\"\r\n")
        );
    }
}
