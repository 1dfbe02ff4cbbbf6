//! The channel's transport: the unix socket (mode 0600, bounded connections, deadlines and
//! request size), Kea's framing (one request, one answer, close), the streamed
//! `lease4-get-all`, and the client side ([`request`]) that `dhcp-xdp ctl` uses.

use super::*;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Bytes a request may have.
pub const MAX_REQUEST: usize = 1 << 20;
/// Time a whole request may take to arrive.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Time one write of an answer may wait for the client to read.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

impl Control {
    /// The socket at `path`, mode 0600 from the moment it exists at that path (bound in a
    /// private directory beside it, made 0600 there, then renamed into place: no window with
    /// the umask's mode); its directory is created 0700 when missing; a stale socket file is
    /// replaced.
    pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "control".into());
        let private = dir.join(format!(".{name}.{}.new", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new().mode(0o700).create(&private)?;
        let result = (|| {
            let staged = private.join("s");
            let listener = UnixListener::bind(&staged)?;
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&staged, path)?;
            Ok(listener)
        })();
        let _ = std::fs::remove_dir_all(&private);
        result
    }

    /// Answers on `listener` (at `path`): each connection on a thread of its own, at most
    /// [`MAX_CONNECTIONS`] at once (more are told so and closed), so a client that sends slowly
    /// or reads slowly never keeps another out.
    pub fn serve(self: Arc<Self>, listener: UnixListener, path: &Path) -> std::io::Result<std::thread::JoinHandle<()>> {
        let path = path.to_owned();
        let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        std::thread::Builder::new().name("control".into()).spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(mut s) => {
                        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                            active.fetch_sub(1, Ordering::AcqRel);
                            let busy = answer(1, format!("busy: {MAX_CONNECTIONS} connections are being served"));
                            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
                            let _ = s.write_all(&serde_json::to_vec(&busy).unwrap_or_default());
                            // What the client sent is read (briefly, a bounded amount) before the
                            // close, or it would see a reset instead of the answer.
                            let _ = s.shutdown(std::net::Shutdown::Write);
                            let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                            let mut sink = [0u8; 4096];
                            for _ in 0..4 {
                                if !matches!(s.read(&mut sink), Ok(n) if n > 0) {
                                    break;
                                }
                            }
                            continue;
                        }
                        let (me, done, at) = (self.clone(), active.clone(), path.clone());
                        let spawned = std::thread::Builder::new().name("control-conn".into()).spawn(move || {
                            if let Err(e) = me.connection(s) {
                                tracing::debug!("control connection on {}: {e}", at.display());
                            }
                            done.fetch_sub(1, Ordering::AcqRel);
                        });
                        if let Err(e) = spawned {
                            active.fetch_sub(1, Ordering::AcqRel);
                            tracing::warn!("control socket {}: {e}", path.display());
                        }
                    }
                    Err(e) => tracing::warn!("control socket {}: {e}", path.display()),
                }
            }
        })
    }

    /// One request, one answer, then the connection closes (Kea's framing). The whole request
    /// must arrive within [`REQUEST_DEADLINE`] and within [`MAX_REQUEST`] bytes; each write of
    /// the answer must progress within [`WRITE_DEADLINE`].
    pub(super) fn connection(&self, mut s: UnixStream) -> std::io::Result<()> {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        s.set_write_timeout(Some(WRITE_DEADLINE))?;
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = [0u8; 4096];
        let request: Result<Value, Value> = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(answer(1, format!("request not complete within {REQUEST_DEADLINE:?}")));
            }
            s.set_read_timeout(Some(left))?;
            let n = match s.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    break Err(answer(1, format!("request not complete within {REQUEST_DEADLINE:?}")));
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                break Ok(serde_json::from_slice(&buf).unwrap_or(Value::Null));
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                break Ok(v);
            }
            if buf.len() > MAX_REQUEST {
                break Err(answer(1, format!("request over {MAX_REQUEST} bytes")));
            }
        };
        match request {
            Ok(r) if r.get("command").and_then(Value::as_str) == Some("lease4-get-all") => {
                let leases = self.all_leases(r.get("arguments").unwrap_or(&json!({})));
                if leases.is_empty() {
                    s.write_all(&serde_json::to_vec(&self.lease_list(leases)).unwrap_or_default())?;
                } else {
                    self.stream_leases(&leases, &mut s)?;
                }
            }
            Ok(r) => s.write_all(&serde_json::to_vec(&self.dispatch(&r)).unwrap_or_default())?,
            Err(refusal) => s.write_all(&serde_json::to_vec(&refusal).unwrap_or_default())?,
        }
        s.shutdown(std::net::Shutdown::Both)
    }

    /// `lease4-get-all`'s answer written lease by lease (never built whole: a million leases
    /// would be a gigabyte as one JSON value).
    pub(super) fn stream_leases(&self, leases: &[Lease], s: &mut UnixStream) -> std::io::Result<()> {
        let mut w = std::io::BufWriter::with_capacity(64 << 10, s);
        w.write_all(b"{\"arguments\": {\"leases\": [")?;
        for (i, l) in leases.iter().enumerate() {
            if i > 0 {
                w.write_all(b", ")?;
            }
            serde_json::to_writer(&mut w, &self.lease_json(l)).map_err(std::io::Error::other)?;
        }
        write!(w, "]}}, \"result\": 0, \"text\": \"{} IPv4 lease(s) found.\"}}", leases.len())?;
        w.flush()
    }
}

/// Sends `request` to the control socket at `path` and returns the answer (the client side of
/// the framing: one object written, the write side closed, one object read).
pub fn request(path: &Path, request: &Value) -> std::io::Result<Value> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(&serde_json::to_vec(request).map_err(std::io::Error::other)?)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut buf = vec![];
    s.read_to_end(&mut buf)?;
    serde_json::from_slice(&buf).map_err(std::io::Error::other)
}

#[cfg(test)]
mod socket_tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dhcp-xdp-control-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn ask(path: &Path, request: &[u8]) -> Value {
        let mut s = UnixStream::connect(path).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request).expect("write");
        let mut out = vec![];
        s.read_to_end(&mut out).expect("read");
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    /// The socket is 0600 when it appears; clients that send nothing or trickle bytes do not
    /// keep another out, and are cut at the request deadline; an oversized request is refused;
    /// a large `lease4-get-all` is streamed and reads as the same answer.
    #[test]
    fn the_control_socket_cannot_be_starved_or_flooded() {
        let d = dir("starve");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("control.sock");
        let listener = Control::bind(&path).expect("bind");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1, "nothing left beside the socket");
        let (c, _rx) = super::tests::control();
        c.clone().serve(listener, &path).expect("serve");
        // Silent clients, up to the limit but one.
        let silent: Vec<UnixStream> =
            (0..MAX_CONNECTIONS - 1).map(|_| UnixStream::connect(&path).expect("connect")).collect();
        let t = Instant::now();
        let v = ask(&path, br#"{"command": "version-get"}"#);
        assert_eq!(v["result"], 0, "{v}");
        assert!(t.elapsed() < Duration::from_secs(2), "answered while others were silent: {:?}", t.elapsed());
        // Past the limit: told so at once. The connection that filled the last slot must have
        // been taken: the one just answered may not have given its slot back yet, and then the
        // extra one is the one told `busy` (it reads that at once) — take another.
        let extra = (0..50)
            .find_map(|_| {
                let mut e = UnixStream::connect(&path).expect("connect");
                e.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
                match e.read(&mut [0u8; 256]) {
                    Ok(n) if n > 0 => None, // refused as busy: the slot was still taken
                    _ => Some(e),           // silent: it holds the last slot
                }
            })
            .expect("a connection that fills the last slot");
        let busy = ask(&path, br#"{"command": "version-get"}"#);
        assert_eq!(busy["result"], 1, "{busy}");
        assert!(busy["text"].as_str().unwrap().contains("busy"), "{busy}");
        drop(extra);
        // The silent ones are cut at the deadline.
        let mut one = silent.into_iter().next().unwrap();
        one.set_read_timeout(Some(REQUEST_DEADLINE + Duration::from_secs(5))).unwrap();
        let mut out = vec![];
        one.read_to_end(&mut out).expect("cut");
        let cut: Value = serde_json::from_slice(&out).expect("an answer");
        assert!(cut["text"].as_str().unwrap().contains("not complete"), "{cut}");
        // Oversized.
        let mut big = br#"{"command": "version-get", "arguments": {"x": ""#.to_vec();
        big.resize(MAX_REQUEST + 10, b'a');
        let mut s = UnixStream::connect(&path).expect("connect");
        let _ = s.write_all(&big);
        let mut out = vec![];
        let _ = s.read_to_end(&mut out);
        let refused: Value = serde_json::from_slice(&out).expect("an answer");
        assert!(refused["text"].as_str().unwrap().contains("request over"), "{refused}");
        // Streamed lease list.
        for i in 0..10u8 {
            let a = super::tests::call(
                &c,
                "lease4-add",
                json!({ "ip-address": format!("198.18.0.1{i}"), "hw-address": format!("02:00:00:00:00:1{i}") }),
            );
            assert_eq!(a["result"], 0, "{a}");
        }
        let streamed = ask(&path, br#"{"command": "lease4-get-all"}"#);
        let built = super::tests::call(&c, "lease4-get-all", json!({}));
        assert_eq!(streamed, built);
        assert_eq!(streamed["arguments"]["leases"].as_array().unwrap().len(), 10);
        let _ = std::fs::remove_dir_all(&d);
    }
}
