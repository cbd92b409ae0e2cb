//! Probe: why does the partner refuse us? The same report as `certgate probe --json`
//! (`gateway::probe`), with shorter timeouts so an unreachable target answers within seconds.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::admin::auth::{Need, OPERATOR};
use crate::admin::error::ApiError;
use crate::admin::extract::Body;
use crate::gateway::probe::{self, ProbeRequest};
use crate::model::TrustPolicy;
use crate::routes::CompileOptions;

use super::handler::{json, ApiResult, S};
use super::responses::{BadRequest, Forbidden, NotFound, PayloadTooLarge, Unauthorized, Unavailable};

/// The longest the API waits for each step (the gateway's own timeout when it is shorter): a
/// person clicking "Test connection" gets an answer, never a request that hangs.
pub const CONNECT_CAP: Duration = Duration::from_secs(2);
pub const HANDSHAKE_CAP: Duration = Duration::from_secs(3);
pub const RESPONSE_CAP: Duration = Duration::from_secs(5);

/// What to probe; `cert`, `sni` and `trust` replace the binding's for this probe only.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ProbeRequest, example = json!({"target": "https://api.partner.test/status"}))]
pub struct ProbeBody {
    /// https://partner[:port]/path, partner, or partner:port.
    target: String,
    /// A certificate to present instead of the binding's, or several candidates `a,b` in order
    /// of preference (the partner's CA names pick one).
    cert: Option<String>,
    sni: Option<String>,
    trust: Option<String>,
    path: Option<String>,
}

/// Test the connection to a partner (operator): what it shows, what it asks for, and whether it
/// accepts the bound certificate. The same report as `certgate probe --json`; 200 whether or not
/// the path works (see `ok` and `problems`). Nothing is stored.
#[utoipa::path(post, path = "/probe", tag = "bindings", operation_id = "probe", request_body = ProbeBody,
    responses((status = 200, description = "The report", body = Object),
        (status = 404, response = NotFound), (status = 400, response = BadRequest), (status = 401, response = Unauthorized), (status = 403, response = Forbidden), (status = 413, response = PayloadTooLarge), (status = 503, response = Unavailable)))]
pub async fn run(State(st): S, _: Need<OPERATOR>, Body(body): Body<ProbeBody>) -> ApiResult {
    let trust = match &body.trust {
        Some(t) => Some(
            TrustPolicy::parse(t)
                .map_err(|e| ApiError::bad_request(e, "give public, private, or ca: followed by trust anchor names"))?,
        ),
        None => None,
    };
    let req = ProbeRequest { target: body.target, cert: body.cert, sni: body.sni, trust, path: body.path };
    let (inputs, stored) = st.control.probe_inputs(req.cert.as_deref()).await?;
    let mut settings = (*st.gateway.options().settings).clone();
    settings.connect_timeout = settings.connect_timeout.min(CONNECT_CAP);
    settings.handshake_timeout = settings.handshake_timeout.min(HANDSHAKE_CAP);
    let options = CompileOptions { settings: Arc::new(settings), allow_unbound: false, partners: None };
    let response = st.gateway.settings.response_header_timeout.min(RESPONSE_CAP);
    let report = probe::probe(&req, inputs, &stored, &options, response)
        .await
        .map_err(|e| ApiError::bad_request(e, "give https://partner[:port]/path, partner or partner:port"))?;
    Ok(json(StatusCode::OK, &report))
}
