-- The trust anchors a binding's `ca:` policy names, one row each, so that the database
-- refuses a binding to a missing anchor and the removal of an anchor still named.
-- `bindings.trust` stays the policy text.
CREATE TABLE binding_anchors (
    destination TEXT NOT NULL REFERENCES bindings (destination) ON DELETE CASCADE,
    anchor      TEXT NOT NULL REFERENCES trust_anchors (name) ON DELETE RESTRICT,
    PRIMARY KEY (destination, anchor)
);
CREATE INDEX binding_anchors_anchor ON binding_anchors (anchor);
-- Existing `ca:a,b` policies; names of anchors that no longer exist are left out (such a
-- binding already fails to compile and says which anchor it lacks).
INSERT INTO binding_anchors (destination, anchor)
SELECT DISTINCT b.destination, a.name
FROM bindings b
CROSS JOIN LATERAL unnest(string_to_array(substr(b.trust, 4), ',')) AS n (name)
JOIN trust_anchors a ON a.name = btrim(n.name)
WHERE left(b.trust, 3) = 'ca:';
