//! A tiny HTTPS client for the benchmarks' raw requests to the simulator: it trusts the CA and
//! presents the client certificate of the kubeconfig the simulator wrote, exactly as kubectl does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub struct Https {
    pub addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

fn field(text: &str, key: &str) -> Vec<u8> {
    let value = text.lines().find_map(|l| l.trim().strip_prefix(key)).expect(key).trim();
    base64::engine::general_purpose::STANDARD.decode(value).expect("base64")
}

impl Https {
    /// From a kubeconfig written by `k8s-upgrade simulate --kubeconfig-out`.
    pub fn from_kubeconfig(path: &Path) -> Https {
        let text = std::fs::read_to_string(path).expect("kubeconfig");
        let server = text.lines().find_map(|l| l.trim().strip_prefix("server: https://")).expect("https server");
        let addr: SocketAddr = server.trim_end_matches('/').parse().expect("server address");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(&field(&text, "certificate-authority-data:")).unwrap()).unwrap();
        let cert = CertificateDer::from_pem_slice(&field(&text, "client-certificate-data:")).unwrap();
        let key = PrivateKeyDer::from_pem_slice(&field(&text, "client-key-data:")).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], key)
            .unwrap();
        Https { addr, config: Arc::new(config) }
    }

    /// The body of `GET path` (HTTP/1.0, one connection per request).
    pub fn get(&self, path: &str) -> Vec<u8> {
        let conn = rustls::ClientConnection::new(self.config.clone(), ServerName::from(self.addr.ip())).unwrap();
        let sock = TcpStream::connect(self.addr).expect("connect");
        // The request goes out as several TLS records: without this, Nagle and delayed ACKs add
        // 40 ms to every request.
        sock.set_nodelay(true).expect("nodelay");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        write!(tls, "GET {path} HTTP/1.0\r\nHost: sim\r\nAccept: application/json\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        if let Err(e) = tls.read_to_end(&mut raw) {
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "GET {path}: {e}");
        }
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
        raw.split_off(split)
    }
}
