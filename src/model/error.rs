//! Every error code certgate shows, in one list. Each code owns its HTTP status (API and gateway),
//! its exit code (CLI) and its default remedy. Remedies are interface-neutral: words that make sense
//! wherever they are shown, plus the action that fixes it as data; the CLI renders the action as a
//! command, the API returns it as a field, the console as a button. Words never name a CLI flag.

use std::borrow::Cow;
use std::fmt;

macro_rules! codes {
    ($( $variant:ident = $text:literal, $status:literal, $exit:literal; )*) => {
        /// One error code of the product contract (DESIGN.md) or of certgate's own additions.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode { $( $variant, )* }

        impl ErrorCode {
            /// Every code, for documents and tests.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The code as users, scripts and the `Certgate-Error` header see it.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $text, )* }
            }

            /// The HTTP status the admin API and the gateway answer with.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// The process exit code of the CLI (DESIGN.md "Exit codes").
            pub const fn exit_code(self) -> u8 {
                match self { $( ErrorCode::$variant => $exit, )* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $( $text => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

codes! {
    // Input refused (import, trust add): exit 3, API 422.
    WrongPassword = "wrong-password", 422, 3;
    PasswordRequired = "password-required", 422, 3;
    NoPrivateKey = "no-private-key", 422, 3;
    KeyMismatch = "key-mismatch", 422, 3;
    Malformed = "malformed", 422, 3;
    UnsupportedAlgorithm = "unsupported-algorithm", 422, 3;
    Empty = "empty", 422, 3;
    NotACertificate = "not-a-certificate", 422, 3;
    TooLarge = "too-large", 422, 3;
    ChainInvalid = "chain-invalid", 422, 3;
    // The request itself is wrong: exit 2, API 400.
    Usage = "usage", 400, 2;
    InvalidName = "invalid-name", 400, 2;
    // Not found / conflicts: exit 4 and 5.
    NotFound = "not-found", 404, 4;
    NameTaken = "name-taken", 409, 5;
    StillBound = "still-bound", 409, 5;
    // The command could not run: exit 1.
    MasterKey = "master-key", 503, 1;
    StoreUnavailable = "store-unavailable", 503, 1;
    // Admin API access.
    Unauthorized = "unauthorized", 401, 1;
    Forbidden = "forbidden", 403, 1;
    Csrf = "csrf", 403, 1;
    // Errors the gateway produces for an application's request.
    NoBinding = "no-binding", 403, 1;
    NotGranted = "not-granted", 403, 1;
    ProxyAuthRequired = "proxy-auth-required", 407, 1;
    BadRequest = "bad-request", 400, 1;
    ClientCertificateExpired = "client-certificate-expired", 502, 1;
    UpstreamConnectFailed = "upstream-connect-failed", 502, 1;
    UpstreamUntrusted = "upstream-untrusted", 502, 1;
    UpstreamNameMismatch = "upstream-name-mismatch", 502, 1;
    UpstreamRejectedCertificate = "upstream-rejected-certificate", 502, 1;
    UpstreamRenegotiationRequired = "upstream-renegotiation-required", 502, 1;
    UpstreamTimeout = "upstream-timeout", 504, 1;
    ConnectNotSupported = "connect-not-supported", 501, 1;
    RouteUnavailable = "route-unavailable", 502, 1;
    RequestTimeout = "request-timeout", 408, 1;
    HeadersTooLarge = "headers-too-large", 431, 1;
    TooManyConnections = "too-many-connections", 503, 1;
    NotReady = "not-ready", 503, 1;
}

impl ErrorCode {
    /// What to do about it in general; errors that know more carry their own [`Remedy`].
    pub fn remedy(self) -> Remedy {
        use Action::*;
        use ErrorCode::*;
        let (text, action): (&'static str, Option<Action>) = match self {
            WrongPassword => ("give the password the file was exported with", None),
            PasswordRequired => ("the file is protected: give its password", None),
            NoPrivateKey => ("export the certificate again together with its private key (a PFX with the key, or the key file beside the certificate)", None),
            KeyMismatch => ("give the private key that belongs to this certificate", None),
            Malformed => ("the file is damaged or truncated: copy or export it again and retry", None),
            UnsupportedAlgorithm => ("export it again with a supported algorithm (RSA 2048+, ECDSA P-256/P-384 or Ed25519; AES or 3DES encryption)", None),
            Empty => ("the file holds no certificate or key that can be read: check that it is the right file", None),
            NotACertificate => ("give a certificate file (PEM, DER or PKCS#12)", None),
            TooLarge => ("send a smaller file (at most 1 MiB)", None),
            ChainInvalid => ("check the certification path of the certificate", Some(CheckCertificate(None))),
            Usage => ("correct the request and try again", None),
            InvalidName => ("use 1 to 128 letters, digits, '.', '_' or '-' (e.g. Billing.InvoiceService or partner-prod)", None),
            NotFound => ("check the name against the list of what exists", None),
            NameTaken => ("choose another name, or remove the existing one first", None),
            StillBound => ("remove the bindings that use it first", Some(ListBindings)),
            MasterKey => ("nothing was changed; check that the master key is the store's", None),
            StoreUnavailable => ("check that the store is reachable and writable", None),
            Unauthorized => ("sign in with a valid token", None),
            Forbidden => ("use a token with a larger role", None),
            Csrf => ("reload the console page and try again", None),
            NoBinding => ("bind the destination to a certificate (or to no certificate, to call it without one)", Some(Bind(None))),
            NotGranted => ("grant the certificate to the app", Some(Grant(None, None))),
            ProxyAuthRequired => ("send Proxy-Authorization: Basic base64(APP:CREDENTIAL) (e.g. HTTP_PROXY=http://APP:CREDENTIAL@host:9780)", Some(AddApp)),
            BadRequest => ("send proxy requests (set HTTP_PROXY to the proxy listener and call http://partner/...) or use /svc/NAME/...", None),
            ClientCertificateExpired => ("renew the certificate and rotate it in", Some(RotateCertificate(None))),
            UpstreamConnectFailed => ("check that the partner is reachable from this host (name, firewall, port)", None),
            UpstreamUntrusted => ("trust the partner's CA: add it as a trust anchor and bind with that anchor as the trust policy", Some(AddTrustAnchor)),
            UpstreamNameMismatch => ("call the partner by the name on its certificate, or set the binding's SNI name", Some(Bind(None))),
            UpstreamRejectedCertificate => ("the partner does not accept this client certificate: ask which CA it trusts, and check the certificate's chain", Some(CheckCertificate(None))),
            UpstreamRenegotiationRequired => ("the partner asks for the certificate after the request (TLS renegotiation or post-handshake authentication): allow renegotiation on this binding", Some(Bind(None))),
            UpstreamTimeout => ("the partner did not answer in time; the limits are in the [gateway] section of the config file", None),
            ConnectNotSupported => ("call http://partner/... through the proxy instead of https:// via CONNECT: certgate opens the TLS connection itself and adds the certificate; or use a named service /svc/NAME/...", None),
            RouteUnavailable => ("this binding could not be prepared (the message says why): correct the binding", Some(ListBindings)),
            RequestTimeout => ("send the whole request without pausing", None),
            HeadersTooLarge => ("send smaller request headers", None),
            TooManyConnections => ("retry shortly, or raise the connection limits in the [gateway] section of the config file", None),
            NotReady => ("the route table is not loaded yet: see /readyz on the admin listener", None),
        };
        Remedy { text: Cow::Borrowed(text), action }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether words name a certgate command or a command-line flag (and so belong to the CLI only).
pub fn names_cli(words: &str) -> bool {
    const COMMANDS: &[&str] =
        &["cert", "trust", "bind", "unbind", "bindings", "service", "app", "token", "store", "serve"];
    words.contains(" --")
        || words.starts_with("--")
        || COMMANDS
            .iter()
            .any(|c| words.contains(&format!("certgate {c} ")) || words.ends_with(&format!("certgate {c}")))
}

/// What fixes a problem: words for every interface, and the action as data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remedy {
    /// Interface-neutral words (no CLI flags): shown as they are by the API and the console.
    pub text: Cow<'static, str>,
    /// The operation that fixes it, if there is one: a command in the CLI, a button in the console.
    pub action: Option<Action>,
}

impl Remedy {
    pub fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Remedy { text: text.into(), action: None }
    }

    pub fn with(text: impl Into<Cow<'static, str>>, action: Action) -> Self {
        Remedy { text: text.into(), action: Some(action) }
    }

    /// As the CLI shows it: the words, then the command that does it.
    pub fn for_cli(&self) -> String {
        match self.action.as_ref().map(Action::command) {
            Some(cmd) => format!("{}: {cmd}", self.text),
            None => self.text.to_string(),
        }
    }
}

impl From<&str> for Remedy {
    fn from(text: &str) -> Self {
        Remedy::new(text.to_string())
    }
}

impl From<String> for Remedy {
    fn from(text: String) -> Self {
        Remedy::new(text)
    }
}

/// An operation that fixes a problem, with what is known of its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    ImportCertificate(Option<String>),
    RotateCertificate(Option<String>),
    CheckCertificate(Option<String>),
    ListCertificates,
    AddTrustAnchor,
    ListTrustAnchors,
    /// Bind a destination (when known).
    Bind(Option<String>),
    Unbind(Option<String>),
    ListBindings,
    AddService,
    AddApp,
    /// Grant (app, certificate).
    Grant(Option<String>, Option<String>),
    CreateToken,
    /// Allow TLS renegotiation on a destination's binding.
    AllowRenegotiation(String),
    /// Remove a certificate together with its bindings.
    RemoveCertificateForce(String),
}

/// An action as data, `{"id": "bind", "target": "api.partner.test"}`: what the console turns
/// into a button and the API returns beside the hint.
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Action", 2)?;
        st.serialize_field("id", self.id())?;
        st.serialize_field("target", &self.target())?;
        st.end()
    }
}

impl Action {
    /// A short id for the API and the console (`bind`, `rotate-certificate`, ...).
    pub fn id(&self) -> &'static str {
        match self {
            Action::ImportCertificate(_) => "import-certificate",
            Action::RotateCertificate(_) => "rotate-certificate",
            Action::CheckCertificate(_) => "check-certificate",
            Action::ListCertificates => "list-certificates",
            Action::AddTrustAnchor => "add-trust-anchor",
            Action::ListTrustAnchors => "list-trust-anchors",
            Action::Bind(_) => "bind",
            Action::Unbind(_) => "unbind",
            Action::ListBindings => "list-bindings",
            Action::AddService => "add-service",
            Action::AddApp => "add-app",
            Action::Grant(..) => "grant",
            Action::CreateToken => "create-token",
            Action::AllowRenegotiation(_) => "allow-renegotiation",
            Action::RemoveCertificateForce(_) => "remove-certificate",
        }
    }

    /// The object the action is about, when known (a certificate, destination or app name).
    pub fn target(&self) -> Option<&str> {
        match self {
            Action::ImportCertificate(n)
            | Action::RotateCertificate(n)
            | Action::CheckCertificate(n)
            | Action::Bind(n)
            | Action::Unbind(n) => n.as_deref(),
            Action::Grant(app, _) => app.as_deref(),
            Action::AllowRenegotiation(d) | Action::RemoveCertificateForce(d) => Some(d),
            _ => None,
        }
    }

    /// The same operation as a command line.
    pub fn command(&self) -> String {
        let or = |v: &Option<String>, placeholder: &str| v.clone().unwrap_or_else(|| placeholder.to_string());
        match self {
            Action::ImportCertificate(n) => format!("certgate cert import {} FILE", or(n, "NAME")),
            Action::RotateCertificate(n) => format!("certgate cert rotate {} FILE", or(n, "NAME")),
            Action::CheckCertificate(n) => format!("certgate cert check {}", or(n, "NAME")),
            Action::ListCertificates => "certgate cert list".into(),
            Action::AddTrustAnchor => "certgate trust add NAME CA-FILE".into(),
            Action::ListTrustAnchors => "certgate trust list".into(),
            Action::Bind(d) => format!("certgate bind {} CERT", or(d, "HOST")),
            Action::Unbind(d) => format!("certgate unbind {}", or(d, "DESTINATION")),
            Action::ListBindings => "certgate bindings".into(),
            Action::AddService => "certgate service add NAME --url URL".into(),
            Action::AddApp => "certgate app add NAME".into(),
            Action::Grant(app, cert) => format!("certgate app grant {} {}", or(app, "APP"), or(cert, "CERT")),
            Action::CreateToken => "certgate token create NAME --role admin".into(),
            Action::AllowRenegotiation(d) => format!("certgate bind {d} CERT --allow-renegotiation"),
            Action::RemoveCertificateForce(n) => format!("certgate cert remove {n} --force"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_no_remedy_names_a_flag() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let words = code.remedy().text;
            assert!(!names_cli(&words), "{code}: {words}");
        }
    }

    #[test]
    fn statuses_and_exit_codes_follow_the_contract() {
        assert_eq!(ErrorCode::NoBinding.http_status(), 403);
        assert_eq!(ErrorCode::UpstreamTimeout.http_status(), 504);
        assert_eq!(ErrorCode::Usage.exit_code(), 2);
        assert_eq!(ErrorCode::WrongPassword.exit_code(), 3);
        assert_eq!(ErrorCode::NotFound.exit_code(), 4);
        assert_eq!(ErrorCode::StillBound.exit_code(), 5);
    }
}
