//! PKCS#7 / CMS certificate bundles (`.p7b`, `.p7c`: what Windows CAs and `openssl crl2pkcs7`
//! return): a SignedData with no content and no signers whose `certificates` field carries the
//! issued certificate and its chain. DER or BER (Windows writes indefinite lengths).

use super::pbe::ber::{self, Tlv};
use super::pbe::oids::SIGNED_DATA;
use super::refusal::Refusal;

const OID: u8 = 0x06;
const CONTEXT_0: u8 = 0xa0;

/// Whether `data` starts like a PKCS#7 SignedData (ContentInfo with the signedData type).
pub fn looks_like_pkcs7(data: &[u8]) -> bool {
    let Ok((outer, _)) = ber::parse(data) else { return false };
    let Ok(mut r) = outer.sequence() else { return false };
    matches!(r.next_opt(), Ok(Some(t)) if t.tag == OID && t.content == SIGNED_DATA.as_bytes())
}

/// The DER of every certificate in a PKCS#7 SignedData, in file order.
pub fn certificates(data: &[u8]) -> Result<Vec<Vec<u8>>, Refusal> {
    let damaged = |e: ber::Error| e.refusal("the PKCS#7 bundle");
    let (outer, _) = ber::parse(data).map_err(damaged)?;
    let mut info = outer.sequence().map_err(damaged)?;
    let kind = info.expect(OID, "the content type").map_err(damaged)?;
    if kind.content != SIGNED_DATA.as_bytes() {
        return Err(Refusal::malformed("the PKCS#7 file is not a SignedData certificate bundle"));
    }
    let explicit = info.expect(CONTEXT_0, "the signed data").map_err(damaged)?;
    let mut wrapper = explicit.children().map_err(damaged)?;
    let signed = wrapper.next().map_err(damaged)?;
    let mut fields = signed.sequence().map_err(damaged)?;
    fields.next().map_err(damaged)?; // version
    fields.next().map_err(damaged)?; // digestAlgorithms
    fields.next().map_err(damaged)?; // encapContentInfo
    let mut out = Vec::new();
    if let Some(certs) = fields.optional(CONTEXT_0).map_err(damaged)? {
        let mut r = certs.children().map_err(damaged)?;
        while let Some(cert) = r.next_opt().map_err(damaged)? {
            if cert.tag == 0x30 {
                out.push(to_der(&cert).map_err(damaged)?);
            }
        }
    }
    if out.is_empty() {
        return Err(Refusal::new(
            super::refusal::Code::NotACertificate,
            "the PKCS#7 bundle holds no certificate",
            "ask the CA for the issued certificate as PEM, DER or a PKCS#7 bundle with the certificate",
        ));
    }
    Ok(out)
}

fn to_der(t: &Tlv<'_>) -> ber::Result<Vec<u8>> {
    ber::to_der(t)
}
