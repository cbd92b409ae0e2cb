-- Issue 10: a binding may let its partner renegotiate (TLS 1.2) or ask for the client
-- certificate after the handshake (TLS 1.3): such a route uses the OpenSSL engine. 0 or 1.
-- (006 is another change's number: candidate certificates.)
ALTER TABLE bindings ADD COLUMN allow_renegotiation INTEGER NOT NULL DEFAULT 0;
