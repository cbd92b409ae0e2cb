CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);
CREATE TABLE certificates (
    name       TEXT PRIMARY KEY,
    id         TEXT NOT NULL,
    leaf_der   BYTEA NOT NULL,
    chain_der  BYTEA NOT NULL,
    sealed_key BYTEA NOT NULL,
    key_format TEXT NOT NULL,
    owner      TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE trust_anchors (
    name       TEXT PRIMARY KEY,
    certs_der  BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE audit (
    seq      BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    result   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    revision BIGINT NOT NULL
);
