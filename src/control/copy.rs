//! `certgate store copy --from URL --to URL`: copy a whole store to another (SQLite to
//! PostgreSQL when one machine is outgrown, and back), private keys still sealed.
//!
//! What is copied: every certificate (sealed key as stored), trust anchor, binding, service,
//! token, app and grant, the `meta` rows the destination lacks (the master key check among
//! them), and the audit rows the destination does not have yet (see docs/decisions.md). Each
//! object is upserted by its name or key, and only when the destination's differs, so a
//! second copy writes nothing. What is written is one transaction with its own audit row
//! (`store.copy`), and the destination's revision then moves past the source's. At the end the
//! destination is read again and every source object must be there, equal: counts and
//! certificate ids are reported.

use std::collections::{HashMap, HashSet};

use crate::store::seal::{self, CHECK_AAD, CHECK_PLAINTEXT};
use crate::store::{
    AnchorRecord, AuditRecord, CertificateRecord, Change, CopyPlan, Dump, MasterKey, Store, StoreError, StoreUrl,
};

use super::{ControlError, MasterKeySource};

const CHECK_META: &str = "master_key_check";

pub struct CopyOptions {
    pub from: StoreUrl,
    pub to: StoreUrl,
    /// Only read (never created): it lets two stores whose key checks differ be recognised as
    /// sealed under the same key.
    pub master_key: Option<MasterKeySource>,
    pub actor: String,
}

/// One kind of object: how many the source has, how many the destination has after the copy,
/// and how many were written.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CopyCount {
    pub kind: &'static str,
    pub source: usize,
    pub destination: usize,
    pub written: usize,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CopiedCertificate {
    pub name: String,
    pub id: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct CopyReport {
    pub from: String,
    pub to: String,
    pub counts: Vec<CopyCount>,
    /// The destination's revision after the copy; `None` when there was nothing to write.
    pub revision: Option<i64>,
    /// Every source certificate, found in the destination with the same id and sealed key.
    pub certificates: Vec<CopiedCertificate>,
    /// SHA-256 over the sorted `name=id` lines, the same for both stores when verified.
    pub certificate_ids_sha256: String,
    /// Objects the destination has and the source has not: kept, not removed.
    pub only_in_destination: Vec<String>,
    /// What the verification found missing or different (empty: verified).
    pub problems: Vec<String>,
}

impl CopyReport {
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }
}

pub async fn copy_store(opts: CopyOptions) -> Result<CopyReport, ControlError> {
    if opts.from == opts.to {
        return Err(ControlError::usage(
            "usage",
            format!("--from and --to are the same store ({})", opts.from.redacted()),
            "give the store to copy with --from and the store to fill with --to",
        ));
    }
    if let StoreUrl::Sqlite(path) = &opts.from {
        // Opening a missing SQLite file would create an empty store and copy nothing.
        if !path.is_file() {
            return Err(ControlError::Store(StoreError::Unavailable(format!(
                "the source store {} does not exist",
                opts.from.redacted()
            ))));
        }
    }
    let from = Store::open(&opts.from).await?;
    let to = match Store::open(&opts.to).await {
        Ok(s) => s,
        Err(e) => {
            from.close().await;
            return Err(e.into());
        }
    };
    let result = copy_between(&from, &to, &opts).await;
    from.close().await;
    to.close().await;
    result
}

async fn copy_between(from: &Store, to: &Store, opts: &CopyOptions) -> Result<CopyReport, ControlError> {
    let src = from.dump().await?;
    let dst = to.dump().await?;
    check_master_key(&src, &dst, opts)?;
    let plan = plan(&src, &dst);
    let written = counts(&plan);
    let change = Change {
        actor: opts.actor.clone(),
        action: "store.copy".into(),
        target: opts.from.redacted(),
        detail: format!(
            "copied into {}: {}",
            opts.to.redacted(),
            written.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
        ),
    };
    let revision = to.apply_copy(&plan, &change).await?;
    let after = to.dump().await?;
    Ok(report(&src, &after, opts, revision, &written))
}

/// Both stores must seal under one master key, since keys move sealed.
fn check_master_key(src: &Dump, dst: &Dump, opts: &CopyOptions) -> Result<(), ControlError> {
    let (Some(a), Some(b)) = (meta(src, CHECK_META), meta(dst, CHECK_META)) else { return Ok(()) };
    if a == b {
        return Ok(());
    }
    // Same key sealed twice gives two different checks (random nonces): a key that opens both
    // proves the stores share it.
    let key = opts.master_key.as_ref().and_then(read_key);
    if let Some(key) = key {
        let opens = |check: &str| {
            hex::decode(check)
                .ok()
                .and_then(|s| key.open(&s, CHECK_AAD).ok())
                .is_some_and(|p| &p[..] == CHECK_PLAINTEXT)
        };
        if opens(a) && opens(b) {
            return Ok(());
        }
    }
    Err(ControlError::MasterKey {
        message: format!(
            "the destination {} is sealed with another master key than the source {}: certificates copied into it could not be opened",
            opts.to.redacted(),
            opts.from.redacted()
        ),
        hint: "copy into an empty store (it takes the source's key), or give the source's master key as CERTGATE_MASTER_KEY if both stores use it; nothing was changed".into(),
    })
}

/// The key named by the settings, read only: a data-directory key that does not exist is
/// never created here.
fn read_key(source: &MasterKeySource) -> Option<MasterKey> {
    match source {
        MasterKeySource::Inline(text) => MasterKey::from_base64(&text.0).ok(),
        MasterKeySource::File(path) => seal::read_key_file(path).ok(),
        MasterKeySource::DataDir(path) => path.is_file().then(|| seal::read_key_file(path).ok()).flatten(),
    }
}

fn meta<'a>(d: &'a Dump, key: &str) -> Option<&'a str> {
    d.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn same_cert(a: &CertificateRecord, b: &CertificateRecord) -> bool {
    a.name == b.name
        && a.id == b.id
        && a.leaf_der == b.leaf_der
        && a.chain_der == b.chain_der
        && a.sealed_key == b.sealed_key
        && a.key_format == b.key_format
        && a.owner == b.owner
        && a.created_at == b.created_at
        && a.updated_at == b.updated_at
}

fn same_anchor(a: &AnchorRecord, b: &AnchorRecord) -> bool {
    a.name == b.name && a.certs_der == b.certs_der && a.created_at == b.created_at
}

/// The source objects whose counterpart (same key) in `dst` is missing or different.
fn changed<'a, T: Clone, K: std::hash::Hash + Eq>(
    src: &'a [T],
    dst: &'a [T],
    key: impl Fn(&'a T) -> K,
    same: impl Fn(&T, &T) -> bool,
) -> Vec<T> {
    let there: HashMap<K, &T> = dst.iter().map(|r| (key(r), r)).collect();
    src.iter().filter(|r| there.get(&key(r)).is_none_or(|d| !same(r, d))).cloned().collect()
}

/// Audit rows are the same row when everything but their sequence number is.
fn audit_key(r: &AuditRecord) -> (i64, &str, &str, &str, &str, &str, i64) {
    (r.at, &r.actor, &r.action, &r.target, &r.result, &r.detail, r.revision)
}

fn plan(src: &Dump, dst: &Dump) -> CopyPlan {
    let have: HashSet<&str> = dst.meta.iter().map(|(k, _)| k.as_str()).collect();
    let logged: HashSet<_> = dst.audit.iter().map(audit_key).collect();
    CopyPlan {
        meta: src.meta.iter().filter(|(k, _)| !have.contains(k.as_str())).cloned().collect(),
        certificates: changed(&src.certificates, &dst.certificates, |r| r.name.as_str(), same_cert),
        anchors: changed(&src.anchors, &dst.anchors, |r| r.name.as_str(), same_anchor),
        bindings: changed(&src.bindings, &dst.bindings, |r| r.destination.as_str(), PartialEq::eq),
        services: changed(&src.services, &dst.services, |r| r.name.as_str(), PartialEq::eq),
        tokens: changed(&src.tokens, &dst.tokens, |r| r.name.as_str(), PartialEq::eq),
        apps: changed(&src.apps, &dst.apps, |r| r.name.as_str(), PartialEq::eq),
        grants: changed(&src.grants, &dst.grants, |r| (r.app.as_str(), r.certificate.as_str()), PartialEq::eq),
        audit: src.audit.iter().filter(|r| !logged.contains(&audit_key(r))).cloned().collect(),
        revision_floor: src.revision,
    }
}

fn counts(plan: &CopyPlan) -> Vec<(&'static str, usize)> {
    vec![
        ("certificates", plan.certificates.len()),
        ("trust anchors", plan.anchors.len()),
        ("bindings", plan.bindings.len()),
        ("services", plan.services.len()),
        ("tokens", plan.tokens.len()),
        ("apps", plan.apps.len()),
        ("grants", plan.grants.len()),
        ("audit rows", plan.audit.len()),
        ("meta rows", plan.meta.len()),
    ]
}

/// Read back: every source object must be in the destination, equal.
fn report(
    src: &Dump,
    dst: &Dump,
    opts: &CopyOptions,
    revision: Option<i64>,
    written: &[(&'static str, usize)],
) -> CopyReport {
    let mut problems = Vec::new();
    let mut only = Vec::new();
    let mut check = |kind: &'static str, missing: Vec<String>, extra: Vec<String>| {
        for m in missing {
            problems.push(format!("{kind}: '{m}' is missing or different in the destination"));
        }
        only.extend(extra.into_iter().map(|e| format!("{kind}: {e}")));
    };
    fn diff<T: Clone, K: std::hash::Hash + Eq + ToString>(
        src: &[T],
        dst: &[T],
        key: impl Fn(&T) -> K,
        same: impl Fn(&T, &T) -> bool,
    ) -> (Vec<String>, Vec<String>) {
        let there: HashMap<K, &T> = dst.iter().map(|r| (key(r), r)).collect();
        let here: HashSet<K> = src.iter().map(&key).collect();
        let missing =
            src.iter().filter(|r| there.get(&key(r)).is_none_or(|d| !same(r, d))).map(|r| key(r).to_string()).collect();
        let extra = dst.iter().map(&key).filter(|k| !here.contains(k)).map(|k| k.to_string()).collect();
        (missing, extra)
    }
    let (m, e) = diff(&src.certificates, &dst.certificates, |r| r.name.clone(), same_cert);
    check("certificate", m, e);
    let (m, e) = diff(&src.anchors, &dst.anchors, |r| r.name.clone(), same_anchor);
    check("trust anchor", m, e);
    let (m, e) = diff(&src.bindings, &dst.bindings, |r| r.destination.clone(), PartialEq::eq);
    check("binding", m, e);
    let (m, e) = diff(&src.services, &dst.services, |r| r.name.clone(), PartialEq::eq);
    check("service", m, e);
    let (m, e) = diff(&src.tokens, &dst.tokens, |r| r.name.clone(), PartialEq::eq);
    check("token", m, e);
    let (m, e) = diff(&src.apps, &dst.apps, |r| r.name.clone(), PartialEq::eq);
    check("app", m, e);
    let (m, e) = diff(&src.grants, &dst.grants, |r| format!("{}/{}", r.app, r.certificate), PartialEq::eq);
    check("grant", m, e);
    let logged: HashSet<_> = dst.audit.iter().map(audit_key).collect();
    let unlogged = src.audit.iter().filter(|r| !logged.contains(&audit_key(r))).count();
    if unlogged > 0 {
        problems.push(format!("audit: {unlogged} source row(s) are not in the destination"));
    }
    if meta(src, CHECK_META).is_some() && meta(dst, CHECK_META).is_none() {
        problems.push("meta: the destination has no master key check".into());
    }
    let written_of = |kind: &str| written.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n).unwrap_or(0);
    let count = |kind: &'static str, s: usize, d: usize| CopyCount {
        kind,
        source: s,
        destination: d,
        written: written_of(kind),
    };
    let counts = vec![
        count("certificates", src.certificates.len(), dst.certificates.len()),
        count("trust anchors", src.anchors.len(), dst.anchors.len()),
        count("bindings", src.bindings.len(), dst.bindings.len()),
        count("services", src.services.len(), dst.services.len()),
        count("tokens", src.tokens.len(), dst.tokens.len()),
        count("apps", src.apps.len(), dst.apps.len()),
        count("grants", src.grants.len(), dst.grants.len()),
        count("audit rows", src.audit.len(), dst.audit.len()),
    ];
    let certificates: Vec<CopiedCertificate> =
        src.certificates.iter().map(|c| CopiedCertificate { name: c.name.to_string(), id: c.id.to_string() }).collect();
    let ids = |certs: &[CertificateRecord]| {
        let mut lines: Vec<String> = certs.iter().map(|c| format!("{}={}\n", c.name, c.id)).collect();
        lines.sort();
        crate::pki::facts::sha256_hex(lines.concat().as_bytes())
    };
    let source_ids = ids(&src.certificates);
    let dest_ids = ids(&dst.certificates);
    if source_ids != dest_ids && only.iter().all(|o| !o.starts_with("certificate:")) {
        problems.push("certificate ids: the destination's list differs from the source's".into());
    }
    CopyReport {
        from: opts.from.redacted(),
        to: opts.to.redacted(),
        counts,
        revision,
        certificates,
        certificate_ids_sha256: source_ids,
        only_in_destination: only,
        problems,
    }
}
