CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE apps (
    name       TEXT PRIMARY KEY,
    hash       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE TABLE grants (
    app         TEXT NOT NULL,
    certificate TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (app, certificate)
);
