//! Tests of the PKCS#12 reader and of pbe/ on real files. The fixtures (and the commands that
//! made them) are in tests/fixtures/pkcs12/ (see its README.md).

use super::*;
use crate::pki::pbe::decrypt_encrypted_private_key_info;
use std::time::{Duration, Instant};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../tests/fixtures/pkcs12/", $name)).as_slice()
    };
}

const LEAF: &[u8] = fixture!("leaf.der");
const INTER: &[u8] = fixture!("inter.der");
const ROOT: &[u8] = fixture!("root.der");
/// `openssl pkcs8 -topk8 -nocrypt -outform DER` of the leaf key.
const LEAF_KEY: &[u8] = fixture!("leaf.key.p8.der");

fn pw(s: &str) -> Password {
    Password::new(s.to_string())
}

/// The private scalar of an EC PKCS#8 key (PrivateKeyInfo -> ECPrivateKey -> privateKey), so
/// keys re-encoded by another tool still compare equal.
fn ec_scalar(pkcs8: &[u8]) -> Vec<u8> {
    let (pki, _) = ber::parse(pkcs8).unwrap();
    let mut r = pki.sequence().unwrap();
    r.next().unwrap();
    r.next().unwrap();
    let octets = r.expect(tag::OCTET_STRING, "privateKey").unwrap();
    let (ec, _) = ber::parse(octets.content).unwrap();
    let mut e = ec.sequence().unwrap();
    e.next().unwrap();
    e.expect(tag::OCTET_STRING, "scalar").unwrap().content.to_vec()
}

/// The test PKI's client: the leaf key and the three certificates in `order`.
fn assert_client_a(c: &Pkcs12Contents, order: &[&[u8]], file: &str) {
    assert_eq!(c.certs.len(), order.len(), "{file}: certificate count");
    for (i, (got, want)) in c.certs.iter().zip(order).enumerate() {
        assert_eq!(got.as_slice(), *want, "{file}: certificate {i}");
    }
    assert_eq!(c.keys.len(), 1, "{file}: key count");
    assert_eq!(ec_scalar(&c.keys[0]), ec_scalar(LEAF_KEY), "{file}: the key is not the leaf's");
    assert_eq!(c.friendly_names.len(), 1, "{file}");
}

const CHAIN: [&[u8]; 3] = [LEAF, INTER, ROOT];

#[test]
fn real_files_open_with_their_password() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("openssl_default", fixture!("openssl_default.p12"), "test-pass"),
        ("openssl_legacy", fixture!("openssl_legacy.p12"), "test-pass"),
        ("openssl_aes128", fixture!("openssl_aes128.p12"), "test-pass"),
        ("openssl_nomac", fixture!("openssl_nomac.p12"), "test-pass"),
        ("openssl_unencrypted", fixture!("openssl_unencrypted.p12"), "test-pass"),
        ("openssl_unencrypted_nomac", fixture!("openssl_unencrypted_nomac.p12"), "test-pass"),
        ("openssl_macsha512", fixture!("openssl_macsha512.p12"), "test-pass"),
        ("openssl_rc2_128", fixture!("openssl_rc2_128.p12"), "test-pass"),
        ("openssl_2des", fixture!("openssl_2des.p12"), "test-pass"),
        ("openssl_des_ede3_aes192", fixture!("openssl_des_ede3_aes192.p12"), "test-pass"),
        ("openssl_unicode_password", fixture!("openssl_unicode_password.p12"), "pässwörd€"),
        ("python_modern", fixture!("python_modern.p12"), "test-pass"),
        ("python_legacy", fixture!("python_legacy.p12"), "test-pass"),
        ("keytool_default", fixture!("keytool_default.p12"), "changeit"),
        ("keytool_legacy", fixture!("keytool_legacy.p12"), "changeit"),
        ("ber_outer", fixture!("ber_outer.p12"), "test-pass"),
        ("ber_deep", fixture!("ber_deep.p12"), "test-pass"),
    ];
    for (name, data, password) in cases {
        assert!(looks_like_pkcs12(data), "{name}");
        let c = read(data, Some(&pw(password))).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_client_a(&c, &CHAIN, name);
        if name.starts_with("openssl") || name.starts_with("python") {
            assert_eq!(c.keys[0].as_slice(), LEAF_KEY, "{name}: key bytes");
        }
        if !name.starts_with("keytool") {
            assert_eq!(c.friendly_names[0], "client-a", "{name}");
        }
    }
}

#[test]
fn leaf_not_first_keeps_file_order() {
    // Python cryptography: key without its certificate, then root, leaf, intermediate.
    let c = read(fixture!("python_leaf_not_first.p12"), Some(&pw("test-pass"))).unwrap();
    assert_client_a(&c, &[ROOT, LEAF, INTER], "python_leaf_not_first");
}

#[test]
fn empty_password_files_open_without_a_password() {
    let cases: &[(&str, &[u8])] = &[
        ("openssl_empty_password", fixture!("openssl_empty_password.p12")),
        ("openssl_empty_password_legacy", fixture!("openssl_empty_password_legacy.p12")),
        ("python_noencryption", fixture!("python_noencryption.p12")),
        ("java_empty_password", fixture!("java_empty_password.p12")),
        ("java_null_password", fixture!("java_null_password.p12")),
        ("java_legacy_empty_password", fixture!("java_legacy_empty_password.p12")),
        ("java_legacy_null_password", fixture!("java_legacy_null_password.p12")),
        ("crafted_null_password_mac", fixture!("crafted_null_password_mac.p12")),
        ("crafted_null_password_legacy", fixture!("crafted_null_password_legacy.p12")),
        ("crafted_mixed_empty_password", fixture!("crafted_mixed_empty_password.p12")),
    ];
    for (name, data) in cases {
        for password in [None, Some(pw(""))] {
            let c = read(data, password.as_ref()).unwrap_or_else(|e| panic!("{name} {password:?}: {e}"));
            assert_client_a(&c, &CHAIN, name);
        }
        let err = read(data, Some(&pw("not-empty"))).unwrap_err();
        assert_eq!(err.code, Code::WrongPassword, "{name}: {err}");
    }
}

fn forms() -> [PasswordForms; 2] {
    [PasswordForms::new(""), PasswordForms::null()]
}

/// Which empty-password encodings verify the file's MAC.
fn mac_forms(data: &[u8]) -> Vec<&'static str> {
    let (pfx, _) = ber::parse(data).unwrap();
    let mut r = pfx.sequence().unwrap();
    r.next().unwrap();
    let auth = r.next().unwrap();
    let mac = parse_mac(r.next().unwrap()).unwrap();
    let (_, content) = content_info(auth, "authSafe").unwrap();
    let bytes = data_content(content, "authSafe").unwrap();
    forms().iter().filter(|f| mac.verify(f, &bytes, &mut WorkBudget::new()).unwrap()).map(|f| f.label()).collect()
}

/// Which empty-password encodings decrypt the file's first shrouded key.
fn key_forms(data: &[u8]) -> Vec<&'static str> {
    let (pfx, _) = ber::parse(data).unwrap();
    let mut r = pfx.sequence().unwrap();
    r.next().unwrap();
    let (_, content) = content_info(r.next().unwrap(), "authSafe").unwrap();
    let bytes = data_content(content, "authSafe").unwrap();
    for part in authenticated_safe(&bytes).unwrap() {
        if let Part::Data(sc) = part {
            for bag in safe_bags(&sc).unwrap() {
                if bag.id == oids::SHROUDED_KEY_BAG.as_bytes() {
                    let (scheme, ct) = shrouded_key(bag.value).unwrap();
                    return forms()
                        .iter()
                        .filter(|f| {
                            matches!(scheme.decrypt(f, &ct, &mut WorkBudget::new()),
                                     Ok(p) if pbe::looks_like_private_key_info(&p))
                        })
                        .map(|f| f.label())
                        .collect();
                }
            }
        }
    }
    vec![]
}

/// The finding for the report: every real tool here (OpenSSL 3.0, Python cryptography 48 on
/// OpenSSL, Java 17 with "" and with a null store password, modern and legacy) keys the MAC
/// (and PBES1 bags) with the RFC 7292 form [0,0]; PBES2 bags take the UTF-8 password, which is
/// empty either way. Only the crafted files use the zero-length form.
#[test]
fn which_empty_password_encoding_tools_write() {
    const BMP: &str = "empty password as BMPString [0,0]";
    const NULL: &str = "zero-length (NULL) password";
    let pbes2_key = vec![BMP, NULL];
    type Case<'a> = (&'a str, &'a [u8], Vec<&'a str>, Vec<&'a str>);
    let cases: &[Case] = &[
        ("openssl_empty_password", fixture!("openssl_empty_password.p12"), vec![BMP], pbes2_key.clone()),
        ("openssl_empty_password_legacy", fixture!("openssl_empty_password_legacy.p12"), vec![BMP], vec![BMP]),
        ("python_noencryption", fixture!("python_noencryption.p12"), vec![BMP], vec![]),
        ("java_empty_password", fixture!("java_empty_password.p12"), vec![BMP], pbes2_key.clone()),
        ("java_null_password", fixture!("java_null_password.p12"), vec![BMP], pbes2_key.clone()),
        ("java_legacy_empty_password", fixture!("java_legacy_empty_password.p12"), vec![BMP], vec![BMP]),
        ("java_legacy_null_password", fixture!("java_legacy_null_password.p12"), vec![BMP], vec![BMP]),
        ("crafted_null_password_mac", fixture!("crafted_null_password_mac.p12"), vec![NULL], vec![]),
        ("crafted_null_password_legacy", fixture!("crafted_null_password_legacy.p12"), vec![NULL], vec![NULL]),
        ("crafted_mixed_empty_password", fixture!("crafted_mixed_empty_password.p12"), vec![BMP], vec![NULL]),
    ];
    for (name, data, mac, key) in cases {
        assert_eq!(&mac_forms(data), mac, "{name}: MAC");
        assert_eq!(&key_forms(data), key, "{name}: key");
    }
}

#[test]
fn null_form_that_verified_the_mac_is_used_for_the_bags_first() {
    // MAC and 3DES bags all keyed with the zero-length password: after the MAC picks the NULL
    // form, the two bags cost one decryption each (no wasted [0,0] attempt).
    let mut budget = WorkBudget::new();
    let c = read_with_budget(fixture!("crafted_null_password_legacy.p12"), None, &mut budget).unwrap();
    assert_client_a(&c, &CHAIN, "crafted_null_password_legacy");
    // 2 MAC attempts ([0,0] fails, NULL verifies) + 2 bags x (key + IV).
    assert_eq!(budget.derivations(), 2 + 2 * 2);
}

#[test]
fn wrong_or_missing_password() {
    let data = fixture!("openssl_default.p12");
    let err = read(data, Some(&pw("wrong"))).unwrap_err();
    assert_eq!(err.code, Code::WrongPassword);
    assert_eq!(err.message, "the password does not open the PKCS#12 file");
    assert_eq!(err.hint, "check the password that was set when the file was exported");

    for password in [None, Some(pw(""))] {
        let err = read(data, password.as_ref()).unwrap_err();
        if password.is_none() {
            assert_eq!(err.code, Code::PasswordRequired);
            assert_eq!(err.message, "the PKCS#12 file is protected by a password");
            assert_eq!(err.hint, "give it with --password-env VAR, --password-file FILE or --password-stdin");
        } else {
            assert_eq!(err.code, Code::WrongPassword);
        }
    }

    // Without a MAC the failed decryption decides.
    let nomac = fixture!("openssl_nomac.p12");
    assert_eq!(read(nomac, None).unwrap_err().code, Code::PasswordRequired);
    let err = read(nomac, Some(&pw("wrong"))).unwrap_err();
    assert_eq!(err.code, Code::WrongPassword);
    assert!(err.message.starts_with("the password does not open"), "{}", err.message);

    // Legacy (PBES1) too, and a password that only differs in encoding.
    assert_eq!(read(fixture!("openssl_legacy.p12"), Some(&pw("test-pasS"))).unwrap_err().code, Code::WrongPassword);
    assert_eq!(
        read(fixture!("openssl_unicode_password.p12"), Some(&pw("passwort"))).unwrap_err().code,
        Code::WrongPassword
    );
}

#[test]
fn pbmac1() {
    // RFC 9579 A.1 (password 1234), the test vector printed in the RFC.
    let a1 = fixture!("rfc9579_a1.p12");
    let c = read(a1, Some(&pw("1234"))).unwrap();
    assert_eq!((c.certs.len(), c.keys.len()), (1, 1));
    assert!(pbe::looks_like_private_key_info(&c.keys[0]));
    assert_eq!(read(a1, Some(&pw("12345"))).unwrap_err().code, Code::WrongPassword);
    assert_eq!(read(a1, None).unwrap_err().code, Code::PasswordRequired);

    // RFC 9579 A.4: the PBKDF2 iteration count changed (2048 -> 2049) must fail the MAC.
    let mut a4 = a1.to_vec();
    let tail = a4.len() - 120;
    let at = tail + find(&a4[tail..], &[0x02, 0x02, 0x08, 0x00]).expect("iteration count");
    a4[at + 3] = 0x01;
    assert_eq!(read(&a4, Some(&pw("1234"))).unwrap_err().code, Code::WrongPassword);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn find_nth(haystack: &[u8], needle: &[u8], n: usize) -> usize {
    let mut from = 0;
    for _ in 0..n {
        from += find(&haystack[from..], needle).unwrap() + 1;
    }
    from + find(&haystack[from..], needle).unwrap()
}

const OID_DATA_TLV: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];

#[test]
fn public_key_modes_are_unsupported() {
    // Same-length OID swaps in a file without MAC: data -> envelopedData (a part) and
    // data -> signedData (the authSafe itself).
    let base = fixture!("openssl_unencrypted_nomac.p12");
    let mut enveloped = base.to_vec();
    let at = find_nth(&enveloped, &OID_DATA_TLV, 1);
    enveloped[at + 10] = 0x03;
    let err = read(&enveloped, None).unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert!(err.message.contains("envelopedData"), "{}", err.message);

    let mut signed = base.to_vec();
    let at = find_nth(&signed, &OID_DATA_TLV, 0);
    signed[at + 10] = 0x02;
    let err = read(&signed, None).unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert!(err.message.contains("signedData"), "{}", err.message);
}

#[test]
fn unsupported_encryption_names_the_oid() {
    let err = read(fixture!("openssl_rc4.p12"), Some(&pw("test-pass"))).unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert!(err.message.contains("pbeWithSHAAnd128BitRC4 (1.2.840.113549.1.12.1.1)"), "{}", err.message);

    // pbeWithSHAAnd40BitRC2-CBC (…12.1.6) -> …12.1.9, which does not exist.
    let mut data = fixture!("openssl_legacy.p12").to_vec();
    let at = find(&data, &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x01, 0x06]).unwrap();
    data[at + 9] = 0x09;
    let err = read(&data, Some(&pw("test-pass"))).unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert!(err.message.contains("1.2.840.113549.1.12.1.9"), "{}", err.message);
}

#[test]
fn nested_safe_contents() {
    let c = read(fixture!("crafted_nested_2.p12"), None).unwrap();
    assert_client_a(&c, &CHAIN, "crafted_nested_2");
    let err = read(fixture!("crafted_nested_6.p12"), None).unwrap_err();
    assert_eq!(err.code, Code::Malformed);
}

#[test]
fn hostile_work_factors_are_refused_before_hashing() {
    let cases: &[(&str, &[u8], &str)] = &[
        ("hostile_mac_iter", fixture!("hostile_mac_iter.p12"), "2147483647"),
        ("hostile_pbes2_iter", fixture!("hostile_pbes2_iter.p12"), "2147483647 PBKDF2-HMAC-SHA-256 iterations"),
        ("hostile_1000_bags", fixture!("hostile_1000_bags.p12"), " password-based key derivations ("),
    ];
    for (name, data, needle) in cases {
        for password in [Some(pw("test-pass")), None] {
            let mut budget = WorkBudget::new();
            let start = Instant::now();
            let err = read_with_budget(data, password.as_ref(), &mut budget).unwrap_err();
            assert!(start.elapsed() < Duration::from_millis(500), "{name}: {:?}", start.elapsed());
            assert_eq!(err.code, Code::UnsupportedAlgorithm, "{name}: {err}");
            assert!(err.message.contains(needle), "{name}: {}", err.message);
            assert!(err.message.contains("certgate accepts"), "{name}: {}", err.message);
            assert_eq!(err.hint, "export it again with the tool's default settings");
            assert_eq!(budget.spent(), 0, "{name}: work was spent before refusing");
        }
    }
}

#[test]
fn budget_is_shared_across_a_file() {
    // A budget big enough for one derivation of this file but not for all of it.
    let data = fixture!("openssl_default.p12");
    let one_pbkdf2 = KdfCost::pbkdf2(HashAlg::Sha256, 2048, 32).units;
    let mut small = WorkBudget::with_limits(one_pbkdf2 * 2, one_pbkdf2 * 2);
    let err = read_with_budget(data, Some(&pw("test-pass")), &mut small).unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert_eq!(small.spent(), 0);
    let mut normal = WorkBudget::new();
    read_with_budget(data, Some(&pw("test-pass")), &mut normal).unwrap();
    assert_eq!(normal.derivations(), 3); // MAC + certificates + key
}

#[test]
fn damaged_input_is_malformed_and_never_panics() {
    let err = read(fixture!("openssl_truncated.p12"), Some(&pw("test-pass"))).unwrap_err();
    assert_eq!(err.code, Code::Malformed);
    assert!(err.message.contains("truncated"), "{}", err.message);
    let err = read(fixture!("openssl_trailing_garbage.p12"), Some(&pw("test-pass"))).unwrap_err();
    assert_eq!(err.code, Code::Malformed);
    assert!(err.message.contains("7 bytes"), "{}", err.message);
    assert_eq!(read(b"", None).unwrap_err().code, Code::Empty);
    assert_eq!(read(b"hello", None).unwrap_err().code, Code::Malformed);
    let too_big = vec![0x30u8; MAX_INPUT_LEN + 1];
    assert_eq!(read(&too_big, None).unwrap_err().code, Code::TooLarge);

    // Every prefix of a DER and of a BER file.
    for data in [fixture!("openssl_default.p12"), fixture!("ber_deep.p12")] {
        for n in 0..data.len() {
            let r = read(&data[..n], Some(&pw("test-pass")));
            assert!(r.is_err(), "prefix {n} accepted");
        }
    }

    // Deterministic byte corruption all over a few files: any result but a panic is fine.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for data in [fixture!("openssl_unencrypted_nomac.p12"), fixture!("ber_deep.p12"), fixture!("openssl_legacy.p12")] {
        for _ in 0..150 {
            let mut copy = data.to_vec();
            for _ in 0..1 + next() % 3 {
                let i = (next() % copy.len() as u64) as usize;
                copy[i] = next() as u8;
            }
            let _ = read(&copy, Some(&pw("test-pass")));
            let _ = read(&copy, None);
        }
    }
}

#[test]
fn sniffing() {
    for data in [
        fixture!("openssl_default.p12"),
        fixture!("openssl_legacy.p12"),
        fixture!("keytool_default.p12"),
        fixture!("ber_outer.p12"),
        fixture!("ber_deep.p12"),
        fixture!("rfc9579_a1.p12"),
        fixture!("hostile_1000_bags.p12"),
    ] {
        assert!(looks_like_pkcs12(data));
    }
    for data in [
        LEAF,
        LEAF_KEY,
        fixture!("pkcs8_pbes2_aes256.der"),
        b"".as_slice(),
        b"-----BEGIN CERTIFICATE-----\n".as_slice(),
        &[0x30],
        &[0x30, 0x84, 0xff],
    ] {
        assert!(!looks_like_pkcs12(data));
    }
}

#[test]
fn debug_never_shows_key_bytes() {
    let c = read(fixture!("openssl_default.p12"), Some(&pw("test-pass"))).unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("1 private key(s), redacted"), "{shown}");
    let scalar = ec_scalar(&c.keys[0]);
    assert!(!shown.contains(&format!("{:?}", &scalar[..4])), "{shown}");
    assert!(!shown.contains(&format!("{}", scalar[0])) || shown.len() < 200, "{shown}");
}

#[test]
fn encrypted_private_key_info() {
    let cases: &[(&str, &[u8])] = &[
        ("pbes2_aes256", fixture!("pkcs8_pbes2_aes256.der")),
        ("pbes2_sha512_aes128", fixture!("pkcs8_pbes2_sha512_aes128.der")),
        ("pbes2_sha1_des3", fixture!("pkcs8_pbes2_sha1_des3.der")),
        ("scrypt", fixture!("pkcs8_scrypt.der")),
        ("pbe_sha1_3des", fixture!("pkcs8_pbe_sha1_3des.der")),
        ("pbe_sha1_rc2_40", fixture!("pkcs8_pbe_sha1_rc2_40.der")),
    ];
    for (name, der) in cases {
        let key = decrypt_encrypted_private_key_info(der, b"test-pass", &mut WorkBudget::new())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.as_slice(), LEAF_KEY, "{name}");
        let err = decrypt_encrypted_private_key_info(der, b"wrong", &mut WorkBudget::new()).unwrap_err();
        assert_eq!(err.code, Code::WrongPassword, "{name}");
        let err = decrypt_encrypted_private_key_info(der, b"", &mut WorkBudget::new()).unwrap_err();
        assert_eq!(err.code, Code::PasswordRequired, "{name}");
    }
    // An empty password (PBES1: [0,0] from OpenSSL).
    let key =
        decrypt_encrypted_private_key_info(fixture!("pkcs8_pbe_sha1_3des_empty.der"), b"", &mut WorkBudget::new())
            .unwrap();
    assert_eq!(key.as_slice(), LEAF_KEY);

    let err =
        decrypt_encrypted_private_key_info(fixture!("pkcs8_pbe_md5_des.der"), b"test-pass", &mut WorkBudget::new())
            .unwrap_err();
    assert_eq!(err.code, Code::UnsupportedAlgorithm);
    assert!(err.message.contains("pbeWithMD5AndDES-CBC"), "{}", err.message);

    for (name, der, needle) in [
        ("scrypt 1 GiB", fixture!("hostile_pkcs8_scrypt_1gib.der"), "1024 MiB"),
        ("scrypt slow", fixture!("hostile_pkcs8_scrypt_slow.der"), "N=131072, r=8, p=4"),
    ] {
        let start = Instant::now();
        let mut budget = WorkBudget::new();
        let err = decrypt_encrypted_private_key_info(der, b"test-pass", &mut budget).unwrap_err();
        assert!(start.elapsed() < Duration::from_millis(100), "{name}");
        assert_eq!(err.code, Code::UnsupportedAlgorithm, "{name}: {err}");
        assert!(err.message.contains(needle), "{name}: {}", err.message);
        assert_eq!(budget.spent(), 0);
    }

    // Damaged: every prefix, trailing data.
    let der = fixture!("pkcs8_pbes2_aes256.der");
    for n in 0..der.len() {
        assert!(decrypt_encrypted_private_key_info(&der[..n], b"test-pass", &mut WorkBudget::new()).is_err());
    }
    let mut trailing = der.to_vec();
    trailing.push(0);
    assert_eq!(
        decrypt_encrypted_private_key_info(&trailing, b"test-pass", &mut WorkBudget::new()).unwrap_err().code,
        Code::Malformed
    );
}

#[test]
fn short_des_ede3_iv_is_refused_not_a_panic() {
    // pkcs5 0.8 slices the DES-EDE3-CBC IV as iv[0..8]: a 4-byte IV must be caught before it.
    let alg: &[u8] = &[
        0x30, 0x37, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d, // PBES2
        0x30, 0x2a, //
        0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c, // PBKDF2
        0x30, 0x0b, 0x04, 0x04, 1, 2, 3, 4, 0x02, 0x03, 0x00, 0x08, 0x00, //
        0x30, 0x0e, 0x06, 0x08, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x03, 0x07, // DES-EDE3-CBC
        0x04, 0x02, 0xaa, 0xbb, // 2-byte IV
    ];
    let err = pbe::EncryptionScheme::parse(alg).unwrap_err();
    assert_eq!(err.code, Code::Malformed, "{err}");
    assert!(err.message.contains("8-byte IV"), "{}", err.message);
}
