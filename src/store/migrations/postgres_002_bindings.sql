CREATE TABLE bindings (
    destination TEXT PRIMARY KEY,
    certificate TEXT,
    trust       TEXT NOT NULL,
    sni         TEXT,
    pins        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX bindings_certificate ON bindings (certificate);
CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
