-- Unique clicks beside raw clicks: one per (visitor id, advocate, day), the day being the
-- merchant's calendar day (DECISIONS.md, "Analytics definitions"). Bots and HEAD requests
-- are never clicks, so never unique ones.
--
-- The click writer inserts each flushed batch's first human click per key here with
-- ON CONFLICT DO NOTHING, and counts the rows it inserted into `click_rollups.unique_clicks`
-- under the (channel, hour) of that click, in the transaction of the COPY: the redirect
-- itself does no more work. Rows of days long past are pruned: once its day is over a key
-- can only be met again by a click replayed from an outage.
CREATE TABLE unique_clicks (
    merchant_id  bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    day          date NOT NULL,
    visitor_id   text NOT NULL,
    PRIMARY KEY (merchant_id, advocate_id, day, visitor_id)
);
CREATE INDEX unique_clicks_day ON unique_clicks (day);

ALTER TABLE click_rollups ADD COLUMN unique_clicks bigint NOT NULL DEFAULT 0;

-- A merchant's time zone as PostgreSQL knows it, else UTC: a zone name the server does not
-- know must never make the click writer fail (and retry) every batch.
CREATE FUNCTION click_time_zone(zone text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE zone;
    RETURN zone;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN 'UTC';
END $$;

-- The clicks recorded before this migration, counted by the same definition.
WITH zones AS MATERIALIZED (
    SELECT id, click_time_zone(time_zone) AS zone FROM merchants
), firsts AS (
    SELECT DISTINCT ON (c.merchant_id, c.advocate_id, day, c.visitor_id)
           c.merchant_id, c.advocate_id, c.channel, c.visitor_id,
           (c.clicked_at AT TIME ZONE z.zone)::date AS day,
           date_trunc('hour', c.clicked_at, 'UTC') AS hour
    FROM clicks c JOIN zones z ON z.id = c.merchant_id
    WHERE NOT c.is_bot
    ORDER BY c.merchant_id, c.advocate_id, day, c.visitor_id, c.clicked_at
), inserted AS (
    INSERT INTO unique_clicks (merchant_id, advocate_id, day, visitor_id)
    SELECT merchant_id, advocate_id, day, visitor_id FROM firsts
    RETURNING 1
)
UPDATE click_rollups r SET unique_clicks = f.n
FROM (SELECT merchant_id, advocate_id, channel, hour, count(*) AS n
      FROM firsts GROUP BY 1, 2, 3, 4) f
WHERE r.merchant_id = f.merchant_id AND r.advocate_id = f.advocate_id
  AND r.channel = f.channel AND r.hour = f.hour;
