//! One line for what went wrong between us and an API server, naming the server and the cause:
//! an unknown certificate authority, an expired or wrong-host certificate, a refused client
//! certificate, 401, 403 with the verb and resource, a refused connection, a timeout, a failed
//! credential plugin. kube-rs reports these as a chain of nested errors (hyper, an io error, the
//! rustls error inside it); this module walks the chain once and names the cause a person can act
//! on. Nothing here ever formats a credential: only status messages and error kinds are read.

use std::error::Error as StdError;

use super::exec::ExecError;

/// What went wrong, as far as the person at the terminal needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The server's certificate chains to no authority we trust.
    UnknownAuthority,
    /// The server's certificate is outside its validity period.
    CertificateExpired,
    /// The server's certificate does not name the host we dialled.
    WrongHost,
    /// The server refused the client certificate during the handshake.
    ClientCertificateRefused,
    /// Any other TLS failure (its rustls wording).
    Tls(String),
    /// 401: the credential is not accepted.
    Unauthorized,
    /// 403: the credential is accepted but not allowed this; the server's message says what.
    Forbidden(String),
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The server did not answer in time.
    Timeout,
    /// A request (named in the text) the server did not finish within its bound.
    Stalled(String),
    /// The host name does not resolve.
    UnknownHost,
    /// The exec credential plugin failed (its own one-line message).
    Credential(String),
    /// Another API error: HTTP code and the server's message.
    Api(u16, String),
    /// Anything else, in kube-rs' words (first line).
    Other(String),
}

/// Every error in the chain, looking inside io errors (whose `source()` skips the error they wrap).
fn chain<'a>(e: &'a (dyn StdError + 'static), out: &mut Vec<&'a (dyn StdError + 'static)>) {
    let mut current = Some(e);
    while let Some(err) = current {
        if out.len() > 32 {
            return;
        }
        out.push(err);
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            chain(inner, out);
        }
        current = err.source();
    }
}

fn tls_cause(e: &rustls::Error) -> Cause {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => Cause::UnknownAuthority,
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                Cause::CertificateExpired
            }
            C::NotValidForName | C::NotValidForNameContext { .. } => Cause::WrongHost,
            other => Cause::Tls(format!("invalid server certificate ({other:?})")),
        },
        rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateExpired
            | rustls::AlertDescription::CertificateUnknown,
        ) => Cause::ClientCertificateRefused,
        other => Cause::Tls(other.to_string()),
    }
}

/// Names the cause of a failed request.
pub fn cause(e: &kube::Error) -> Cause {
    if let kube::Error::Api(status) = e {
        return match status.code {
            401 => Cause::Unauthorized,
            403 => Cause::Forbidden(status.message.clone()),
            code => Cause::Api(code, status.message.clone()),
        };
    }
    let mut errors = Vec::new();
    chain(e, &mut errors);
    for err in &errors {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return tls_cause(t);
        }
        if let Some(x) = err.downcast_ref::<ExecError>() {
            return Cause::Credential(x.to_string());
        }
        if let Some(s) = err.downcast_ref::<super::client::Stalled>() {
            return Cause::Stalled(s.0.clone());
        }
    }
    for err in &errors {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return Cause::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return Cause::Timeout,
                _ => {}
            }
        }
        let text = err.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return Cause::UnknownHost;
        }
        if text.contains("deadline has elapsed") || text.contains("timed out") {
            return Cause::Timeout;
        }
    }
    Cause::Other(first_line(&e.to_string()))
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    let mut out: String = line.chars().filter(|c| !c.is_control()).take(400).collect();
    if line.chars().count() > 400 {
        out.push('…');
    }
    out
}

impl Cause {
    /// The one-line explanation with a hint, for the server `server` (already redacted).
    pub fn describe(&self, server: &str) -> String {
        match self {
            Cause::UnknownAuthority => format!(
                "cannot trust {server}: its certificate is signed by an unknown certificate authority; put the cluster's CA in the kubeconfig (certificate-authority or certificate-authority-data), or set insecure-skip-tls-verify: true for a throwaway test cluster"
            ),
            Cause::CertificateExpired => format!(
                "cannot trust {server}: its certificate has expired or is not yet valid; renew the apiserver certificate (kubeadm: `kubeadm certs renew apiserver`) or check this machine's clock"
            ),
            Cause::WrongHost => format!(
                "cannot trust {server}: its certificate is not valid for that host name; use the address the certificate names, or set tls-server-name in the kubeconfig's cluster"
            ),
            Cause::ClientCertificateRefused => format!(
                "{server} refused our client certificate during the TLS handshake; check client-certificate(-data) and client-key(-data) in the kubeconfig"
            ),
            Cause::Tls(m) => format!("TLS with {server} failed: {m}"),
            Cause::Unauthorized => format!(
                "{server} answered 401 Unauthorized: it does not accept the kubeconfig's credential (expired token, revoked or foreign client certificate); log in again or fetch a fresh kubeconfig"
            ),
            Cause::Forbidden(m) => format!(
                "{server} answered 403 Forbidden: {}; grant the role from `k8s-upgrade rbac` or use an identity that has it",
                first_line(m)
            ),
            Cause::ConnectionRefused => format!(
                "cannot connect to {server}: connection refused; is the apiserver running, and is the kubeconfig's server address right?"
            ),
            Cause::Timeout => {
                format!("{server} did not answer in time; check the address, VPN or proxy-url, and firewall")
            }
            Cause::Stalled(m) => format!("{server} stalled: {m}"),
            Cause::UnknownHost => {
                format!("cannot resolve the host of {server}; check the kubeconfig's server address and DNS")
            }
            Cause::Credential(m) => format!("cannot get a credential for {server}: {m}"),
            Cause::Api(code, m) => format!("{server} answered {code}: {}", first_line(m)),
            Cause::Other(m) => format!("talking to {server} failed: {m}"),
        }
    }
}

/// The one-line explanation of a failed request to `server`.
pub fn describe(e: &kube::Error, server: &str) -> String {
    cause(e).describe(server)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status::failure(message, "x").with_code(code)))
    }

    #[test]
    fn api_codes_are_named() {
        assert_eq!(cause(&api(401, "Unauthorized")), Cause::Unauthorized);
        let m = "nodes is forbidden: User \"u\" cannot list resource \"nodes\" in API group \"\" at the cluster scope";
        let d = describe(&api(403, m), "https://h:6443");
        assert!(
            d.contains("403") && d.contains("cannot list resource \"nodes\"") && d.contains("https://h:6443"),
            "{d}"
        );
        assert_eq!(d.lines().count(), 1);
    }

    #[test]
    fn tls_errors_inside_io_errors_are_found() {
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::other(inner);
        let e = kube::Error::Service(Box::new(io));
        assert_eq!(cause(&e), Cause::UnknownAuthority);
        let io = std::io::Error::other(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName));
        assert_eq!(cause(&kube::Error::Service(Box::new(io))), Cause::WrongHost);
    }

    #[test]
    fn refused_connections_are_named() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let d = describe(&kube::Error::Service(Box::new(io)), "https://127.0.0.1:1");
        assert!(d.starts_with("cannot connect to https://127.0.0.1:1: connection refused"), "{d}");
    }
}
