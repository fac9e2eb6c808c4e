//! Connecting to a Rapport server as the command line and `rapport bench`
//! do: plaintext or TLS (with a client certificate for mTLS), and a bearer
//! token on every call.

use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// How to reach a server (`--token`, `--tls-ca`, `--tls-client-cert` and
/// `--tls-client-key`, `--tls-domain`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    pub token: Option<String>,
    /// Trust this CA for the server's certificate; turns TLS on.
    pub ca: Option<PathBuf>,
    /// Present this certificate and key (mTLS).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry (default: the host).
    pub domain: Option<String>,
}

/// A channel whose calls carry the bearer token.
pub type Conn = InterceptedService<Channel, Bearer>;

/// Adds `authorization: Bearer TOKEN` to every call.
#[derive(Debug, Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    /// # Errors
    /// `InvalidArgument` for a token that cannot be a header value.
    pub fn new(token: Option<&str>) -> Result<Bearer> {
        token
            .map(|t| {
                format!("Bearer {t}")
                    .parse()
                    .map_err(|_| Error::invalid("--token", "is not printable ASCII"))
            })
            .transpose()
            .map(Bearer)
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl ClientOptions {
    /// The endpoint for `addr` (`host:port`, or a URL): `https` when a CA is
    /// given.
    ///
    /// # Errors
    /// `InvalidArgument` for a bad address; `BadInput` for unreadable PEM files.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint> {
        let tls = self.ca.is_some() || addr.starts_with("https://");
        let url = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.to_string()
        } else if tls {
            format!("https://{addr}")
        } else {
            format!("http://{addr}")
        };
        let mut endpoint = Endpoint::from_shared(url)
            .map_err(|e| Error::invalid("--server", e.to_string()))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if tls {
            let read = |path: &PathBuf| {
                std::fs::read(path).map_err(|e| Error::BadInput {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
            };
            let mut config = ClientTlsConfig::new();
            if let Some(ca) = &self.ca {
                config = config.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &self.identity {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            if let Some(domain) = &self.domain {
                config = config.domain_name(domain.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| Error::invalid("--tls-ca", e.to_string()))?;
        }
        Ok(endpoint)
    }

    /// Connects to `addr`.
    ///
    /// # Errors
    /// As [`ClientOptions::endpoint`]; `FailedPrecondition` when the server
    /// cannot be reached.
    pub async fn connect(&self, addr: &str) -> Result<Conn> {
        let channel = self.endpoint(addr)?.connect().await.map_err(|e| {
            Error::precondition(format!("cannot reach the server at {addr}: {e:?}"))
        })?;
        Ok(InterceptedService::new(
            channel,
            Bearer::new(self.token.as_deref())?,
        ))
    }
}
