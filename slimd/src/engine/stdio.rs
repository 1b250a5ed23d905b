//! The output of a process containerd runs, read by slimd: stdout and
//! stderr each go to a FIFO that slimd made and reads (the runc shim writes
//! into FIFOs it is given; its `file://` output would put both streams into
//! one file). The read end is opened read-write, so the shim's open never
//! waits for a reader and no end-of-file is seen before the shim attaches;
//! the reader stops when told (the process is gone and the shim has written
//! everything), after taking what is still in the pipe.

use std::io;
use std::path::Path;

use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio_util::sync::CancellationToken;

/// Makes a FIFO at `path` (owner only).
pub fn make_fifo(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: mkfifo(3) with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn open(fifo: &Path) -> io::Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(fifo)
}

/// Reads `rx` into `sink` until `stop`, then drains what is left.
async fn pump<F>(mut rx: pipe::Receiver, stop: CancellationToken, mut sink: F)
where
    F: AsyncSink,
{
    let mut buf = vec![0u8; 64 << 10];
    loop {
        tokio::select! {
            r = tokio::io::AsyncReadExt::read(&mut rx, &mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.put(&buf[..n]).await,
            },
            _ = stop.cancelled() => {
                loop {
                    match rx.try_read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sink.put(&buf[..n]).await,
                    }
                }
                break;
            }
        }
    }
}

/// Where pumped bytes go.
trait AsyncSink: Send {
    fn put(&mut self, data: &[u8]) -> impl std::future::Future<Output = ()> + Send;
}

struct FileSink(tokio::fs::File);

impl AsyncSink for FileSink {
    async fn put(&mut self, data: &[u8]) {
        let _ = self.0.write_all(data).await;
    }
}

struct Collect {
    buf: Vec<u8>,
    limit: usize,
    truncated: bool,
}

impl AsyncSink for Collect {
    async fn put(&mut self, data: &[u8]) {
        self.truncated |= super::types::push_bounded(&mut self.buf, data, self.limit);
    }
}

/// Copies what arrives in `fifo` into `file` (appending) until `stop`.
pub fn copy_to_file(fifo: &Path, file: &Path, stop: CancellationToken) -> io::Result<()> {
    let rx = open(fifo)?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    tokio::spawn(pump(rx, stop, FileSink(tokio::fs::File::from_std(f))));
    Ok(())
}

/// Collects what arrives in `fifo` (up to `limit` bytes kept) until
/// `stop`; the bytes and whether some were dropped.
pub fn collect(
    fifo: &Path,
    limit: usize,
    stop: CancellationToken,
) -> io::Result<tokio::task::JoinHandle<(Vec<u8>, bool)>> {
    let rx = open(fifo)?;
    Ok(tokio::spawn(async move {
        let mut sink = Collect {
            buf: Vec::new(),
            limit,
            truncated: false,
        };
        pump(rx, stop, &mut sink).await;
        (sink.buf, sink.truncated)
    }))
}

impl<T: AsyncSink> AsyncSink for &mut T {
    async fn put(&mut self, data: &[u8]) {
        (**self).put(data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn fifo_output_is_collected_and_copied() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        make_fifo(&a).unwrap();
        make_fifo(&b).unwrap();
        let stop = CancellationToken::new();
        let got = collect(&a, 5, stop.clone()).unwrap();
        let log = dir.path().join("b.log");
        copy_to_file(&b, &log, stop.clone()).unwrap();
        // A writer that comes and goes, as the shim does.
        let (a2, b2) = (a.clone(), b.clone());
        tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .open(a2)
                .unwrap()
                .write_all(b"hello world")
                .unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(b2)
                .unwrap()
                .write_all(b"to the file")
                .unwrap();
        })
        .await
        .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        stop.cancel();
        let (bytes, cut) = got.await.unwrap();
        assert_eq!((bytes.as_slice(), cut), (&b"hello"[..], true));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(std::fs::read(&log).unwrap(), b"to the file");
    }
}
