//! TEMPORARY stub; replaced by the real module.
use zeroize::Zeroizing;
use super::password::Password;
use super::refusal::{Code, Refusal};
pub struct Pkcs12Contents { pub certs: Vec<Vec<u8>>, pub keys: Vec<Zeroizing<Vec<u8>>>, pub friendly_names: Vec<String> }
pub fn looks_like_pkcs12(data: &[u8]) -> bool { data.len() > 4 && data[0] == 0x30 && data.windows(3).take(8).any(|w| w == [2, 1, 3]) }
pub fn read(_data: &[u8], _password: Option<&Password>) -> Result<Pkcs12Contents, Refusal> {
    Err(Refusal::new(Code::UnsupportedAlgorithm, "stub", "stub"))
}
