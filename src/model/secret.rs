//! Secrets handed to people (API tokens, app credentials) are kept only as their SHA-256 and
//! compared in constant time.

/// The SHA-256 (lowercase hex) a secret is stored as.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret.as_bytes()))
}

/// Compare two hashes without leaking where they differ.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}
