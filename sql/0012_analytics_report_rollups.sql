-- Rollups at the grain the reports read, kept by the same fold as analytics_daily (the
-- rebuild proves they all agree), so a year of a report by day reads a few thousand small
-- rows, not every channel's row of every day nor a year of sketches:
--   analytics_daily_totals: a day's sums per metric without the breakdown dim (the series);
--   analytics_monthly: a month's sums with the dim (a breakdown over the range reads whole
--     months here and only the days of the partial months at its ends from analytics_daily);
--   analytics_story_totals / analytics_story_monthly: the same for the stories report and
--     its leaderboard;
--   analytics_sketches_monthly: a month's distinct-count sketch (the union of its days);
--   analytics_sketches.estimate: a day sketch's estimate, so a series by day reads numbers.
-- Program 0's sketches of visitors and sharing advocates are every program's together (a
-- visitor of two programs is one visitor of the shop), so a report of every program reads
-- one sketch a day.
CREATE TABLE analytics_daily_totals (
    merchant_id  bigint NOT NULL,
    metric       text NOT NULL,
    day          date NOT NULL,
    program_id   bigint NOT NULL,
    currency     text NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, day, program_id, currency)
);

CREATE TABLE analytics_monthly (
    merchant_id  bigint NOT NULL,
    metric       text NOT NULL,
    month        date NOT NULL,
    program_id   bigint NOT NULL,
    dim          text NOT NULL,
    currency     text NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, month, program_id, dim, currency)
);

CREATE TABLE analytics_story_totals (
    merchant_id  bigint NOT NULL,
    metric       text NOT NULL,
    day          date NOT NULL,
    program_id   bigint NOT NULL,
    currency     text NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, day, program_id, currency)
);

CREATE TABLE analytics_story_monthly (
    merchant_id  bigint NOT NULL,
    metric       text NOT NULL,
    month        date NOT NULL,
    story_id     bigint NOT NULL,
    currency     text NOT NULL,
    program_id   bigint NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, month, story_id, currency)
);

-- (Emptied first: every merchant's are restated below.)
DELETE FROM analytics_sketches;
ALTER TABLE analytics_sketches ADD COLUMN estimate float8 NOT NULL;

CREATE TABLE analytics_sketches_monthly (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    month        date NOT NULL,
    metric       text NOT NULL,
    sketch       bytea NOT NULL,
    estimate     float8 NOT NULL,
    PRIMARY KEY (merchant_id, program_id, month, metric)
);

-- A leaderboard reads its top advocates' figures by advocate.
CREATE INDEX analytics_advocate_monthly_advocate
    ON analytics_advocate_monthly (merchant_id, advocate_id, month);

-- Merchants whose analytics the worker books again from the raw rows (as after a time zone
-- change), taken one at a time. Every merchant's are, once, to fill the rollups above.
CREATE TABLE analytics_restate (
    merchant_id  bigint NOT NULL,
    PRIMARY KEY (merchant_id)
);
INSERT INTO analytics_restate (merchant_id) SELECT id FROM merchants;

-- A write marks only the row it wrote (one insert, no lookups): the worker finds, in batches,
-- what else the change counts in (an order's customer; a referral's orders, advocate, friend
-- and the friend's own advocacy) and writes the shop's ordering customers when it books an
-- order. The checkout pays a few tens of microseconds for its analytics, not a few hundred.
DROP TRIGGER orders_analytics ON orders;
DROP TRIGGER referrals_analytics ON referrals;
DROP TRIGGER rewards_analytics ON rewards;
DROP FUNCTION analytics_mark_order();
DROP FUNCTION analytics_mark_referral();
DROP FUNCTION analytics_mark_reward();

CREATE FUNCTION analytics_mark() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_dirty (merchant_id, entity, key)
    VALUES (NEW.merchant_id, TG_ARGV[0], NEW.id::text)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_analytics AFTER INSERT OR UPDATE OF refunded, status, referral_id
    ON orders FOR EACH ROW EXECUTE FUNCTION analytics_mark('order');
CREATE TRIGGER referrals_analytics AFTER INSERT OR UPDATE OF status, first_order_pk, signed_up_at
    ON referrals FOR EACH ROW EXECUTE FUNCTION analytics_mark('referral');
CREATE TRIGGER rewards_analytics AFTER INSERT OR UPDATE OF status, amount
    ON rewards FOR EACH ROW EXECUTE FUNCTION analytics_mark('reward');

-- The worker takes the oldest deltas first, across merchants.
CREATE INDEX analytics_deltas_order ON analytics_deltas (id);
