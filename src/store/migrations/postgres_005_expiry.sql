-- Issue 11: owners and contacts, pending certificate requests (renewal inside certgate), and
-- expiry alerts claimed once across nodes.
ALTER TABLE certificates ADD COLUMN contact TEXT;
ALTER TABLE trust_anchors ADD COLUMN owner TEXT;
ALTER TABLE trust_anchors ADD COLUMN contact TEXT;
-- A key made inside certgate, sealed, waiting for its issued certificate.
CREATE TABLE certificate_requests (
    name       TEXT PRIMARY KEY,
    subject    TEXT NOT NULL,
    key_type   TEXT NOT NULL,
    sealed_key BYTEA NOT NULL,
    key_format TEXT NOT NULL,
    csr_der    BYTEA NOT NULL,
    owner      TEXT,
    contact    TEXT,
    created_at BIGINT NOT NULL
);
-- One row per (expiring item, threshold): inserted in a change transaction before sending, so
-- only one node sends it. `state`: sending, sent, failed (retried at next_attempt_at).
CREATE TABLE alerts (
    item            TEXT NOT NULL,
    threshold       BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    node            TEXT NOT NULL,
    claimed_at      BIGINT NOT NULL,
    sent_at         BIGINT,
    PRIMARY KEY (item, threshold)
);
-- The partner leaf the gateway verified last per destination (written at most once an hour per
-- destination, outside change transactions: an observation, not configuration).
CREATE TABLE partner_certificates (
    destination TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    not_after   BIGINT NOT NULL,
    pin         TEXT NOT NULL,
    trust       TEXT NOT NULL,
    seen_at     BIGINT NOT NULL
);
