//! TLS material: the relay's local CA, its server certificate, and how agents and `ctl` pin it.
//!
//! The relay creates a private CA on first start. Agents learn the CA's SHA-256 fingerprint from
//! their enrollment token, accept the relay only if its chain contains that CA, and afterwards
//! keep the CA certificate itself. Since the CA is private to one relay, a name mismatch on the
//! leaf certificate is not treated as an error when the CA is pinned: the pin is the identity.

use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest, Sha256};

/// How many encrypted bytes an agent link's TLS session may hold before it must write them out.
/// rustls's default, 64 KiB, sends a bulk flow four records per system call; 256 KiB sends up to
/// sixteen (measured: a third of the `writev` calls), so the receiver is woken less often too.
pub const LINK_SEND_BUFFER: usize = 256 << 10;

/// Sets up an agent link's TLS session (either side) for bulk data.
pub fn tune_link<D>(session: &mut rustls::ConnectionCommon<D>) {
    session.set_buffer_limit(Some(LINK_SEND_BUFFER));
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write `{path}`: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid certificate or key in `{0}`")]
    BadPem(String),
    #[error("tls configuration failed: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every TLS handshake and of rustls's own records: aws-lc-rs, whose
/// AES-GCM uses the CPU's vector AES with AVX-512 (1.7× ring's on such a CPU), with TLS 1.3's
/// AES-128-GCM preferred over AES-256-GCM (4 rounds fewer per block, 14 % faster). Both ends of an
/// agent link use it, so the link's records are AES-128-GCM; a sealed link (`sekisho/2`) seals
/// them with [`crate::aead`], which takes ring's AES-GCM where the CPU has VAES but no AVX-512.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The relay's private certificate authority.
pub struct LocalCa {
    key: KeyPair,
    issuer: rcgen::Certificate,
    der: CertificateDer<'static>,
    pem: String,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").field("fingerprint", &self.fingerprint()).finish_non_exhaustive()
    }
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const CA_NAME: &str = "ca-name.txt";

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, "Sekisho");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(3650);
    params
}

impl LocalCa {
    /// Loads the CA from `dir`, creating it on first use. Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), TlsError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let name_path = dir.join(CA_NAME);
        if cert_path.exists() {
            let pem = read(&cert_path)?;
            let key_pem = read(&key_path)?;
            let cn = read(&name_path)?;
            let key = KeyPair::from_pem(&key_pem).map_err(|_| TlsError::BadPem(key_path.display().to_string()))?;
            let issuer = ca_params(cn.trim()).self_signed(&key)?;
            let der = first_cert(&pem).ok_or_else(|| TlsError::BadPem(cert_path.display().to_string()))?;
            return Ok((LocalCa { key, issuer, der, pem }, false));
        }
        let cn = format!("Sekisho local CA {}", hex::encode(rand::random::<[u8; 4]>()));
        let key = KeyPair::generate()?;
        let issuer = ca_params(&cn).self_signed(&key)?;
        let pem = issuer.pem();
        let der = issuer.der().clone();
        write(&name_path, cn.as_bytes(), false)?;
        write(&key_path, key.serialize_pem().as_bytes(), true)?;
        write(&cert_path, pem.as_bytes(), false)?;
        Ok((LocalCa { key, issuer, der, pem }, true))
    }

    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(&self.der)
    }

    /// Issues a server certificate for `names` (DNS names or IP addresses), returned with the CA
    /// so clients can find the CA in the chain.
    pub fn issue_server(
        &self,
        names: &[String],
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map_or("sekisho-relay", String::as_str));
        params.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(397);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        let chain = vec![cert.der().clone(), self.der.clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((chain, key))
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.display().to_string(), source })
}

fn write(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let r = if private { crate::identity::write_private(path, data) } else { std::fs::write(path, data) };
    r.map_err(|source| TlsError::Write { path: path.display().to_string(), source })
}

/// The first certificate in a PEM text.
pub fn first_cert(pem: &str) -> Option<CertificateDer<'static>> {
    rustls_pemfile::certs(&mut pem.as_bytes()).next()?.ok()
}

/// A TLS 1.3 server configuration offering `alpn`.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = alpn;
    config.max_early_data_size = 0;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The relay's certificate, plus certificates issued on first use by the local CA for the
/// browser hosts under one domain (`*.<tenant>.<domain>`, one wildcard per tenant), so a new
/// tenant or service needs no restart. Another name gets the relay certificate.
pub struct SniCerts {
    ca: LocalCa,
    relay: Arc<rustls::sign::CertifiedKey>,
    /// `.<domain>`, lower case.
    suffix: String,
    issued:
        parking_lot::Mutex<std::collections::HashMap<String, (std::time::Instant, Arc<rustls::sign::CertifiedKey>)>>,
    /// Which tenant labels get a certificate (all, until set).
    filter: std::sync::OnceLock<TenantFilter>,
}

/// Decides whether a tenant label deserves a certificate.
pub type TenantFilter = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Issued certificates are renewed this often (they are valid for 397 days).
const RENEW_AFTER: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);
/// At most this many tenants' certificates are kept; the oldest is dropped first.
const MAX_ISSUED: usize = 10_000;

impl std::fmt::Debug for SniCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniCerts").field("suffix", &self.suffix).finish_non_exhaustive()
    }
}

fn certified(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let signer = provider().key_provider.load_private_key(key)?;
    Ok(rustls::sign::CertifiedKey::new(chain, signer))
}

impl SniCerts {
    /// `names` go into the relay certificate; hosts two labels under `domain` get their own.
    pub fn new(ca: LocalCa, names: &[String], domain: &str) -> Result<Self, TlsError> {
        let (chain, key) = ca.issue_server(names)?;
        let relay = Arc::new(certified(chain, key)?);
        let suffix = format!(".{}", domain.trim_end_matches('.').to_ascii_lowercase());
        Ok(SniCerts {
            ca,
            relay,
            suffix,
            issued: parking_lot::Mutex::new(std::collections::HashMap::new()),
            filter: std::sync::OnceLock::new(),
        })
    }

    /// Issue certificates only for tenant labels `filter` accepts (set once).
    pub fn set_filter(&self, filter: TenantFilter) {
        let _ = self.filter.set(filter);
    }

    fn for_name(&self, name: &str) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = name.to_ascii_lowercase();
        // `wiki.acme.<domain>` → the tenant part `acme.<domain>` → `*.acme.<domain>`.
        let (_, parent) = name.split_once('.')?;
        let tenant = parent.strip_suffix(&self.suffix)?;
        if tenant.is_empty() || tenant.contains('.') || self.filter.get().is_some_and(|f| !f(tenant)) {
            return None;
        }
        if let Some((at, c)) = self.issued.lock().get(parent)
            && at.elapsed() < RENEW_AFTER
        {
            return Some(c.clone());
        }
        let (chain, key) = self.ca.issue_server(&[format!("*.{parent}")]).ok()?;
        let cert = Arc::new(certified(chain, key).ok()?);
        let mut issued = self.issued.lock();
        if issued.len() >= MAX_ISSUED {
            let oldest = issued.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                issued.remove(&k);
            }
        }
        issued.insert(parent.to_owned(), (std::time::Instant::now(), cert.clone()));
        Some(cert)
    }
}

impl rustls::server::ResolvesServerCert for SniCerts {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(hello.server_name().and_then(|n| self.for_name(n)).unwrap_or_else(|| self.relay.clone()))
    }
}

/// A TLS 1.3 server configuration whose certificates come from `certs`.
pub fn server_config_sni(certs: Arc<SniCerts>, alpn: Vec<Vec<u8>>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = alpn;
    config.max_early_data_size = 0;
    // Required by the sealed agent link (`sekisho/2`): after the handshake nothing more may come
    // from rustls, or the agent would read a ticket where the relay's first sealed record belongs.
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// What a client trusts the relay by.
#[derive(Clone, Debug)]
pub enum Pin {
    /// The SHA-256 of the CA certificate, before the client has the certificate itself.
    Fingerprint([u8; 32]),
    /// The CA certificate.
    Ca(CertificateDer<'static>),
}

/// A TLS 1.3 client configuration that trusts only the pinned relay CA.
pub fn client_config(pin: Pin, alpn: Vec<Vec<u8>>) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedVerifier { pin, provider }))
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = match &self.pin {
            Pin::Ca(der) => der.clone(),
            Pin::Fingerprint(fp) => intermediates
                .iter()
                .find(|c| Sha256::digest(c.as_ref()).as_slice() == fp)
                .map(|c| c.clone().into_owned())
                .ok_or_else(|| {
                    rustls::Error::General(
                        "the relay's certificate chain does not contain the CA named by the enrollment token".into(),
                    )
                })?,
        };
        let mut roots = RootCertStore::empty();
        roots.add(ca)?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        match inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Parses a hex SHA-256 fingerprint (colons allowed).
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let clean: String = s.chars().filter(|c| *c != ':').collect();
    hex::decode(clean).ok()?.try_into().ok()
}
