//! Declarative configuration: plan a [`Document`] against the store (create / replace / remove /
//! unchanged per object), then apply the plan as one change: one transaction, one revision bump,
//! one audit row per object changed, all carrying the same apply id.
//!
//! Everything that can fail on the input happens while planning, before the transaction:
//! reading and decrypting files, names, references between objects, trust policies, URLs. A
//! refusal says where (the file, and the line of the object) and changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{Action, AppName, CertificateName, ErrorCode, Remedy};
use crate::pki::{bundle, Password, Refusal};
use crate::routes::{Destination, Pin, TrustPolicy};
use crate::store::{
    AnchorRecord, AppRecord, BindingRecord, CertificateRecord, Change, GrantRecord, ServiceRecord, Snapshot, StoreError,
};

use super::bindings::{binding_parts, candidates_text, check_candidates, service_url};
use super::document::{
    line_of, AnchorDecl, AppDecl, BindingDecl, CertificateDecl, Document, PasswordSource, ServiceDecl,
};
use super::expiry::owner_fields;
use super::{to_pem, validate_name, BindRequest, Control, ControlError, ImportRequest, InputFile, NewApp};

/// Where the files and passwords an apply file names may come from.
#[derive(Clone, Debug)]
pub enum Sources {
    /// The command line: files on this machine (relative paths from `base`, the apply file's
    /// folder) and the process's environment.
    Local { base: PathBuf },
    /// The admin API and the console: no server files, no server environment. Certificates by
    /// `id` only (upload them first), trust anchors as inline `pem`.
    IdsOnly,
}

/// An apply file to plan.
pub struct ApplyInput {
    /// The file's name in messages (its path, or `document` for the API).
    pub label: String,
    /// The text it was parsed from, to find the line of an object in messages.
    pub text: Option<String>,
    pub document: Document,
    pub sources: Sources,
    /// Remove what the document does not declare.
    pub prune: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepAction {
    Create,
    Replace,
    Remove,
    Unchanged,
}

impl StepAction {
    pub fn as_str(self) -> &'static str {
        match self {
            StepAction::Create => "create",
            StepAction::Replace => "replace",
            StepAction::Remove => "remove",
            StepAction::Unchanged => "unchanged",
        }
    }

    /// The sign a plan is printed with (`+`, `~`, `-`, ` `).
    pub fn sign(self) -> char {
        match self {
            StepAction::Create => '+',
            StepAction::Replace => '~',
            StepAction::Remove => '-',
            StepAction::Unchanged => ' ',
        }
    }
}

/// One object of the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub action: StepAction,
    /// `certificate`, `trust-anchor`, `binding`, `service`, `app` or `grant`.
    pub kind: &'static str,
    /// The object's name (a destination for bindings, `APP/CERTIFICATE` for grants).
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub create: usize,
    pub replace: usize,
    pub remove: usize,
    pub unchanged: usize,
}

/// The plan, and after applying it the revision it committed.
#[derive(Clone, Debug, Serialize)]
pub struct PlanView {
    /// Carried by every audit row of this apply.
    pub apply_id: String,
    /// The store revision the plan was made against.
    pub revision: i64,
    pub prune: bool,
    pub steps: Vec<Step>,
    pub summary: Summary,
    pub applied: bool,
    /// The revision after applying (the same as `revision` when nothing changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision_after: Option<i64>,
    /// Credentials of the apps this apply created: shown once, stored hashed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<NewApp>,
}

impl PlanView {
    pub fn changes(&self) -> usize {
        self.summary.create + self.summary.replace + self.summary.remove
    }
}

/// A write of the plan, in the order it runs.
enum Op {
    InsertAnchor(AnchorRecord),
    ReplaceAnchor(AnchorRecord),
    InsertCertificate(CertificateRecord),
    ReplaceCertificate(CertificateRecord),
    /// (`certificate` or `trust-anchor`, name, owner, contact): `None` clears.
    SetOwner(&'static str, String, Option<String>, Option<String>),
    PutBinding(BindingRecord),
    PutService(ServiceRecord, Option<BindingRecord>),
    InsertApp(AppRecord),
    PutGrant(GrantRecord),
    DeleteGrant(String, String),
    DeleteApp(String),
    DeleteService(String),
    DeleteBinding(String),
    DeleteCertificate(String),
    DeleteAnchor(String),
}

/// A plan ready to apply: the steps to show and the writes (sealed keys only). No Debug: it
/// holds key material, sealed.
pub struct Prepared {
    pub view: PlanView,
    /// Certificate name -> id, of every certificate the document declares.
    pub ids: BTreeMap<String, String>,
    /// (step index, write) in execution order.
    ops: Vec<(usize, Op)>,
    credentials: Vec<NewApp>,
}

impl Prepared {
    /// What is left of a plan once applied: its view and the certificate ids.
    pub fn applied(view: PlanView, ids: BTreeMap<String, String>) -> Prepared {
        Prepared { view, ids, ops: Vec::new(), credentials: Vec::new() }
    }
}

/// Where an object sits in the file, for messages: `FILE:LINE: KIND 'NAME'`.
struct Locator<'a> {
    label: &'a str,
    text: Option<&'a str>,
}

impl Locator<'_> {
    fn at(&self, kind: &str, key: &str, name: &str, nth: usize) -> String {
        let line = self.text.and_then(|t| line_of(t, key, name, nth));
        match line {
            Some(l) => format!("{}:{l}: {kind} '{name}'", self.label),
            None => format!("{}: {kind} '{name}'", self.label),
        }
    }
}

/// Put `place` in front of an error's message.
fn placed(place: &str, e: ControlError) -> ControlError {
    match e {
        ControlError::Refused(mut r) => {
            r.message = format!("{place}: {}", r.message);
            ControlError::Refused(r)
        }
        ControlError::Usage { code, message, hint } => {
            ControlError::Usage { code, message: format!("{place}: {message}"), hint }
        }
        ControlError::NotFound { what, hint } => ControlError::NotFound { what: format!("{place}: {what}"), hint },
        ControlError::Conflict { code, message, hint } => {
            ControlError::Conflict { code, message: format!("{place}: {message}"), hint }
        }
        other => other,
    }
}

fn usage(place: &str, message: impl std::fmt::Display, hint: impl Into<Remedy>) -> ControlError {
    ControlError::usage("usage", format!("{place}: {message}"), hint)
}

/// Refuse a name declared twice in one kind.
fn once<'a>(
    seen: &mut HashMap<&'a str, ()>,
    name: &'a str,
    place: impl FnOnce() -> String,
) -> Result<(), ControlError> {
    if seen.insert(name, ()).is_some() {
        return Err(usage(&place(), "is declared twice", "declare each object once"));
    }
    Ok(())
}

fn new_apply_id() -> Result<String, ControlError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ControlError::crypto("the system random generator failed"))?;
    Ok(hex::encode(bytes))
}

/// Read a file the document names (relative to the apply file's folder), at most the size
/// certgate reads certificate files of.
fn read_file(base: &Path, name: &str, place: &str) -> Result<InputFile, ControlError> {
    let path = base.join(name);
    let label = path.display().to_string();
    let file = std::fs::File::open(&path).map_err(|e| ControlError::NotFound {
        what: format!("{place}: file {label}"),
        hint: format!("check the path ({e}); a relative path starts at the apply file's folder").into(),
    })?;
    let mut data = Vec::new();
    file.take(bundle::MAX_INPUT_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| usage(place, format!("cannot read {label}: {e}"), "check the file's permissions"))?;
    if data.len() > bundle::MAX_INPUT_BYTES {
        return Err(placed(place, bundle::too_large(data.len()).in_file(&label).into()));
    }
    Ok(InputFile { label, data })
}

fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// `certificate = NAME` or `certificates = [NAME, ...]` (not both, the list not empty): the
/// candidates, or None when the declaration names none.
fn declared_candidates(
    one: &Option<String>,
    list: &[String],
    place: &str,
) -> Result<Option<Vec<String>>, ControlError> {
    match (one, list.is_empty()) {
        (Some(_), false) => Err(usage(
            place,
            "has both certificate and certificates",
            "one certificate in certificate, or several in order of preference in certificates",
        )),
        (Some(c), true) => Ok(Some(vec![c.clone()])),
        (None, false) => Ok(Some(list.to_vec())),
        (None, true) => Ok(None),
    }
}

/// How export writes a binding's candidates: one as `certificate`, several as `certificates`.
fn declared_form(b: &BindingRecord) -> (Option<String>, Vec<String>) {
    if b.alternates.is_empty() {
        (b.certificate.as_ref().map(|c| c.to_string()), Vec::new())
    } else {
        (None, b.candidates().map(str::to_string).collect())
    }
}

fn binding_equal(a: &BindingRecord, b: &BindingRecord) -> bool {
    a.certificate == b.certificate
        && a.alternates == b.alternates
        && a.trust == b.trust
        && a.sni == b.sni
        && a.pins == b.pins
        && a.allow_renegotiation == b.allow_renegotiation
}

fn describe_binding(b: &BindingRecord) -> String {
    let mut s = format!("{} trust {}", candidates_text(b), b.trust);
    if let Some(sni) = &b.sni {
        s.push_str(&format!(" sni {sni}"));
    }
    if !b.pins.is_empty() {
        s.push_str(&format!(" pins {}", b.pins.len()));
    }
    if b.allow_renegotiation {
        s.push_str(" renegotiation allowed");
    }
    s
}

struct Planner<'a> {
    control: &'a Control,
    input: &'a ApplyInput,
    loc: Locator<'a>,
    snap: Snapshot,
    steps: Vec<Step>,
    ops: Vec<(usize, Op)>,
    credentials: Vec<NewApp>,
    ids: BTreeMap<String, String>,
    now: i64,
}

impl Planner<'_> {
    fn step(&mut self, action: StepAction, kind: &'static str, name: &str, detail: String, op: Option<Op>) {
        let index = self.steps.len();
        self.steps.push(Step { action, kind, name: name.to_string(), detail });
        if let Some(op) = op {
            self.ops.push((index, op));
        }
    }

    fn anchors(&mut self, decls: &[AnchorDecl]) -> Result<(), ControlError> {
        let mut seen = HashMap::new();
        for (i, d) in decls.iter().enumerate() {
            let place = self.loc.at("trust anchor", "name", &d.name, 0);
            validate_name("trust anchor", &d.name).map_err(|e| placed(&place, e))?;
            let nth = decls[..i].iter().filter(|o| o.name == d.name).count();
            once(&mut seen, &d.name, || self.loc.at("trust anchor", "name", &d.name, nth))?;
            let (label, data) = match (&d.file, &d.pem, &self.input.sources) {
                (Some(_), Some(_), _) | (None, None, _) => {
                    return Err(usage(
                        &place,
                        "needs either file or pem",
                        "give the CA certificate as a file or as PEM text",
                    ))
                }
                (Some(_), None, Sources::IdsOnly) => {
                    return Err(usage(
                        &place,
                        "names a file, which a document sent to the server cannot",
                        "put the CA certificate's PEM text in the document instead (pem)",
                    ))
                }
                (Some(f), None, Sources::Local { base }) => {
                    let file = read_file(base, f, &place)?;
                    (file.label, file.data)
                }
                (None, Some(pem), _) => ("pem".to_string(), pem.as_bytes().to_vec()),
            };
            let contents = bundle::read(&data, None).map_err(|r| placed(&place, r.in_file(&label).into()))?;
            if !contents.keys.is_empty() {
                return Err(ControlError::Refused(Refusal::new(
                    ErrorCode::NotACertificate,
                    format!("{place}: {label} holds a private key; a trust anchor is a CA certificate only"),
                    "give the partner's CA certificate (public part), never a private key",
                )));
            }
            if contents.certs.is_empty() {
                return Err(ControlError::Refused(Refusal::new(
                    ErrorCode::NotACertificate,
                    format!("{place}: {label} holds no certificate"),
                    "give the partner's CA certificate as PEM or DER",
                )));
            }
            let mut certs: Vec<Vec<u8>> = Vec::new();
            for c in &contents.certs {
                if !certs.contains(&c.der) {
                    certs.push(c.der.clone());
                }
            }
            let subjects: Vec<&str> = contents.certs.iter().map(|c| c.subject.as_str()).collect();
            let detail = subjects.join("; ");
            let (owner, contact) =
                owner_fields(d.owner.as_deref(), d.contact.as_deref()).map_err(|e| placed(&place, e))?;
            let rec = AnchorRecord {
                name: d.name.clone(),
                certs_der: certs,
                created_at: self.now,
                owner: owner.clone(),
                contact: contact.clone(),
            };
            match self.snap.anchors.iter().find(|a| a.name == d.name).cloned() {
                Some(old) if old.certs_der == rec.certs_der => {
                    self.owner_only("trust-anchor", &d.name, (owner, contact), (&old.owner, &old.contact))
                }
                Some(old) => {
                    self.step(StepAction::Replace, "trust-anchor", &d.name, detail, Some(Op::ReplaceAnchor(rec)));
                    if (&owner, &contact) != (&old.owner, &old.contact) {
                        let op = Op::SetOwner("trust-anchor", d.name.clone(), owner, contact);
                        self.ops.push((self.steps.len() - 1, op));
                    }
                }
                None => self.step(StepAction::Create, "trust-anchor", &d.name, detail, Some(Op::InsertAnchor(rec))),
            }
        }
        Ok(())
    }

    fn password(&self, d: &CertificateDecl, place: &str) -> Result<Option<Password>, ControlError> {
        if let Some(p) = &d.given_password {
            return Ok(Some(p.clone()));
        }
        let Some(text) = &d.password else { return Ok(None) };
        let source = PasswordSource::parse(text).map_err(|e| {
            usage(place, e, "e.g. password = \"env:PARTNER_PFX_PASSWORD\" or \"file:/run/secrets/partner\"")
        })?;
        let Sources::Local { base } = &self.input.sources else {
            return Err(usage(
                place,
                "names a password source, which a document sent to the server cannot",
                "import the certificate first and declare it by id",
            ));
        };
        match source {
            PasswordSource::Env(var) => std::env::var(&var).map(|v| Some(Password::new(v))).map_err(|_| {
                usage(place, format!("the environment variable {var} is not set"), "set it before applying the file")
            }),
            PasswordSource::File(path) => {
                let path = base.join(path);
                std::fs::read_to_string(&path).map(|t| Some(Password::new(strip_newline(t)))).map_err(|e| {
                    usage(
                        place,
                        format!("cannot read the password file {}: {e}", path.display()),
                        "check the path and its permissions",
                    )
                })
            }
        }
    }

    fn certificates(&mut self, decls: &[CertificateDecl]) -> Result<(), ControlError> {
        let mut seen = HashMap::new();
        for (i, d) in decls.iter().enumerate() {
            let place = self.loc.at("certificate", "name", &d.name, 0);
            validate_name("certificate", &d.name).map_err(|e| placed(&place, e))?;
            let nth = decls[..i].iter().filter(|o| o.name == d.name).count();
            once(&mut seen, &d.name, || self.loc.at("certificate", "name", &d.name, nth))?;
            if let Some(id) = &d.id {
                if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                    return Err(usage(
                        &place,
                        format!("'{id}' is not a certificate id"),
                        "an id is the SHA-256 of the certificate, 64 lowercase hex digits, as listings show it",
                    ));
                }
            }
            let stored = self.snap.certificates.iter().find(|c| c.name == d.name).cloned();
            let (owner, contact) =
                owner_fields(d.owner.as_deref(), d.contact.as_deref()).map_err(|e| placed(&place, e))?;
            let fields = (owner.clone(), contact.clone());
            match &d.file {
                Some(file) => {
                    if matches!(self.input.sources, Sources::IdsOnly) {
                        return Err(usage(
                            &place,
                            "names a file, which a document sent to the server cannot",
                            "import the certificate first (upload it), then declare it by id",
                        ));
                    }
                    let Sources::Local { base } = &self.input.sources else { unreachable!() };
                    let input = read_file(base, file, &place)?;
                    let password = self.password(d, &place)?;
                    let req = ImportRequest {
                        name: d.name.clone(),
                        files: vec![input],
                        password,
                        owner: owner.clone(),
                        contact: contact.clone(),
                    };
                    let identity = Control::read_identity(&req).map_err(|e| placed(&place, e))?;
                    if let Some(id) = &d.id {
                        if *id != identity.leaf.id {
                            return Err(ControlError::Refused(Refusal::new(
                                ErrorCode::KeyMismatch,
                                format!(
                                    "{place}: the file holds the certificate {}, not the declared id {id}",
                                    identity.leaf.id
                                ),
                                "give the file of the declared certificate, or change the id to the file's",
                            )));
                        }
                    }
                    let detail = format!("id {} subject {}", identity.leaf.id, identity.leaf.subject);
                    self.ids.insert(d.name.clone(), identity.leaf.id.to_string());
                    match stored {
                        Some(old) if old.id == identity.leaf.id => {
                            self.owner_only("certificate", &d.name, fields, (&old.owner, &old.contact))
                        }
                        Some(old) => {
                            let mut rec = self.control.record(&d.name, &identity, owner.clone(), contact.clone())?;
                            rec.created_at = old.created_at;
                            let detail =
                                format!("id {} -> {} subject {}", old.id, identity.leaf.id, identity.leaf.subject);
                            self.step(
                                StepAction::Replace,
                                "certificate",
                                &d.name,
                                detail,
                                Some(Op::ReplaceCertificate(rec)),
                            );
                            if (&owner, &contact) != (&old.owner, &old.contact) {
                                let op = Op::SetOwner("certificate", d.name.clone(), owner, contact);
                                self.ops.push((self.steps.len() - 1, op));
                            }
                        }
                        None => {
                            let rec = self.control.record(&d.name, &identity, owner, contact)?;
                            self.step(
                                StepAction::Create,
                                "certificate",
                                &d.name,
                                detail,
                                Some(Op::InsertCertificate(rec)),
                            );
                        }
                    }
                }
                None => {
                    let Some(id) = &d.id else {
                        return Err(usage(
                            &place,
                            "needs a file (with its password source) or the id of a certificate already in the store",
                            "add file and password, or the id the certificate listing shows",
                        ));
                    };
                    self.ids.insert(d.name.clone(), id.clone());
                    match stored {
                        Some(old) if old.id == *id => {
                            self.owner_only("certificate", &d.name, fields, (&old.owner, &old.contact))
                        }
                        Some(old) => return Err(ControlError::Conflict {
                            code: ErrorCode::Usage,
                            message: format!(
                                "{place}: the store's certificate has id {}, the file declares {id}",
                                old.id
                            ),
                            hint: Remedy::new(
                                "give the new certificate's file and password to replace it, or declare the stored id",
                            ),
                        }),
                        None => {
                            return Err(ControlError::NotFound {
                                what: format!("{place}: id {id} in the store"),
                                hint: Remedy::with(
                                    "add the certificate's file and password to the declaration, or import it first",
                                    Action::ImportCertificate(Some(d.name.clone())),
                                ),
                            })
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The same material as stored: unchanged, or only the owner and contact change.
    fn owner_only(
        &mut self,
        kind: &'static str,
        name: &str,
        (owner, contact): (Option<String>, Option<String>),
        (old_owner, old_contact): (&Option<String>, &Option<String>),
    ) {
        if (&owner, &contact) == (old_owner, old_contact) {
            self.step(StepAction::Unchanged, kind, name, String::new(), None);
            return;
        }
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let mut parts = Vec::new();
        if &owner != old_owner {
            parts.push(format!("owner {} -> {}", text(old_owner), text(&owner)));
        }
        if &contact != old_contact {
            parts.push(format!("contact {} -> {}", text(old_contact), text(&contact)));
        }
        let op = Op::SetOwner(kind, name.to_string(), owner, contact);
        self.step(StepAction::Replace, kind, name, parts.join("; "), Some(op));
    }

    /// Trust anchors a policy may name: declared in the file, or (without prune) in the store.
    fn check_anchors(&self, trust: &TrustPolicy, place: &str) -> Result<(), ControlError> {
        if let TrustPolicy::Anchors(names) = trust {
            for name in names {
                let declared = self.input.document.trust_anchors.iter().any(|a| a.name == *name);
                let stored = !self.input.prune && self.snap.anchors.iter().any(|a| a.name == *name);
                if !declared && !stored {
                    return Err(ControlError::NotFound {
                        what: format!("{place}: trust anchor '{name}'"),
                        hint: Remedy::with(
                            "declare the anchor in the file (trust_anchors), or check the name",
                            Action::ListTrustAnchors,
                        ),
                    });
                }
            }
        }
        Ok(())
    }

    /// A certificate a binding, service or grant names must be declared in the file.
    fn check_certificate(&self, name: &str, place: &str) -> Result<(), ControlError> {
        if self.input.document.certificates.iter().any(|c| c.name == name) {
            return Ok(());
        }
        Err(ControlError::NotFound {
            what: format!("{place}: certificate '{name}' among the file's certificates"),
            hint: Remedy::new(
                "declare the certificate in the file (by id when it is already in the store), or check the name",
            ),
        })
    }

    /// A binding of `destination` as `req` (its own destination field unused) declares it.
    fn binding(&self, destination: String, req: BindRequest, place: &str) -> Result<BindingRecord, ControlError> {
        check_candidates(&req.certificates).map_err(|e| placed(place, e))?;
        let typed = req
            .certificates
            .iter()
            .map(|c| CertificateName::parse(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| placed(place, e.into()))?;
        for cert in &typed {
            self.check_certificate(cert, place)?;
        }
        let (trust, sni, pins): (TrustPolicy, Option<String>, Vec<Pin>) =
            binding_parts(&req).map_err(|e| placed(place, e))?;
        self.check_anchors(&trust, place)?;
        let mut certificates = typed.into_iter();
        Ok(BindingRecord {
            destination,
            certificate: certificates.next(),
            alternates: certificates.collect(),
            trust,
            sni,
            pins,
            allow_renegotiation: req.allow_renegotiation,
            created_at: self.now,
            updated_at: self.now,
        })
    }

    fn bindings(&mut self, decls: &[BindingDecl]) -> Result<BTreeSet<String>, ControlError> {
        let mut keys = BTreeSet::new();
        for (i, d) in decls.iter().enumerate() {
            let nth = decls[..i].iter().filter(|o| o.destination == d.destination).count();
            let place = self.loc.at("binding", "destination", &d.destination, nth);
            let parsed = Destination::parse(&d.destination)
                .map_err(|e| usage(&place, e, "a destination is host, host:port, *.domain or a URL"))?;
            if matches!(parsed.destination, Destination::Service(_)) {
                return Err(usage(
                    &place,
                    "is a named service's binding",
                    "declare it under services, with the service's URL and certificate",
                ));
            }
            let key = parsed.destination.key();
            if !keys.insert(key.clone()) {
                return Err(usage(
                    &place,
                    format!("binds {key}, which the file binds already"),
                    "bind each destination once",
                ));
            }
            let certificates = match (declared_candidates(&d.certificate, &d.certificates, &place)?, d.no_cert) {
                (Some(_), true) => {
                    return Err(usage(&place, "has both a certificate and no_cert", "choose one"));
                }
                (None, false) => return Err(usage(
                    &place,
                    "names no certificate",
                    "give certificate = NAME (or certificates = [NAME, ...]), or no_cert = true to send no certificate",
                )),
                (c, _) => c.unwrap_or_default(),
            };
            let req = BindRequest {
                destination: String::new(),
                certificates,
                trust: d.trust.clone(),
                sni: d.sni.clone(),
                pins: d.pins.clone(),
                allow_renegotiation: d.allow_renegotiation,
            };
            let rec = self.binding(key.clone(), req, &place)?;
            let mut detail = describe_binding(&rec);
            if let Some(url) = &parsed.reduced_from {
                detail.push_str(&format!(" (reduced from {url})"));
            }
            match self.snap.bindings.iter().find(|b| b.destination == key) {
                Some(old) if binding_equal(old, &rec) => {
                    self.step(StepAction::Unchanged, "binding", &key, String::new(), None)
                }
                Some(old) => {
                    let detail = format!("{} -> {detail}", describe_binding(old));
                    self.step(StepAction::Replace, "binding", &key, detail, Some(Op::PutBinding(rec)))
                }
                None => self.step(StepAction::Create, "binding", &key, detail, Some(Op::PutBinding(rec))),
            }
        }
        Ok(keys)
    }

    fn services(&mut self, decls: &[ServiceDecl]) -> Result<(), ControlError> {
        let mut seen = HashMap::new();
        for (i, d) in decls.iter().enumerate() {
            let place = self.loc.at("service", "name", &d.name, 0);
            validate_name("service", &d.name).map_err(|e| placed(&place, e))?;
            let nth = decls[..i].iter().filter(|o| o.name == d.name).count();
            once(&mut seen, &d.name, || self.loc.at("service", "name", &d.name, nth))?;
            let url = service_url(&d.url).map_err(|e| placed(&place, e))?;
            let key = format!("service:{}", d.name);
            let binding = match (declared_candidates(&d.certificate, &d.certificates, &place)?, d.no_cert) {
                (Some(_), true) => return Err(usage(&place, "has both a certificate and no_cert", "choose one")),
                (None, false) if d.trust.is_some() || d.sni.is_some() || !d.pins.is_empty() || d.allow_renegotiation => {
                    return Err(usage(
                        &place,
                        "has a trust policy, SNI, pins or renegotiation but neither a certificate nor no_cert",
                        "choose the certificate (or no_cert) too; without either, the binding of the URL's host applies",
                    ))
                }
                (None, false) => None,
                (None, true) if d.allow_renegotiation => {
                    return Err(usage(
                        &place,
                        "allows renegotiation without a certificate",
                        "renegotiation is for a partner that asks for the certificate after the request: name the certificate",
                    ))
                }
                (c, _) => {
                    let req = BindRequest {
                        destination: String::new(),
                        certificates: c.unwrap_or_default(),
                        trust: d.trust.clone(),
                        sni: d.sni.clone(),
                        pins: d.pins.clone(),
                        allow_renegotiation: d.allow_renegotiation,
                    };
                    Some(self.binding(key.clone(), req, &place)?)
                }
            };
            let svc =
                ServiceRecord { name: d.name.clone(), url: url.clone(), created_at: self.now, updated_at: self.now };
            let via = match &binding {
                Some(b) => describe_binding(b),
                None => "the binding of its host".into(),
            };
            let old_binding = self.snap.bindings.iter().find(|b| b.destination == key);
            let detail = format!("{url} via {via}");
            match self.snap.services.iter().find(|s| s.name == d.name) {
                Some(old) => {
                    let same_binding = match (old_binding, &binding) {
                        (None, None) => true,
                        (Some(a), Some(b)) => binding_equal(a, b),
                        _ => false,
                    };
                    if old.url == url && same_binding {
                        self.step(StepAction::Unchanged, "service", &d.name, String::new(), None);
                    } else {
                        self.step(StepAction::Replace, "service", &d.name, detail, Some(Op::PutService(svc, binding)));
                    }
                }
                None => self.step(StepAction::Create, "service", &d.name, detail, Some(Op::PutService(svc, binding))),
            }
        }
        Ok(())
    }

    fn apps(&mut self, decls: &[AppDecl]) -> Result<(), ControlError> {
        let mut seen = HashMap::new();
        let mut grant_steps = Vec::new();
        for (i, d) in decls.iter().enumerate() {
            let place = self.loc.at("app", "name", &d.name, 0);
            validate_name("app", &d.name).map_err(|e| placed(&place, e))?;
            let nth = decls[..i].iter().filter(|o| o.name == d.name).count();
            once(&mut seen, &d.name, || self.loc.at("app", "name", &d.name, nth))?;
            if self.snap.apps.iter().any(|a| a.name == d.name) {
                self.step(StepAction::Unchanged, "app", &d.name, String::new(), None);
            } else {
                let app = self.control.new_app_record(&d.name)?;
                let detail = "a new credential, shown once".to_string();
                self.step(StepAction::Create, "app", &d.name, detail, Some(Op::InsertApp(app.0)));
                self.credentials.push(app.1);
            }
            let mut granted = BTreeSet::new();
            let app = AppName::parse(&d.name).map_err(|e| placed(&place, e.into()))?;
            for cert in &d.grants {
                let cert = &CertificateName::parse(cert).map_err(|e| placed(&place, e.into()))?;
                self.check_certificate(cert, &place)?;
                if !granted.insert(cert.clone()) {
                    continue;
                }
                let name = format!("{}/{cert}", d.name);
                let exists = self.snap.grants.iter().any(|g| g.app == app && g.certificate == *cert);
                let rec = GrantRecord { app: app.clone(), certificate: cert.clone(), created_at: self.now };
                grant_steps.push((exists, name, rec));
            }
            if self.input.prune {
                let undeclared: Vec<GrantRecord> = self
                    .snap
                    .grants
                    .iter()
                    .filter(|g| g.app == d.name && !granted.contains(&g.certificate))
                    .cloned()
                    .collect();
                for g in undeclared {
                    let name = format!("{}/{}", g.app, g.certificate);
                    let op = Op::DeleteGrant(g.app.into_string(), g.certificate.into_string());
                    self.step(StepAction::Remove, "grant", &name, "not declared".into(), Some(op));
                }
            }
        }
        for (exists, name, rec) in grant_steps {
            if exists {
                self.step(StepAction::Unchanged, "grant", &name, String::new(), None);
            } else {
                self.step(StepAction::Create, "grant", &name, String::new(), Some(Op::PutGrant(rec)));
            }
        }
        Ok(())
    }

    /// With prune: everything in the store the document does not declare (tokens excepted).
    fn prune(&mut self, binding_keys: &BTreeSet<String>) {
        let doc = &self.input.document;
        let declared_apps: BTreeSet<&str> = doc.apps.iter().map(|a| a.name.as_str()).collect();
        let declared_services: BTreeSet<&str> = doc.services.iter().map(|s| s.name.as_str()).collect();
        let declared_certs: BTreeSet<&str> = doc.certificates.iter().map(|c| c.name.as_str()).collect();
        let declared_anchors: BTreeSet<&str> = doc.trust_anchors.iter().map(|a| a.name.as_str()).collect();
        let mut removals = Vec::new();
        for a in self.snap.apps.iter().filter(|a| !declared_apps.contains(a.name.as_str())) {
            let grants: Vec<&str> =
                self.snap.grants.iter().filter(|g| g.app == a.name).map(|g| g.certificate.as_str()).collect();
            let detail =
                if grants.is_empty() { String::new() } else { format!("with its grants {}", grants.join(", ")) };
            removals.push(("app", a.name.to_string(), detail, Op::DeleteApp(a.name.to_string())));
        }
        for s in self.snap.services.iter().filter(|s| !declared_services.contains(s.name.as_str())) {
            removals.push(("service", s.name.clone(), s.url.clone(), Op::DeleteService(s.name.clone())));
        }
        for b in &self.snap.bindings {
            if b.destination.starts_with("service:") || binding_keys.contains(&b.destination) {
                continue;
            }
            removals.push((
                "binding",
                b.destination.clone(),
                describe_binding(b),
                Op::DeleteBinding(b.destination.clone()),
            ));
        }
        for c in self.snap.certificates.iter().filter(|c| !declared_certs.contains(c.name.as_str())) {
            removals.push((
                "certificate",
                c.name.to_string(),
                format!("id {}", c.id),
                Op::DeleteCertificate(c.name.to_string()),
            ));
        }
        for a in self.snap.anchors.iter().filter(|a| !declared_anchors.contains(a.name.as_str())) {
            removals.push(("trust-anchor", a.name.clone(), String::new(), Op::DeleteAnchor(a.name.clone())));
        }
        for (kind, name, detail, op) in removals {
            self.step(StepAction::Remove, kind, &name, detail, Some(op));
        }
    }
}

impl Control {
    /// Plan an apply file against the store: nothing is written. Files are read and decrypted
    /// here, keys sealed; a refusal says where and what.
    pub async fn plan(&self, input: &ApplyInput) -> Result<Prepared, ControlError> {
        let snap = self.store.snapshot().await?;
        let revision = snap.revision;
        let mut p = Planner {
            control: self,
            input,
            loc: Locator { label: &input.label, text: input.text.as_deref() },
            snap,
            steps: Vec::new(),
            ops: Vec::new(),
            credentials: Vec::new(),
            ids: BTreeMap::new(),
            now: self.now().unix_timestamp(),
        };
        let doc = &input.document;
        p.anchors(&doc.trust_anchors)?;
        p.certificates(&doc.certificates)?;
        let keys = p.bindings(&doc.bindings)?;
        p.services(&doc.services)?;
        p.apps(&doc.apps)?;
        if input.prune {
            p.prune(&keys);
        }
        // Writes in dependency order: what others name first, removals of what names others
        // before removals of what is named.
        p.ops.sort_by_key(|(_, op)| op_rank(op));
        let mut summary = Summary::default();
        for s in &p.steps {
            match s.action {
                StepAction::Create => summary.create += 1,
                StepAction::Replace => summary.replace += 1,
                StepAction::Remove => summary.remove += 1,
                StepAction::Unchanged => summary.unchanged += 1,
            }
        }
        let view = PlanView {
            apply_id: new_apply_id()?,
            revision,
            prune: input.prune,
            steps: p.steps,
            summary,
            applied: false,
            revision_after: None,
            credentials: Vec::new(),
        };
        Ok(Prepared { view, ids: p.ids, ops: p.ops, credentials: p.credentials })
    }

    /// Apply a plan in one change: one transaction, one revision bump, one audit row per object
    /// changed (all with the plan's apply id). Refused when the store changed since the plan.
    pub async fn apply_plan(&self, prepared: Prepared) -> Result<PlanView, ControlError> {
        let Prepared { mut view, ops, credentials, .. } = prepared;
        if ops.is_empty() {
            view.applied = true;
            view.revision_after = Some(view.revision);
            return Ok(view);
        }
        let mut tx = self.store.begin_change().await?;
        if tx.revision() - 1 != view.revision {
            let now = tx.revision() - 1;
            drop(tx);
            return Err(ControlError::Conflict {
                code: ErrorCode::Usage,
                message: format!(
                    "the store changed since the plan was made (revision {} -> {now}); nothing was applied",
                    view.revision
                ),
                hint: Remedy::new("plan again and review the new plan"),
            });
        }
        let mut changes: Vec<Change> = Vec::with_capacity(ops.len());
        let mut audited = BTreeSet::new();
        for (index, op) in &ops {
            let step = &view.steps[*index];
            let result = match op {
                Op::InsertAnchor(r) => tx.insert_anchor(r).await,
                Op::ReplaceAnchor(r) => tx.replace_anchor(r).await,
                Op::InsertCertificate(r) => tx.insert_certificate(r).await,
                Op::ReplaceCertificate(r) => tx.replace_certificate(r).await,
                Op::SetOwner(kind, name, owner, contact) => {
                    let kind = if *kind == "certificate" { "certificate" } else { "anchor" };
                    tx.set_owner(
                        kind,
                        name,
                        Some(owner.as_deref().unwrap_or("")),
                        Some(contact.as_deref().unwrap_or("")),
                    )
                    .await
                }
                Op::PutBinding(r) => tx.put_binding(r).await.map(|_| ()),
                Op::PutService(s, b) => tx.put_service(s, b.as_ref()).await.map(|_| ()),
                Op::InsertApp(r) => tx.insert_app(r).await,
                Op::PutGrant(r) => tx.put_grant(r).await.map(|_| ()),
                Op::DeleteGrant(app, cert) => tx.delete_grant(app, cert).await,
                Op::DeleteApp(name) => tx.delete_app(name).await,
                Op::DeleteService(name) => tx.delete_service(name).await,
                Op::DeleteBinding(d) => tx.delete_binding(d).await,
                Op::DeleteCertificate(name) => tx.delete_certificate(name, false).await,
                Op::DeleteAnchor(name) => tx.delete_anchor(name).await,
            };
            if let Err(e) = result {
                drop(tx);
                let place = format!("{} {} '{}'", step.action.as_str(), step.kind, step.name);
                return Err(placed(&format!("{place} (nothing was applied)"), store_refusal(e)));
            }
            // A certificate replaced and given a new owner is one step with two writes.
            if !audited.insert(*index) {
                continue;
            }
            let detail = if step.detail.is_empty() {
                format!("apply {}", view.apply_id)
            } else {
                format!("apply {}: {}", view.apply_id, step.detail)
            };
            changes.push(self.change(&format!("apply.{}.{}", step.kind, step.action.as_str()), &step.name, detail));
        }
        let revision = tx.commit(&changes).await?;
        view.applied = true;
        view.revision_after = Some(revision);
        view.credentials = credentials;
        Ok(view)
    }

    /// The store as an apply file: certificates by id (never keys, never passwords), trust
    /// anchors as PEM, bindings, services, apps with their grants. Applying it to the same
    /// store plans nothing.
    pub async fn export_document(&self) -> Result<Document, ControlError> {
        let snap = self.store.snapshot().await?;
        let trust = |t: &TrustPolicy| if *t == TrustPolicy::Public { None } else { Some(t.to_string()) };
        let mut doc = Document::default();
        let mut certs: Vec<&CertificateRecord> = snap.certificates.iter().collect();
        certs.sort_by(|a, b| a.name.cmp(&b.name));
        for c in certs {
            doc.certificates.push(CertificateDecl {
                name: c.name.to_string(),
                id: Some(c.id.to_string()),
                owner: c.owner.clone(),
                contact: c.contact.clone(),
                ..Default::default()
            });
        }
        let mut anchors: Vec<&AnchorRecord> = snap.anchors.iter().collect();
        anchors.sort_by(|a, b| a.name.cmp(&b.name));
        for a in anchors {
            doc.trust_anchors.push(AnchorDecl {
                name: a.name.clone(),
                file: None,
                pem: Some(to_pem(&a.certs_der)),
                owner: a.owner.clone(),
                contact: a.contact.clone(),
            });
        }
        let by_dest: BTreeMap<&str, &BindingRecord> =
            snap.bindings.iter().map(|b| (b.destination.as_str(), b)).collect();
        for b in by_dest.values().filter(|b| !b.destination.starts_with("service:")) {
            let (certificate, certificates) = declared_form(b);
            doc.bindings.push(BindingDecl {
                destination: b.destination.clone(),
                certificate,
                certificates,
                no_cert: b.certificate.is_none(),
                trust: trust(&b.trust),
                sni: b.sni.clone(),
                pins: b.pins.iter().map(Pin::to_string).collect(),
                allow_renegotiation: b.allow_renegotiation,
            });
        }
        let mut services: Vec<&ServiceRecord> = snap.services.iter().collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        for s in services {
            let b = by_dest.get(format!("service:{}", s.name).as_str());
            let (certificate, certificates) = b.map(|b| declared_form(b)).unwrap_or_default();
            doc.services.push(ServiceDecl {
                name: s.name.clone(),
                url: s.url.clone(),
                certificate,
                certificates,
                no_cert: b.is_some_and(|b| b.certificate.is_none()),
                trust: b.and_then(|b| trust(&b.trust)),
                sni: b.and_then(|b| b.sni.clone()),
                pins: b.map(|b| b.pins.iter().map(Pin::to_string).collect()).unwrap_or_default(),
                allow_renegotiation: b.is_some_and(|b| b.allow_renegotiation),
            });
        }
        let mut apps: Vec<&AppRecord> = snap.apps.iter().collect();
        apps.sort_by(|a, b| a.name.cmp(&b.name));
        for a in apps {
            let mut grants: Vec<String> =
                snap.grants.iter().filter(|g| g.app == a.name).map(|g| g.certificate.to_string()).collect();
            grants.sort();
            doc.apps.push(AppDecl { name: a.name.to_string(), grants });
        }
        Ok(doc)
    }
}

/// Order of the writes: anchors, certificates, bindings, services, apps, grants; then removals
/// of grants, apps, services, bindings, certificates, anchors.
fn op_rank(op: &Op) -> u8 {
    match op {
        Op::InsertAnchor(_) | Op::ReplaceAnchor(_) => 0,
        Op::InsertCertificate(_) | Op::ReplaceCertificate(_) => 1,
        Op::SetOwner(..) => 2,
        Op::PutBinding(_) => 3,
        Op::PutService(..) => 4,
        Op::InsertApp(_) => 5,
        Op::PutGrant(_) => 6,
        Op::DeleteGrant(..) => 7,
        Op::DeleteApp(_) => 8,
        Op::DeleteService(_) => 9,
        Op::DeleteBinding(_) => 10,
        Op::DeleteCertificate(_) => 11,
        Op::DeleteAnchor(_) => 12,
    }
}

fn store_refusal(e: StoreError) -> ControlError {
    e.into()
}
