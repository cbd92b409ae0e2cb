-- Issue 9: a binding may name several certificates in order of preference. The first stays in
-- `bindings.certificate` (position 0, unchanged for every reader); the further candidates are
-- rows here, position 1, 2, ... The foreign keys refuse a candidate that is not stored and the
-- removal of a certificate still named; rows go with their binding.
CREATE TABLE binding_certificates (
    destination TEXT NOT NULL REFERENCES bindings (destination) ON DELETE CASCADE,
    position    BIGINT NOT NULL CHECK (position >= 1),
    certificate TEXT NOT NULL REFERENCES certificates (name) ON DELETE RESTRICT,
    PRIMARY KEY (destination, position),
    UNIQUE (destination, certificate)
);
CREATE INDEX binding_certificates_certificate ON binding_certificates (certificate);
