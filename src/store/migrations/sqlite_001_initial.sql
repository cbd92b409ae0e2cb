CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE revision (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO revision (id, value) VALUES (1, 0);
CREATE TABLE certificates (
    name       TEXT PRIMARY KEY,
    id         TEXT NOT NULL,
    leaf_der   BLOB NOT NULL,
    chain_der  BLOB NOT NULL,
    sealed_key BLOB NOT NULL,
    key_format TEXT NOT NULL,
    owner      TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE trust_anchors (
    name       TEXT PRIMARY KEY,
    certs_der  BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE audit (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL,
    result   TEXT NOT NULL,
    detail   TEXT NOT NULL,
    revision INTEGER NOT NULL
);
