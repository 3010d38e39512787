-- A customer's data rights and the retention of raw clicks (referral/customers/).
--
-- Erasure replaces a person's personal data with tombstones where it stands (the rows stay,
-- so every ledger amount, reward state, payout line and analytics figure still adds up) and
-- keeps one row here per erasure, with no personal data in it: a keyed hash of the shop's
-- customer id (HMAC under the service's key, so a copy of the database cannot test guessed
-- ids), so asking again for a person already erased answers the same erasure instead of a
-- second one, and what was erased (counts and the advocates' public ids).
CREATE TABLE customer_erasures (
    merchant_id   bigint NOT NULL REFERENCES merchants (id),
    id            bigint GENERATED ALWAYS AS IDENTITY,
    subject_hash  bytea NOT NULL CHECK (length(subject_hash) = 32),
    advocate_ids  bigint[] NOT NULL DEFAULT '{}',
    erased        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);
CREATE INDEX customer_erasures_subject ON customer_erasures (merchant_id, subject_hash, id);

-- Retention drops the raw clicks of old months (their partitions) once the analytics
-- rollups hold them. From then on a rebuild or a restatement of the merchant's rollups can
-- recompute click figures only from the raw clicks that are left: this says from when they
-- are kept, and `clicks_rebooked_from` from which of the merchant's months on (the first
-- month whose every local day is still wholly raw). Figures of the months before stay as
-- they were booked.
CREATE TABLE analytics_click_horizon (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    kept_from    timestamptz NOT NULL,
    PRIMARY KEY (merchant_id)
);

CREATE FUNCTION clicks_rebooked_from(kept_from timestamptz, zone text) RETURNS date
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN extract(day FROM d) = 1 THEN d
                ELSE (date_trunc('month', d) + interval '1 month')::date END
    FROM (SELECT CASE WHEN (kept_from AT TIME ZONE zone)::time = '00:00'
                      THEN (kept_from AT TIME ZONE zone)::date
                      ELSE (kept_from AT TIME ZONE zone)::date + 1 END AS d) first_whole_day
$$;

-- A JSON document with the person's values replaced: every string (object keys too) equal
-- to one of `whole` (customer ids, visitor ids, vanity codes) or containing one of `within`
-- (emails, lower-cased; compared lower-cased) becomes `tombstone`. Structure, numbers and
-- every other string stay as they were, so what reads the document (the analytics rules,
-- backtests, the explain view) still finds its fields.
CREATE FUNCTION jsonb_scrub(doc jsonb, whole text[], within text[], tombstone text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    value text;
BEGIN
    CASE jsonb_typeof(doc)
    WHEN 'string' THEN
        value := doc #>> '{}';
        IF value = ANY (whole)
           OR EXISTS (SELECT 1 FROM unnest(within) w WHERE strpos(lower(value), w) > 0) THEN
            RETURN to_jsonb(tombstone);
        END IF;
        RETURN doc;
    WHEN 'object' THEN
        RETURN coalesce((
            SELECT jsonb_object_agg(
                CASE WHEN e.key = ANY (whole)
                       OR EXISTS (SELECT 1 FROM unnest(within) w WHERE strpos(lower(e.key), w) > 0)
                     THEN tombstone ELSE e.key END,
                jsonb_scrub(e.value, whole, within, tombstone))
            FROM jsonb_each(doc) e), '{}'::jsonb);
    WHEN 'array' THEN
        RETURN coalesce((
            SELECT jsonb_agg(jsonb_scrub(a.value, whole, within, tombstone) ORDER BY a.n)
            FROM jsonb_array_elements(doc) WITH ORDINALITY AS a(value, n)), '[]'::jsonb);
    ELSE
        RETURN doc;
    END CASE;
END $$;
