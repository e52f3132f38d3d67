//! A forwarding HTTP proxy, as corporate networks put between Terraform and the internet.
//!
//! It tunnels `CONNECT host:port` (HTTPS) and forwards absolute-form requests
//! (`GET http://host:port/path`, plain HTTP), and logs each one. Only it resolves the names
//! under [`PROXIED_DOMAIN`] (to `127.0.0.1` at the same port), so a client that reaches such a
//! name went through it. Loopback addresses are forwarded too; every other name gets a `502`.
//! Forwarded plain requests carry `Connection: close`, so each one is logged.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Names under this domain exist only behind the proxy.
pub const PROXIED_DOMAIN: &str = "proxied.test";

/// One request the proxy passed on (or refused).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    /// `CONNECT`, or the plain request's method.
    pub method: String,
    /// `host:port` the client asked for.
    pub authority: String,
    /// The plain request's path (empty for `CONNECT`).
    pub path: String,
}

impl std::fmt::Display for Passed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}{}", self.method, self.authority, self.path)
    }
}

/// A running proxy on `127.0.0.1:<port>`.
pub struct ForwardProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Passed>>>,
}

impl ForwardProxy {
    /// Starts the proxy in the background.
    pub async fn start() -> Result<ForwardProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let shared = log.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = shared.clone();
                tokio::spawn(async move {
                    let _ = handle(client, log).await;
                });
            }
        });
        Ok(ForwardProxy { addr, log })
    }

    /// `http://127.0.0.1:<port>`, for `HTTPS_PROXY` and friends.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything passed so far, oldest first.
    pub fn passed(&self) -> Vec<Passed> {
        self.log.lock().unwrap().clone()
    }

    /// Forgets what was passed.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

/// Where the proxy sends `authority`, when it knows the name.
fn resolve(authority: &str) -> Option<SocketAddr> {
    let (host, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let known = host == "localhost"
        || host == "127.0.0.1"
        || host == PROXIED_DOMAIN
        || host.ends_with(&format!(".{PROXIED_DOMAIN}"));
    known.then(|| SocketAddr::from(([127, 0, 0, 1], port)))
}

async fn refuse(client: &mut TcpStream, authority: &str) -> Result<()> {
    let body = format!("proxy: no route to {authority}\n");
    let answer = format!(
        "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    client.write_all(answer.as_bytes()).await?;
    Ok(())
}

async fn handle(mut client: TcpStream, log: Arc<Mutex<Vec<Passed>>>) -> Result<()> {
    let mut buffer = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > 64 * 1024 {
            bail!("request head too long");
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            bail!("client closed before the request head ended");
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buffer[..head_end]).context("request head")?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(' ');
    let (method, target, version) = (
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or_default().to_string(),
        words.next().unwrap_or("HTTP/1.1").to_string(),
    );
    if method == "CONNECT" {
        log.lock().unwrap().push(Passed {
            method,
            authority: target.clone(),
            path: String::new(),
        });
        let Some(addr) = resolve(&target) else {
            return refuse(&mut client, &target).await;
        };
        let Ok(mut upstream) = TcpStream::connect(addr).await else {
            return refuse(&mut client, &target).await;
        };
        client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await?;
        upstream.write_all(&buffer[head_end..]).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://") else {
        bail!("not a proxy request: {first}");
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => (rest[..at].to_string(), rest[at..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    log.lock().unwrap().push(Passed {
        method: method.clone(),
        authority: authority.clone(),
        path: path.split('?').next().unwrap_or_default().to_string(),
    });
    let Some(addr) = resolve(&authority) else {
        return refuse(&mut client, &authority).await;
    };
    let Ok(mut upstream) = TcpStream::connect(addr).await else {
        return refuse(&mut client, &authority).await;
    };
    let mut forwarded = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization" | "keep-alive"
        ) {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");
    upstream.write_all(forwarded.as_bytes()).await?;
    upstream.write_all(&buffer[head_end..]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_proxied_and_loopback_names_resolve() {
        assert_eq!(
            resolve("api.ecr.proxied.test:4431"),
            Some(SocketAddr::from(([127, 0, 0, 1], 4431)))
        );
        assert_eq!(
            resolve("127.0.0.1:80"),
            Some(SocketAddr::from(([127, 0, 0, 1], 80)))
        );
        assert_eq!(resolve("example.com:443"), None);
        assert_eq!(resolve("notproxied.test:443"), None);
        assert_eq!(resolve("no-port.proxied.test"), None);
    }
}
