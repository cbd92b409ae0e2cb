//! Opening the store and unlocking it with the master key.

use std::path::PathBuf;

use crate::store::seal::{self, CHECK_AAD, CHECK_PLAINTEXT};
use crate::store::{MasterKey, Store, StoreUrl};

use super::{Control, ControlError};

/// Where the master key comes from.
#[derive(Clone, Debug)]
pub enum MasterKeySource {
    /// `CERTGATE_MASTER_KEY`: base64 of 32 bytes (not printed by Debug: see below).
    Inline(Redacted),
    /// A key file given explicitly (`master_key_file` in the config, `CERTGATE_MASTER_KEY_FILE`).
    File(PathBuf),
    /// The default: `<data-dir>/master.key`, created with mode 0600 on first use (SQLite only).
    DataDir(PathBuf),
}

#[derive(Clone)]
pub struct Redacted(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
pub struct OpenOptions {
    pub store: StoreUrl,
    pub master_key: MasterKeySource,
    pub actor: String,
}

const CHECK_META: &str = "master_key_check";

impl Control {
    pub async fn open(opts: OpenOptions) -> Result<Control, ControlError> {
        if matches!(opts.store, StoreUrl::Postgres(_)) && matches!(opts.master_key, MasterKeySource::DataDir(_)) {
            // Refused before connecting, even when the data directory holds a key file: every
            // node must be given the one shared key, never one made or found locally.
            return Err(ControlError::MasterKey {
                message: format!(
                    "the PostgreSQL store {} needs its master key given explicitly; a data-directory key file is never used or created for it",
                    opts.store.redacted()
                ),
                hint: "set CERTGATE_MASTER_KEY (base64 of 32 bytes, the same on every node) or CERTGATE_MASTER_KEY_FILE / master_key_file in the config".into(),
            });
        }
        let store = Store::open(&opts.store).await?;
        let existing_check = store.meta(CHECK_META).await?;
        let key = load_key(&opts, existing_check.is_some())?;
        let check = match existing_check {
            Some(c) => c,
            None => {
                let sealed = key.seal(CHECK_PLAINTEXT, CHECK_AAD).map_err(|e| ControlError::crypto(e.to_string()))?;
                store.meta_init(CHECK_META, &hex::encode(sealed)).await?
            }
        };
        let opened = hex::decode(&check).ok().and_then(|sealed| key.open(&sealed, CHECK_AAD).ok());
        if opened.as_deref().map(|v| &v[..]) != Some(CHECK_PLAINTEXT) {
            let refusal = ControlError::MasterKey {
                message: format!(
                    "the master key (fingerprint {}) is not the one the store {} was sealed with",
                    key.fingerprint(),
                    opts.store.redacted()
                ),
                hint: if store.is_shared() {
                    "every node of a PostgreSQL store uses the one master key the store was first opened with: give this node the same CERTGATE_MASTER_KEY (or key file) as the others; nothing was read or changed"
                } else {
                    "give the store's own key (CERTGATE_MASTER_KEY or its key file); nothing was read or changed"
                }
                .into(),
            };
            store.close().await;
            return Err(refusal);
        }
        Ok(Control {
            store,
            key: std::sync::Arc::new(key),
            actor: opts.actor,
            now: std::sync::Arc::new(time::OffsetDateTime::now_utc),
        })
    }
}

fn load_key(opts: &OpenOptions, store_sealed: bool) -> Result<MasterKey, ControlError> {
    let fail = |message: String, hint: &str| ControlError::MasterKey { message, hint: hint.into() };
    match &opts.master_key {
        MasterKeySource::Inline(text) => MasterKey::from_base64(&text.0).map_err(|e| {
            fail(
                format!("CERTGATE_MASTER_KEY: {e}"),
                "set it to the base64 of 32 random bytes, e.g. from 'head -c 32 /dev/urandom | base64'",
            )
        }),
        MasterKeySource::File(path) => seal::read_key_file(path)
            .map_err(|e| fail(e.to_string(), "check the master key file path and its permissions")),
        MasterKeySource::DataDir(path) => {
            if matches!(opts.store, StoreUrl::Postgres(_)) {
                // Also refused in `Control::open` before connecting.
                return Err(fail(
                    "a PostgreSQL store needs its master key given explicitly".into(),
                    "set CERTGATE_MASTER_KEY (the same on every node) or CERTGATE_MASTER_KEY_FILE",
                ));
            }
            if path.exists() {
                return seal::read_key_file(path)
                    .map_err(|e| fail(e.to_string(), "restore the key file from your backup"));
            }
            if store_sealed {
                return Err(fail(
                    format!(
                        "the store {} holds sealed keys but the master key file {} is missing",
                        opts.store.redacted(),
                        path.display()
                    ),
                    "restore the key file from your backup, or set CERTGATE_MASTER_KEY",
                ));
            }
            if let Some(dir) = path.parent() {
                create_private_dir(dir).map_err(|e| {
                    fail(
                        format!("cannot create the data directory {}: {e}", dir.display()),
                        "check that the parent directory is writable",
                    )
                })?;
            }
            match seal::create_key_file(path) {
                Ok(key) => Ok(key),
                // Another process created it at the same moment: use theirs.
                Err(_) if path.exists() => {
                    seal::read_key_file(path).map_err(|e| fail(e.to_string(), "restore the key file from your backup"))
                }
                Err(e) => Err(fail(e.to_string(), "check that the data directory is writable")),
            }
        }
    }
}

/// Create a directory readable by its owner only (it holds the key file and the database).
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
