//! A small BER/DER reader: just enough BER to read PKCS#12 (definite and indefinite lengths,
//! constructed OCTET STRINGs, low tag numbers). PKCS#12 files from some tools are BER, which a
//! strict DER decoder rejects. Every step is bounds-checked and recursion is limited to
//! [`MAX_DEPTH`] levels, so no input can make it panic or recurse without bound.

use crate::pki::refusal::Refusal;
use std::borrow::Cow;
use std::fmt;

/// Deepest nesting accepted (PKCS#12 needs about 12).
pub const MAX_DEPTH: usize = 40;

pub mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const OCTET_STRING: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const OID: u8 = 0x06;
    pub const BMP_STRING: u8 = 0x1e;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// [0] constructed (EXPLICIT, or IMPLICIT constructed)
    pub const CONTEXT_0: u8 = 0xa0;
    /// [0] primitive (IMPLICIT OCTET STRING)
    pub const CONTEXT_0_PRIMITIVE: u8 = 0x80;
}

/// What was wrong with the encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// A malformed refusal saying where.
    pub fn refusal(self, whereabouts: &str) -> Refusal {
        Refusal::malformed(format!("{whereabouts} is damaged: {}", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// One tag-length-value.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The value (for indefinite lengths: without the end-of-contents octets).
    pub content: &'a [u8],
    /// The whole encoding, header included.
    pub raw: &'a [u8],
    depth: usize,
}

/// Parse the TLV at the start of `data` (depth 0); returns it and what follows.
pub fn parse(data: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    parse_at(data, 0)
}

fn parse_at(data: &[u8], depth: usize) -> Result<(Tlv<'_>, &[u8])> {
    if depth > MAX_DEPTH {
        return Err(Error::new("the structure is nested too deeply"));
    }
    let (&tag, rest) = data.split_first().ok_or_else(|| Error::new("the data ends too early"))?;
    if tag == 0 {
        return Err(Error::new("unexpected end-of-contents marker"));
    }
    if tag & 0x1f == 0x1f {
        return Err(Error::new(format!("unsupported tag 0x{tag:02x}")));
    }
    let (&first, rest) = rest.split_first().ok_or_else(|| Error::new("the data ends inside a length"))?;
    if first == 0x80 {
        if tag & 0x20 == 0 {
            return Err(Error::new("indefinite length on a primitive value"));
        }
        // Walk the children up to the end-of-contents octets.
        let mut cursor = rest;
        loop {
            if cursor.len() >= 2 && cursor[0] == 0 && cursor[1] == 0 {
                let content_len = rest.len() - cursor.len();
                let total = 2 + content_len + 2;
                let tlv = Tlv { tag, content: &rest[..content_len], raw: &data[..total], depth };
                return Ok((tlv, &cursor[2..]));
            }
            if cursor.is_empty() {
                return Err(Error::new("the data ends before an end-of-contents marker"));
            }
            let (_, after) = parse_at(cursor, depth + 1)?;
            cursor = after;
        }
    }
    let (len, header_len, rest) = if first < 0x80 {
        (first as usize, 2, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n > 4 {
            return Err(Error::new(format!("a length of {n} bytes is too large")));
        }
        if rest.len() < n {
            return Err(Error::new("the data ends inside a length"));
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, 2 + n, &rest[n..])
    };
    if rest.len() < len {
        return Err(Error::new(format!("a value says it has {len} bytes but only {} remain (truncated?)", rest.len())));
    }
    let tlv = Tlv { tag, content: &rest[..len], raw: &data[..header_len + len], depth };
    Ok((tlv, &rest[len..]))
}

impl<'a> Tlv<'a> {
    pub fn is_constructed(&self) -> bool {
        self.tag & 0x20 != 0
    }

    /// Read the children of a constructed value.
    pub fn children(&self) -> Result<Reader<'a>> {
        if !self.is_constructed() {
            return Err(Error::new(format!("expected a constructed value, found tag 0x{:02x}", self.tag)));
        }
        Ok(Reader { rest: self.content, depth: self.depth + 1 })
    }

    /// Read the elements of a SEQUENCE.
    pub fn sequence(&self) -> Result<Reader<'a>> {
        if self.tag != tag::SEQUENCE {
            return Err(Error::new(format!("expected a SEQUENCE, found tag 0x{:02x}", self.tag)));
        }
        self.children()
    }

    /// A non-negative INTEGER; values above u64::MAX saturate (they only ever mean "too
    /// many iterations", which the work budget refuses).
    pub fn uint(&self) -> Result<u64> {
        if self.tag != tag::INTEGER {
            return Err(Error::new(format!("expected an INTEGER, found tag 0x{:02x}", self.tag)));
        }
        let bytes = self.content;
        if bytes.is_empty() {
            return Err(Error::new("empty INTEGER"));
        }
        if bytes[0] & 0x80 != 0 {
            return Err(Error::new("negative INTEGER"));
        }
        let significant: &[u8] = {
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            &bytes[skip..]
        };
        if significant.len() > 8 {
            return Ok(u64::MAX);
        }
        Ok(significant.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// The bytes of an OCTET STRING (or of an IMPLICIT-tagged one): a primitive value as
    /// is, a constructed one (BER) with its segments joined.
    pub fn octets(&self) -> Result<Cow<'a, [u8]>> {
        if !self.is_constructed() {
            return Ok(Cow::Borrowed(self.content));
        }
        let mut out = Vec::new();
        self.join_segments(&mut out)?;
        Ok(Cow::Owned(out))
    }

    fn join_segments(&self, out: &mut Vec<u8>) -> Result<()> {
        let mut r = self.children()?;
        while let Some(seg) = r.next_opt()? {
            match seg.tag {
                tag::OCTET_STRING => out.extend_from_slice(seg.content),
                0x24 => seg.join_segments(out)?,
                t => return Err(Error::new(format!("unexpected tag 0x{t:02x} inside an OCTET STRING"))),
            }
        }
        Ok(())
    }
}

/// Reads consecutive TLVs.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next TLV, if any.
    pub fn next_opt(&mut self) -> Result<Option<Tlv<'a>>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (tlv, rest) = parse_at(self.rest, self.depth)?;
        self.rest = rest;
        Ok(Some(tlv))
    }

    /// The next TLV; running out is an error.
    pub fn next(&mut self) -> Result<Tlv<'a>> {
        self.next_opt()?.ok_or_else(|| Error::new("an element is missing"))
    }

    /// The next TLV, which must have tag `t`.
    pub fn expect(&mut self, t: u8, what: &str) -> Result<Tlv<'a>> {
        match self.next_opt()? {
            Some(tlv) if tlv.tag == t => Ok(tlv),
            Some(tlv) => Err(Error::new(format!("expected the {what}, found tag 0x{:02x}", tlv.tag))),
            None => Err(Error::new(format!("the {what} is missing"))),
        }
    }

    /// The next TLV if it has tag `t`.
    pub fn optional(&mut self, t: u8) -> Result<Option<Tlv<'a>>> {
        if self.peek_tag() == Some(t) {
            self.next_opt()
        } else {
            Ok(None)
        }
    }

    /// Error if anything is left.
    pub fn finish(&self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::new(format!("{} unexpected bytes at the end of a structure", self.rest.len())))
        }
    }
}

/// The DER re-encoding of a (possibly BER) value: definite lengths everywhere and
/// constructed OCTET STRINGs joined. Used before handing parameters to a DER-only parser.
pub fn to_der(tlv: &Tlv<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(tlv.raw.len());
    write_der(tlv, &mut out)?;
    Ok(out)
}

fn write_der(tlv: &Tlv<'_>, out: &mut Vec<u8>) -> Result<()> {
    let (tag, body) = if tlv.tag == 0x24 {
        (tag::OCTET_STRING, tlv.octets()?.into_owned())
    } else if tlv.is_constructed() {
        let mut body = Vec::with_capacity(tlv.content.len());
        let mut r = tlv.children()?;
        while let Some(child) = r.next_opt()? {
            write_der(&child, &mut body)?;
        }
        (tlv.tag, body)
    } else {
        (tlv.tag, tlv.content.to_vec())
    };
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u32).to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(&body);
    Ok(())
}

/// Dotted form of an OID's content bytes (hex if it does not decode).
pub fn oid_to_string(bytes: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    let mut pending = false;
    for &b in bytes {
        if value > (u128::MAX >> 7) {
            return hex(bytes);
        }
        value = (value << 7) | u128::from(b & 0x7f);
        pending = b & 0x80 != 0;
        if !pending {
            arcs.push(value);
            value = 0;
        }
    }
    if pending || arcs.is_empty() {
        return hex(bytes);
    }
    let first = arcs[0];
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut out = format!("{a}.{b}");
    for arc in &arcs[1..] {
        out.push('.');
        out.push_str(&arc.to_string());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::from("0x");
    for b in bytes.iter().take(32) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Fuzzing entry point (`fuzz/fuzz_targets/ber.rs`), not part of the API: read `data` as the
/// PKCS#12 reader does (every TLV, recursively; INTEGERs, OCTET STRINGs, OIDs) and check that
/// the DER re-encoding of what was read reads back to itself.
#[doc(hidden)]
pub fn fuzz_ber(data: &[u8]) {
    let mut rest = data;
    for _ in 0..64 {
        let Ok((tlv, after)) = parse(rest) else { break };
        walk(&tlv);
        if let Ok(der) = to_der(&tlv) {
            let (again, tail) = parse(&der).expect("to_der output must read back");
            assert!(tail.is_empty(), "to_der output has trailing bytes");
            let twice = to_der(&again).expect("to_der output must re-encode");
            assert_eq!(der, twice, "to_der is not stable");
        }
        if after.is_empty() || after.len() == rest.len() {
            break;
        }
        rest = after;
    }
}

fn walk(tlv: &Tlv<'_>) {
    let _ = tlv.uint();
    let _ = tlv.octets();
    if tlv.tag == tag::OID {
        let _ = oid_to_string(tlv.content);
    }
    if let Ok(mut r) = tlv.children() {
        let _ = r.peek_tag();
        while let Ok(Some(child)) = r.next_opt() {
            walk(&child);
        }
        let _ = r.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn reader_never_panics_on_prefixes() {
        // A BER value with an indefinite length and a constructed OCTET STRING.
        let ber = unhex("30 80 02 01 03 24 80 04 02 aa bb 04 01 cc 00 00 00 00");
        let (tlv, rest) = parse(&ber).unwrap();
        assert!(rest.is_empty());
        let mut r = tlv.sequence().unwrap();
        assert_eq!(r.next().unwrap().uint().unwrap(), 3);
        assert_eq!(&r.next().unwrap().octets().unwrap()[..], &[0xaa, 0xbb, 0xcc]);
        r.finish().unwrap();
        for n in 0..ber.len() {
            let _ = parse(&ber[..n]);
        }
        // Deep nesting is refused, not a stack overflow.
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[0x30, 0x80]);
        }
        assert!(parse(&deep).is_err());
        assert_eq!(oid_to_string(crate::pki::pbe::oids::PBES2.as_bytes()), "1.2.840.113549.1.5.13");
    }
}
