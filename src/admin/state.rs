//! What every admin handler can reach.

use std::sync::Arc;

use crate::control::{AlertStatus, Control};
use crate::gateway::Gateway;

use super::session::Sessions;

/// What every admin handler can reach.
pub struct AdminState {
    pub control: Arc<Control>,
    pub gateway: Arc<Gateway>,
    /// The alert loop's last run and failures, for `/readyz`.
    pub alerts: Arc<AlertStatus>,
    pub sessions: Sessions,
    /// Whether the listener serves HTTPS (the session cookie is then marked Secure).
    pub https: bool,
    /// The proxy listener's address, for the console's HTTP_PROXY examples.
    pub proxy_addr: String,
}
