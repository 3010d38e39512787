-- Every instance keeps the codes it redirects in memory (`links/service.py`, CodeResolver)
-- and drops a code's entry when it hears of a change here: one NOTIFY on the channel
-- `referral_codes` per statement (per 200 rows) that inserts, updates or deletes codes, in
-- the statement's transaction, so it is delivered only if and once that commits. No write
-- path can forget it, as with the analytics marks (0009). Payloads: `c:` and the lookup keys
-- (comma-separated; keys are A-Z and 0-9), or `p:` and the ids of programs whose link
-- settings changed (status, start, landing and fallback URLs, QR colours).
--
-- On Citus, `codes` is a reference table and `programs` distributed: a trigger there needs
-- `citus.enable_unsafe_triggers` and notifies on the node that holds the row, so instances
-- would have to LISTEN on the workers; until then they fall back to the resolver's short
-- time-to-live (see CodeResolver), as when their listening connection is down.

CREATE FUNCTION notify_code_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('referral_codes', 'c:' || string_agg(lookup_key, ','))
        FROM (SELECT lookup_key, (row_number() OVER (ORDER BY lookup_key) - 1) / 200 AS chunk
              FROM (SELECT lookup_key FROM new_codes UNION SELECT lookup_key FROM old_codes) k) c
        GROUP BY chunk;
    ELSIF TG_OP = 'INSERT' THEN
        PERFORM pg_notify('referral_codes', 'c:' || string_agg(lookup_key, ','))
        FROM (SELECT lookup_key, (row_number() OVER (ORDER BY lookup_key) - 1) / 200 AS chunk
              FROM new_codes) c
        GROUP BY chunk;
    ELSE
        PERFORM pg_notify('referral_codes', 'c:' || string_agg(lookup_key, ','))
        FROM (SELECT lookup_key, (row_number() OVER (ORDER BY lookup_key) - 1) / 200 AS chunk
              FROM old_codes) c
        GROUP BY chunk;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER codes_notify_insert AFTER INSERT ON codes
    REFERENCING NEW TABLE AS new_codes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_code_changes();
CREATE TRIGGER codes_notify_update AFTER UPDATE ON codes
    REFERENCING OLD TABLE AS old_codes NEW TABLE AS new_codes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_code_changes();
CREATE TRIGGER codes_notify_delete AFTER DELETE ON codes
    REFERENCING OLD TABLE AS old_codes
    FOR EACH STATEMENT EXECUTE FUNCTION notify_code_changes();

CREATE FUNCTION notify_program_link_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('referral_codes', 'p:' || string_agg(n.id::text, ','))
    FROM (SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 200 AS chunk
          FROM new_programs n JOIN old_programs o ON o.merchant_id = n.merchant_id AND o.id = n.id
          WHERE (n.status, n.starts_at, n.landing_url, n.fallback_url, n.qr_foreground,
                 n.qr_background)
                IS DISTINCT FROM (o.status, o.starts_at, o.landing_url, o.fallback_url,
                                  o.qr_foreground, o.qr_background)) n
    GROUP BY chunk;
    RETURN NULL;
END $$;

CREATE TRIGGER programs_notify_link_changes AFTER UPDATE ON programs
    REFERENCING OLD TABLE AS old_programs NEW TABLE AS new_programs
    FOR EACH STATEMENT EXECUTE FUNCTION notify_program_link_changes();
