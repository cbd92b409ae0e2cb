//! TEMPORARY stub; replaced by the real module.
use zeroize::Zeroizing;
use super::refusal::{Code, Refusal};
#[derive(Default)]
pub struct WorkBudget;
pub fn decrypt_encrypted_private_key_info(_der: &[u8], _password: &[u8], _budget: &mut WorkBudget) -> Result<Zeroizing<Vec<u8>>, Refusal> {
    Err(Refusal::new(Code::UnsupportedAlgorithm, "stub", "stub"))
}
