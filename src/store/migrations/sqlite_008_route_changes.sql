-- Issue 14: incremental reloads. Every write to what routes are compiled from logs the key it
-- touched at the revision of its change, so a node at revision R reads only the keys changed
-- since R (see docs/decisions.md "Incremental route reloads"). Triggers, not code: every write
-- path (CLI, API, apply, copy, hand edits) is logged alike. Kinds: binding (bindings and their
-- candidate and anchor rows, by destination), certificate, anchor, service, app (apps and
-- grants, by app).
CREATE TABLE route_changes (
    revision INTEGER NOT NULL,
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
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO route_changes_floor (id, revision) SELECT 1, value FROM revision WHERE id = 1;
CREATE TRIGGER bindings_insert_logged AFTER INSERT ON bindings BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER bindings_update_logged AFTER UPDATE ON bindings BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER bindings_delete_logged AFTER DELETE ON bindings BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_certificates_insert_logged AFTER INSERT ON binding_certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_certificates_update_logged AFTER UPDATE ON binding_certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_certificates_delete_logged AFTER DELETE ON binding_certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_anchors_insert_logged AFTER INSERT ON binding_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_anchors_update_logged AFTER UPDATE ON binding_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', NEW.destination FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER binding_anchors_delete_logged AFTER DELETE ON binding_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'binding', OLD.destination FROM revision WHERE id = 1;
END;
CREATE TRIGGER certificates_insert_logged AFTER INSERT ON certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'certificate', NEW.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER certificates_update_logged AFTER UPDATE ON certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'certificate', NEW.name FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'certificate', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER certificates_delete_logged AFTER DELETE ON certificates BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'certificate', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER trust_anchors_insert_logged AFTER INSERT ON trust_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'anchor', NEW.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER trust_anchors_update_logged AFTER UPDATE ON trust_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'anchor', NEW.name FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'anchor', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER trust_anchors_delete_logged AFTER DELETE ON trust_anchors BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'anchor', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER services_insert_logged AFTER INSERT ON services BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'service', NEW.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER services_update_logged AFTER UPDATE ON services BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'service', NEW.name FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'service', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER services_delete_logged AFTER DELETE ON services BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'service', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER apps_insert_logged AFTER INSERT ON apps BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', NEW.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER apps_update_logged AFTER UPDATE ON apps BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', NEW.name FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER apps_delete_logged AFTER DELETE ON apps BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', OLD.name FROM revision WHERE id = 1;
END;
CREATE TRIGGER grants_insert_logged AFTER INSERT ON grants BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', NEW.app FROM revision WHERE id = 1;
END;
CREATE TRIGGER grants_update_logged AFTER UPDATE ON grants BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', NEW.app FROM revision WHERE id = 1;
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', OLD.app FROM revision WHERE id = 1;
END;
CREATE TRIGGER grants_delete_logged AFTER DELETE ON grants BEGIN
    INSERT INTO route_changes (revision, kind, key) SELECT value, 'app', OLD.app FROM revision WHERE id = 1;
END;
