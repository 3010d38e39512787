-- A program's lifecycle: scheduled (`starts_at` in the future), running, paused, ended.
-- `ends_at`: when it ends by itself (NULL: never); `ended_at`: when it was ended by hand
-- (POST /v1/programs/{id}/end sets status 'ended', which is final). A program whose
-- `ends_at` has passed counts as ended whatever its status (`programs/rules.py`), so nothing
-- has to run at that moment: the redirect and attribution compare the clock per request.
ALTER TABLE programs ADD COLUMN ends_at timestamptz, ADD COLUMN ended_at timestamptz;
ALTER TABLE programs DROP CONSTRAINT programs_status_check;
ALTER TABLE programs ADD CONSTRAINT programs_status_check
    CHECK (status IN ('draft', 'active', 'paused', 'ended', 'archived'));
ALTER TABLE programs ADD CONSTRAINT programs_schedule_check
    CHECK (ends_at IS NULL OR ends_at > starts_at);
ALTER TABLE programs ADD CONSTRAINT programs_ended_check
    CHECK ((status = 'ended') = (ended_at IS NOT NULL));

-- Migration 0014's notification, now also when `ends_at` changes (status and start it
-- already covered): every instance's code cache follows a pause, an end or a new schedule.
CREATE OR REPLACE FUNCTION notify_program_link_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('referral_codes', 'p:' || string_agg(n.id::text, ','))
    FROM (SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 200 AS chunk
          FROM new_programs n JOIN old_programs o ON o.merchant_id = n.merchant_id AND o.id = n.id
          WHERE (n.status, n.starts_at, n.ends_at, n.landing_url, n.fallback_url,
                 n.qr_foreground, n.qr_background)
                IS DISTINCT FROM (o.status, o.starts_at, o.ends_at, o.landing_url,
                                  o.fallback_url, o.qr_foreground, o.qr_background)) n
    GROUP BY chunk;
    RETURN NULL;
END $$;
