//! Kea 3's HTTP control socket in the daemon: the control channel's commands as JSON over HTTP
//! POST (what kea-ctrl-agent used to relay), answered as a list of one answer as Kea answers,
//! with HTTP basic authentication (users and their password files, as Kea's `clients`), so
//! IPAM and provisioning tools (kea-shell, Stork) manage dhcp-xdp with no agent in between. The
//! bounded HTTP server of the management ports carries it (limits on heads, bodies,
//! connections and time); the unix socket stays.

use std::{net::TcpListener, sync::Arc};

use hyper::{Method, StatusCode, header::AUTHORIZATION};
use serde_json::{Value, json};

use super::Control;
use crate::http::{Answer, Limits, Req};

/// A user allowed in: name and password (read from its file at start).
#[derive(Clone)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User({}, password withheld)", self.name)
    }
}

/// Reads each configured user's password file (the first line, without its end).
pub fn users(config: &[(String, std::path::PathBuf)]) -> anyhow::Result<Vec<User>> {
    config
        .iter()
        .map(|(name, file)| {
            let text = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("password file {} of user {name}: {e}", file.display()))?;
            let password = text.lines().next().unwrap_or_default().to_owned();
            anyhow::ensure!(!password.is_empty(), "password file {} of user {name} is empty", file.display());
            Ok(User { name: name.clone(), password })
        })
        .collect()
}

/// Whether the request's `Authorization: Basic …` names one of `users` with its password
/// (every user is compared, in time that does not depend on where they differ).
fn authorized(users: &[User], req: &Req) -> bool {
    if users.is_empty() {
        return true;
    }
    let Some(creds) = req
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b.trim()).ok())
    else {
        return false;
    };
    let mut ok = false;
    for u in users {
        let want = format!("{}:{}", u.name, u.password);
        ok |= constant_time_eq(want.as_bytes(), &creds);
    }
    ok
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn json_answer(status: StatusCode, v: &Value) -> Answer {
    Answer { status, content_type: "application/json", body: v.to_string().into_bytes() }
}

/// One HTTP request: a command (as the unix socket takes it), answered as `[answer]`.
fn handle(control: &Control, users: &[User], req: Req) -> Answer {
    if !authorized(users, &req) {
        return json_answer(StatusCode::UNAUTHORIZED, &json!({ "result": 401, "text": "Unauthorized" }));
    }
    if req.method != Method::POST {
        return json_answer(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!([{ "result": 1, "text": "commands are sent with POST" }]),
        );
    }
    let request: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => {
            return json_answer(StatusCode::BAD_REQUEST, &json!([{ "result": 1, "text": format!("not JSON: {e}") }]));
        }
    };
    json_answer(StatusCode::OK, &json!([control.dispatch(&request)]))
}

/// The TLS side of the socket from `[control] http.tls`: the certificate chain and key, and
/// with a trust anchor the client certificates it accepts (required unless `cert-required` is
/// false). Read at start; errors name the file.
pub fn tls_config(t: &dhcp_xdp_core::config::ControlTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use anyhow::Context as _;
    let pem = |p: &std::path::Path| -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
        let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading certificates from {}", p.display()))?;
        anyhow::ensure!(!certs.is_empty(), "no certificate in {}", p.display());
        Ok(certs)
    };
    let certs = pem(&t.cert_file)?;
    let key_file = std::fs::File::open(&t.key_file).with_context(|| format!("opening {}", t.key_file.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(key_file))
        .with_context(|| format!("reading {}", t.key_file.display()))?
        .with_context(|| format!("no private key in {}", t.key_file.display()))?;
    // *ring*: it builds with the C compiler every machine of this kind has (aws-lc-rs, rustls's
    // other provider, wants CMake); rustls deprecates it only for lacking post-quantum key
    // exchange, which a management socket on the operator's network can do without.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match &t.trust_anchor {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in pem(ca)? {
                roots.add(c).with_context(|| format!("a CA certificate of {}", ca.display()))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if t.cert_required { v } else { v.allow_unauthenticated() };
            builder.with_client_cert_verifier(v.build().context("the client certificate verifier")?)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder.with_single_cert(certs, key).context("the certificate and its key")?;
    Ok(Arc::new(cfg))
}

/// Serves the commands of `control` on `listener` (users: who may; none: anyone who reaches
/// the port), over TLS with `tls`.
pub fn serve(
    listener: TcpListener,
    control: Arc<Control>,
    users: Vec<User>,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let handler: crate::http::Handler = Arc::new(move |req| handle(&control, &users, req));
    crate::http::serve_tls("control-http", listener, Limits::default(), handler, tls)?;
    Ok(())
}
