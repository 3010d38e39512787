-- Restricted keys, rolled keys, and the audit trail.
--
-- A secret key may be limited to scopes (`checkout`, `finance`, `read`, `admin`); NULL is an
-- unrestricted key, as every key made before this was. A publishable key has no scopes: it
-- reads public data only, whatever it is given.
--
-- Rolling a key makes a new one (`replaced_by` points at it) and lets the old one work until
-- `expires_at`, the grace period its owner chose: authentication refuses a key once it has
-- expired as surely as once it is revoked.
ALTER TABLE api_keys
    ADD COLUMN scopes text[]
        CHECK (scopes IS NULL OR (cardinality(scopes) BETWEEN 1 AND 4
               AND scopes <@ ARRAY['checkout', 'finance', 'read', 'admin']::text[])),
    ADD COLUMN expires_at timestamptz,
    ADD COLUMN replaced_by bigint,
    ADD CONSTRAINT api_keys_publishable_unscoped CHECK (kind = 'secret' OR scopes IS NULL),
    ADD CONSTRAINT api_keys_replaced_by_fkey
        FOREIGN KEY (merchant_id, replaced_by) REFERENCES api_keys (merchant_id, id);

-- Every change made with a key, in the console or on the command line: one row per change,
-- written in the change's own transaction (so a change that rolls back leaves no row, and a
-- change that commits cannot lack one). `before` and `after` are the public shapes of what
-- changed (as the API shows them), never a customer's personal data: an erasure leaves this
-- table as it is. Append-only: the service has no statement that updates or deletes a row,
-- and a trigger refuses one from anywhere else.
CREATE TABLE audit_log (
    merchant_id   bigint NOT NULL REFERENCES merchants (id),
    id            bigint GENERATED ALWAYS AS IDENTITY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Who: a key (`key_id`), a person signed in to the console, or the command line.
    actor_type    text NOT NULL CHECK (actor_type IN ('key', 'console', 'cli')),
    key_id        bigint,
    actor         text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    -- What: `program.updated`, `reward.reversed`, …, and on which object (its public id).
    action        text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    subject_type  text NOT NULL,
    subject_id    text NOT NULL,
    before        jsonb,
    after         jsonb,
    request_id    text,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, key_id) REFERENCES api_keys (merchant_id, id),
    CHECK ((actor_type = 'key') = (key_id IS NOT NULL))
);
CREATE INDEX audit_log_subject ON audit_log (merchant_id, subject_type, subject_id, id);
CREATE INDEX audit_log_time ON audit_log (merchant_id, created_at, id);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
