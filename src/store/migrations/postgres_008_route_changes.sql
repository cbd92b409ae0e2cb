-- Issue 14: incremental reloads. Every write to what routes are compiled from logs the key it
-- touched at the revision of its change, so a node at revision R reads only the keys changed
-- since R (see docs/decisions.md "Incremental route reloads"). Triggers, not code: every write
-- path (CLI, API, apply, copy, hand edits) is logged alike. Kinds: binding (bindings and their
-- candidate and anchor rows, by destination), certificate, anchor, service, app (apps and
-- grants, by app).
CREATE TABLE route_changes (
    revision BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    key      TEXT NOT NULL
);
-- A key written several times in one change has several rows (readers take distinct keys): a
-- unique key would make the trigger's insert fail inside statements that resolve conflicts
-- themselves (SQLite applies the outer statement's conflict policy to the trigger's).
CREATE INDEX route_changes_revision ON route_changes (revision);
-- The log is complete for every revision above this one: a node at a lower revision (or a
-- store whose log was pruned past it) reads the whole store. A later migration that rewrites
-- what routes are compiled from sets it to the current revision.
CREATE TABLE route_changes_floor (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    revision BIGINT NOT NULL
);
INSERT INTO route_changes_floor (id, revision) SELECT 1, value FROM revision WHERE id = 1;
-- TG_ARGV: the kind, and the column holding the key. An update logs the old key too.
CREATE FUNCTION route_changed() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        INSERT INTO route_changes (revision, kind, key)
        SELECT value, TG_ARGV[0], to_jsonb(OLD) ->> TG_ARGV[1] FROM revision WHERE id = 1;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO route_changes (revision, kind, key)
        SELECT value, TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1] FROM revision WHERE id = 1;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER bindings_logged AFTER INSERT OR UPDATE OR DELETE ON bindings
    FOR EACH ROW EXECUTE FUNCTION route_changed('binding', 'destination');
CREATE TRIGGER binding_certificates_logged AFTER INSERT OR UPDATE OR DELETE ON binding_certificates
    FOR EACH ROW EXECUTE FUNCTION route_changed('binding', 'destination');
CREATE TRIGGER binding_anchors_logged AFTER INSERT OR UPDATE OR DELETE ON binding_anchors
    FOR EACH ROW EXECUTE FUNCTION route_changed('binding', 'destination');
CREATE TRIGGER certificates_logged AFTER INSERT OR UPDATE OR DELETE ON certificates
    FOR EACH ROW EXECUTE FUNCTION route_changed('certificate', 'name');
CREATE TRIGGER trust_anchors_logged AFTER INSERT OR UPDATE OR DELETE ON trust_anchors
    FOR EACH ROW EXECUTE FUNCTION route_changed('anchor', 'name');
CREATE TRIGGER services_logged AFTER INSERT OR UPDATE OR DELETE ON services
    FOR EACH ROW EXECUTE FUNCTION route_changed('service', 'name');
CREATE TRIGGER apps_logged AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH ROW EXECUTE FUNCTION route_changed('app', 'name');
CREATE TRIGGER grants_logged AFTER INSERT OR UPDATE OR DELETE ON grants
    FOR EACH ROW EXECUTE FUNCTION route_changed('app', 'app');
