-- The trust anchors a binding's `ca:` policy names, one row each, so that the database
-- refuses a binding to a missing anchor and the removal of an anchor still named.
-- `bindings.trust` stays the policy text.
CREATE TABLE binding_anchors (
    destination TEXT NOT NULL REFERENCES bindings (destination) ON DELETE CASCADE,
    anchor      TEXT NOT NULL REFERENCES trust_anchors (name) ON DELETE RESTRICT,
    PRIMARY KEY (destination, anchor)
);
CREATE INDEX binding_anchors_anchor ON binding_anchors (anchor);
-- Existing `ca:a,b` policies, split on commas; names of anchors that no longer exist are left
-- out (such a binding already fails to compile and says which anchor it lacks).
WITH RECURSIVE split (destination, anchor, rest) AS (
    SELECT destination, '', substr(trust, 4) || ',' FROM bindings WHERE substr(trust, 1, 3) = 'ca:'
    UNION ALL
    SELECT destination, trim(substr(rest, 1, instr(rest, ',') - 1)), substr(rest, instr(rest, ',') + 1)
    FROM split WHERE rest <> ''
)
INSERT OR IGNORE INTO binding_anchors (destination, anchor)
SELECT destination, anchor FROM split WHERE anchor IN (SELECT name FROM trust_anchors);
