//! PEM text: blocks with their label, optional RFC 1421 headers (the old OpenSSL
//! `Proc-Type: 4,ENCRYPTED` form) and the decoded body.
//!
//! A parser of our own because the usual ones either skip encrypted keys silently or refuse
//! headers; certgate must see both to give the right answer (DESIGN.md, "Dependencies").

use base64::Engine;
use zeroize::Zeroizing;

use super::refusal::Refusal;

pub struct PemBlock {
    pub label: String,
    pub headers: Vec<(String, String)>,
    /// Decoded body; zeroized on drop because it may hold a private key.
    pub der: Zeroizing<Vec<u8>>,
}

impl PemBlock {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// True when the bytes contain a PEM armour line.
pub fn looks_like_pem(data: &[u8]) -> bool {
    memfind(data, b"-----BEGIN ").is_some()
}

fn memfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Every PEM block in the text, in order. Text outside blocks is ignored (OpenSSL writes
/// "Bag Attributes" and "subject=" lines there). A block without its END line, or with a body
/// that is not base64, is refused as malformed: that is what a truncated copy looks like.
pub fn parse_blocks(data: &[u8]) -> Result<Vec<PemBlock>, Refusal> {
    let text = String::from_utf8_lossy(data);
    let mut blocks = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((line_no, line)) = lines.next() {
        let line = line.trim();
        let Some(label) = armour(line, "BEGIN") else {
            continue;
        };
        let label = label.to_string();
        let mut headers = Vec::new();
        let mut body = Zeroizing::new(String::new());
        let mut in_headers = true;
        let mut ended = false;
        for (_, line) in lines.by_ref() {
            let line = line.trim();
            if let Some(end) = armour(line, "END") {
                if end != label {
                    return Err(Refusal::malformed(format!(
                        "PEM block '{label}' (line {}) ends with '-----END {end}-----'",
                        line_no + 1
                    )));
                }
                ended = true;
                break;
            }
            if in_headers {
                if line.is_empty() {
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    if !k.contains(' ') || k.eq_ignore_ascii_case("Proc-Type") {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                        continue;
                    }
                }
                in_headers = false;
            }
            body.push_str(line);
        }
        if !ended {
            return Err(Refusal::malformed(format!(
                "PEM block '{label}' (line {}) has no END line: the file is truncated",
                line_no + 1
            )));
        }
        let der = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|e| {
            Refusal::malformed(format!("PEM block '{label}' (line {}) is not valid base64 ({e})", line_no + 1))
        })?;
        if der.is_empty() {
            return Err(Refusal::malformed(format!("PEM block '{label}' (line {}) is empty", line_no + 1)));
        }
        blocks.push(PemBlock { label, headers, der: Zeroizing::new(der) });
    }
    Ok(blocks)
}

fn armour<'a>(line: &'a str, kind: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("-----")?.strip_prefix(kind)?.strip_prefix(' ')?;
    rest.strip_suffix("-----")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_headers_and_body_of_legacy_encrypted_block() {
        let text = "junk\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAEC\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_blocks(text.as_bytes()).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].label, "RSA PRIVATE KEY");
        assert_eq!(blocks[0].header("proc-type"), Some("4,ENCRYPTED"));
        assert_eq!(&blocks[0].der[..], &[0, 1, 2]);
    }

    #[test]
    fn refuses_block_without_end_line() {
        let text = "-----BEGIN CERTIFICATE-----\nAAEC\n";
        let err = parse_blocks(text.as_bytes()).err().unwrap();
        assert!(err.message.contains("truncated"), "{}", err.message);
    }

    #[test]
    fn refuses_broken_base64() {
        let text = "-----BEGIN CERTIFICATE-----\nA*EC\n-----END CERTIFICATE-----\n";
        assert!(parse_blocks(text.as_bytes()).is_err());
    }
}
