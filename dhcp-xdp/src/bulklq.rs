//! Bulk leasequery (RFC 6926) over TCP port 67: a relay that rebooted asks for every lease
//! given through it (by its relay id, RFC 6925) or on its subscriber lines (by remote id or
//! circuit id in the query's option 82) — or, as RFC 4388 queries do, by address, MAC or client
//! identifier — and is sent each lease as a DHCPLEASEACTIVE, then DHCPLEASEQUERYDONE with a
//! status (MalformedQuery for a query that names nothing). Messages are framed by a two-byte
//! length (§6.3); a connection may carry several queries, one after the other.
//!
//! Only peers listed in `[relays] leasequery` are served. Connections are bounded (16 at
//! once; more are closed at once), idle ones closed after 30 s, a message is at most 1 500
//! bytes, and an answer that cannot be written within 10 s ends the connection. The lease
//! tables are read one shard at a time: the datapath goes on while a relay is answered.

use std::{
    io::{Read, Write},
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use dhcp_xdp_core::{
    dhcp4::{self, Message},
    leasequery::{self, Answer, BULKLEASEQUERY, LEASEQUERY, Query, status},
    leasequery6,
};

use crate::serve::Shared;

/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;
/// Longest a connection may stay silent.
const IDLE: Duration = Duration::from_secs(30);
/// Longest a write of an answer may take.
const WRITE: Duration = Duration::from_secs(10);
/// Largest query accepted.
const MAX_MESSAGE: usize = 1500;

/// Serves DHCPv4 bulk leasequery on `listener` (TCP 67) from a thread of its own.
pub fn serve(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    accept(
        listener,
        shared,
        "bulk-leasequery",
        |cfg, peer| matches!(peer, IpAddr::V4(a) if cfg.leasequery_allowed(a)),
        |s, shared, peer| match peer {
            IpAddr::V4(p) => connection(s, shared, p),
            IpAddr::V6(_) => Ok(()),
        },
    )
}

/// Serves DHCPv6 bulk leasequery (RFC 5460) on `listener` (TCP 547) from a thread of its own.
pub fn serve6(listener: TcpListener, shared: Arc<Shared>) -> std::io::Result<()> {
    accept(
        listener,
        shared,
        "bulk-leasequery6",
        |cfg, peer| match peer {
            IpAddr::V6(a) => cfg.leasequery6_allowed(a),
            IpAddr::V4(_) => false,
        },
        |s, shared, _| connection6(s, shared),
    )
}

/// Accepts connections on `listener` from peers `allowed` says may ask (others are closed at
/// once, as are those past [`MAX_CONNECTIONS`]), each served by `serve` on a thread of its own.
fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    name: &str,
    allowed: fn(&dhcp_xdp_core::config::Config, IpAddr) -> bool,
    serve: fn(TcpStream, &Shared, IpAddr) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let open = Arc::new(AtomicUsize::new(0));
    let conn_name = format!("{name}-conn");
    std::thread::Builder::new().name(name.into()).spawn(move || {
        for conn in listener.incoming() {
            let Ok(stream) = conn else { continue };
            let peer = match stream.peer_addr() {
                Ok(p) if allowed(&shared.runtime().cfg, p.ip()) => p.ip(),
                _ => continue, // dropped: closed at once
            };
            if open.load(Ordering::Acquire) >= MAX_CONNECTIONS {
                continue; // dropped: closed at once
            }
            open.fetch_add(1, Ordering::AcqRel);
            let (shared, open) = (shared.clone(), open.clone());
            let spawned = std::thread::Builder::new().name(conn_name.clone()).spawn(move || {
                if let Err(e) = serve(stream, &shared, peer) {
                    tracing::debug!("bulk leasequery: {e}");
                }
                open.fetch_sub(1, Ordering::AcqRel);
            });
            if spawned.is_err() {
                tracing::warn!("bulk leasequery: no thread for a connection");
            }
        }
    })?;
    Ok(())
}

/// Writes one framed message.
fn send(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed)
}

/// Reads one framed message of at least `min` bytes; None at the end of the stream.
fn receive(s: &mut TcpStream, min: usize) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = usize::from(u16::from_be_bytes(len));
    if !(min..=MAX_MESSAGE).contains(&n) {
        return Err(std::io::Error::other(format!("a message of {n} bytes")));
    }
    let mut msg = vec![0u8; n];
    s.read_exact(&mut msg)?;
    Ok(Some(msg))
}

/// Serves the DHCPv6 queries of one connection until it closes, idles or misbehaves: each
/// answered LEASEQUERY-REPLY (with the first client's data), a LEASEQUERY-DATA for every
/// further client, then LEASEQUERY-DONE; a query that cannot be answered gets its status in
/// the REPLY alone. The v6 table is locked only while the query's leases are copied.
fn connection6(mut s: TcpStream, shared: &Shared) -> std::io::Result<()> {
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(WRITE))?;
    let mut out = vec![0u8; 64 * 1024];
    while let Some(msg) = receive(&mut s, 4)? {
        let q = leasequery6::parse(&msg).ok_or_else(|| std::io::Error::other("not a DHCPv6 LEASEQUERY"))?;
        let rt = shared.runtime();
        let now = crate::clock::unix_now();
        let a = leasequery6::answer(&rt.cfg, rt.table6().leases(), &q, now, true);
        let k = leasequery6::write_reply(&q, &shared.server6.duid, &a, now, &mut out)
            .ok_or_else(|| std::io::Error::other("an answer too long"))?;
        send(&mut s, &out[..k])?;
        if a.status.0 != leasequery6::status::SUCCESS {
            continue;
        }
        for c in a.clients.iter().skip(1) {
            if let Some(k) = leasequery6::write_data(&q, c, now, &mut out) {
                send(&mut s, &out[..k])?;
            }
        }
        if let Some(k) = leasequery6::write_done(&q, &mut out) {
            send(&mut s, &out[..k])?;
        }
    }
    Ok(())
}

/// Serves the queries of one connection until it closes, idles or misbehaves.
/// Replies carry our server identifier toward `peer`, as the relay's UDP leasequeries do.
fn connection(mut s: TcpStream, shared: &Shared, peer: Ipv4Addr) -> std::io::Result<()> {
    s.set_read_timeout(Some(IDLE))?;
    s.set_write_timeout(Some(WRITE))?;
    let mut out = [0u8; 576];
    while let Some(msg) = receive(&mut s, 240)? {
        let m = Message::parse(&msg).map_err(|_| std::io::Error::other("not a DHCP message"))?;
        let kind = m.single(dhcp4::opt::MESSAGE_TYPE).and_then(|v| v.first().copied());
        if m.op() != dhcp4::BOOTREQUEST || !matches!(kind, Some(BULKLEASEQUERY | LEASEQUERY)) {
            return Err(std::io::Error::other("not a (bulk) leasequery"));
        }
        let rt = shared.runtime();
        let now = crate::clock::unix_now();
        let server_id = shared.server.id_facing(&rt.cfg, peer);
        let done = match leasequery::bulk_query_of(&m) {
            Some(q @ (Query::RemoteId(_) | Query::CircuitId(_) | Query::RelayId(_))) => {
                for h in leasequery::line_leases(&rt.db, &q, now) {
                    if let Some(k) = leasequery::write_reply(&rt.cfg, &m, &Answer::active(h), server_id, now, &mut out)
                    {
                        send(&mut s, &out[..k])?;
                    }
                }
                (status::SUCCESS, "done")
            }
            Some(q) => {
                let a = leasequery::answer(&rt.cfg, &rt.db, &q, now);
                if let Some(k) = leasequery::write_reply(&rt.cfg, &m, &a, server_id, now, &mut out) {
                    send(&mut s, &out[..k])?;
                }
                (status::SUCCESS, "done")
            }
            None => (status::MALFORMED_QUERY, "the query names no address, client, relay or line"),
        };
        if let Some(k) = leasequery::write_done(&m, server_id, done, &mut out) {
            send(&mut s, &out[..k])?;
        }
    }
    Ok(())
}
