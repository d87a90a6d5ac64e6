//! TLS with rustls, configured from uvicorn's `--ssl-*` options.
//!
//! What maps and what does not (README, "Differences from uvicorn"):
//! * `--ssl-certfile` may hold the certificate, its chain and the key in one PEM;
//!   `--ssl-keyfile` may be a PKCS#8, PKCS#1 or SEC1 key, or an encrypted PKCS#8 key with
//!   `--ssl-keyfile-password`.
//! * `--ssl-version`: `ssl.PROTOCOL_TLS_SERVER`/`PROTOCOL_TLS` (the default) allow TLS 1.2
//!   and 1.3; `PROTOCOL_TLSv1_2` pins 1.2. rustls has no TLS 1.0/1.1: asking for them is a
//!   startup error, not a silent downgrade.
//! * `--ssl-cert-reqs`: 0 no client certificate, 1 optional, 2 required, verified against
//!   `--ssl-ca-certs`.
//! * `--ssl-ciphers`: an OpenSSL cipher list; the TLS 1.2 suites it names (OpenSSL or IANA
//!   names) are kept, TLS 1.3 suites are always on (OpenSSL configures them separately too).

use std::fs;
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::common::settings::TlsSettings;

/// Python's `ssl.PROTOCOL_*` values (stable across versions).
const PROTOCOL_TLS: i32 = 2;
const PROTOCOL_TLSV1: i32 = 3;
const PROTOCOL_TLSV1_1: i32 = 4;
const PROTOCOL_TLSV1_2: i32 = 5;
const PROTOCOL_TLS_SERVER: i32 = 17;

fn read(path: &str, what: &str) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {what} {path:?}: {e}"))
}

fn certificates(pem: &[u8], path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid certificate PEM in {path:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {path:?}"));
    }
    Ok(certs)
}

/// The PEM block with this label, if any (for the encrypted key, which rustls-pki-types
/// does not parse).
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

fn private_key(
    pem: &[u8],
    path: &str,
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(pem);
    if let Some(block) = pem_block(&text, "ENCRYPTED PRIVATE KEY") {
        let password = password.ok_or_else(|| {
            format!("the key in {path:?} is encrypted: give --ssl-keyfile-password")
        })?;
        let (_, doc) = pkcs8::der::Document::from_pem(block)
            .map_err(|e| format!("invalid encrypted key in {path:?}: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("invalid encrypted key in {path:?}: {e}"))?;
        let secret = info
            .decrypt(password)
            .map_err(|_| format!("cannot decrypt the key in {path:?}: wrong password?"))?;
        return Ok(PrivatePkcs8KeyDer::from(secret.as_bytes().to_vec()).into());
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "the key in {path:?} uses legacy OpenSSL PEM encryption; convert it to PKCS#8 \
             (openssl pkcs8 -topk8 -in key.pem -out key.p8.pem)"
        ));
    }
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("no usable private key in {path:?}: {e}"))
}

/// TLS 1.2 suites by OpenSSL and IANA name.
fn by_name(name: &str) -> Option<SupportedCipherSuite> {
    use provider::cipher_suite::*;
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" | "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "ECDHE-ECDSA-AES256-GCM-SHA384" | "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "ECDHE-ECDSA-CHACHA20-POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "ECDHE-RSA-AES128-GCM-SHA256" | "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "ECDHE-RSA-AES256-GCM-SHA384" | "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "ECDHE-RSA-CHACHA20-POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        _ => return None,
    })
}

fn cipher_suites(ciphers: Option<&str>) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = provider::DEFAULT_CIPHER_SUITES.to_vec();
    let Some(spec) = ciphers.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(all);
    };
    let named: Vec<SupportedCipherSuite> = spec
        .split([':', ',', ' '])
        .filter_map(|token| by_name(token.trim()))
        .collect();
    if named.is_empty() {
        // Keyword lists ("DEFAULT", "HIGH:!aNULL", "ECDHE+AESGCM") keep rustls' safe set.
        return Ok(all);
    }
    let mut suites: Vec<SupportedCipherSuite> = all
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    for suite in named {
        if !suites.iter().any(|s| s.suite() == suite.suite()) {
            suites.push(suite);
        }
    }
    Ok(suites)
}

/// A TLS configuration and the certificate it presents (for the scope's `tls` extension).
pub struct Termination {
    /// The acceptor's configuration.
    pub config: Arc<ServerConfig>,
    /// The server's own certificate, DER.
    pub server_cert: Arc<[u8]>,
}

/// Build the acceptor's configuration; an `Err` is one line for the startup log. With
/// `http2`, ALPN offers `h2` before `http/1.1`.
pub fn server_config(options: &TlsSettings, http2: bool) -> Result<Termination, String> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match options.version {
        PROTOCOL_TLS | PROTOCOL_TLS_SERVER => &[&rustls::version::TLS13, &rustls::version::TLS12],
        PROTOCOL_TLSV1_2 => &[&rustls::version::TLS12],
        PROTOCOL_TLSV1 | PROTOCOL_TLSV1_1 => {
            return Err(
                "TLS 1.0 and 1.1 are not supported (rustls implements TLS 1.2 and 1.3)".into(),
            )
        }
        other => return Err(format!("unsupported --ssl-version {other}")),
    };
    let cert_pem = read(&options.certfile, "certificate file")?;
    let chain = certificates(&cert_pem, &options.certfile)?;
    let key = match &options.keyfile {
        Some(path) => private_key(&read(path, "key file")?, path, options.password.as_deref())?,
        None => private_key(&cert_pem, &options.certfile, options.password.as_deref())?,
    };
    // rustls 0.23.48 deprecates ring's provider: it has no post-quantum key exchange. We keep
    // ring anyway, as Cargo.toml says why (aws-lc-rs needs cmake and NASM to build).
    #[allow(deprecated)]
    let defaults = provider::default_provider();
    let provider = Arc::new(CryptoProvider {
        cipher_suites: cipher_suites(options.ciphers.as_deref())?,
        ..defaults
    });
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("invalid TLS settings: {e}"))?;
    let builder = if options.cert_reqs == 0 {
        builder.with_no_client_auth()
    } else {
        let path = options
            .ca_certs
            .as_deref()
            .ok_or("--ssl-cert-reqs needs --ssl-ca-certs to verify client certificates")?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(&read(path, "CA file")?, path)? {
            roots
                .add(cert)
                .map_err(|e| format!("invalid CA certificate in {path:?}: {e}"))?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if options.cert_reqs == 1 {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
    };
    let server_cert: Arc<[u8]> = Arc::from(chain[0].as_ref());
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key do not work together: {e}"))?;
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Termination {
        config: Arc::new(config),
        server_cert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_lists() {
        assert_eq!(
            cipher_suites(None).unwrap().len(),
            provider::DEFAULT_CIPHER_SUITES.len()
        );
        assert_eq!(
            cipher_suites(Some("HIGH:!aNULL")).unwrap().len(),
            provider::DEFAULT_CIPHER_SUITES.len()
        );
        let picked = cipher_suites(Some("ECDHE-RSA-AES256-GCM-SHA384")).unwrap();
        let tls12: Vec<_> = picked
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .collect();
        assert_eq!(tls12.len(), 1);
    }

    #[test]
    fn versions() {
        let mut o = TlsSettings {
            version: PROTOCOL_TLSV1,
            ..Default::default()
        };
        assert!(server_config(&o, true)
            .err()
            .unwrap()
            .contains("not supported"));
        o.version = 99;
        assert!(server_config(&o, true)
            .err()
            .unwrap()
            .contains("unsupported"));
    }
}
