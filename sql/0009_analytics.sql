-- Growth analytics: rollups the reports read instead of raw clicks and orders.
--
-- Two ways in, both written in the transaction of the fact they count:
-- * append-only streams (clicks, share page views, shares, story views, ordering customers)
--   insert their counts as rows of `analytics_deltas`: a plain INSERT, so concurrent
--   checkouts never queue on one counter row;
-- * things whose contribution changes later (an order refunded or cancelled, a referral
--   reviewed, a reward approved or reversed, a customer's later orders, an advocate's first
--   share) mark themselves in `analytics_dirty`; the rollup worker recomputes each marked
--   entity's facts from its raw rows (`analytics/rules.py`), keeps them in
--   `analytics_entity_facts`, and moves the difference to its old facts into the deltas.
-- The worker then folds the deltas into the rollup tables below, in one transaction, so a
-- report always sees each fact exactly once. `referral analytics rebuild` recomputes every
-- rollup from the raw rows with the same rules and proves the two agree.
--
-- Days are the merchant's calendar days (its time zone at the time of writing; a time zone
-- change is followed by a rebuild). `dim` is the fact's breakdown (a channel, a referral's
-- outcome, a fraud rule, a reward's side, a cycle-time day count), '' when it has none;
-- `currency` is '' for counts. story_id and advocate_id are 0 when a fact has none.

CREATE TABLE analytics_deltas (
    merchant_id  bigint NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    program_id   bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    dim          text NOT NULL DEFAULT '',
    currency     text NOT NULL DEFAULT '',
    story_id     bigint NOT NULL DEFAULT 0,
    advocate_id  bigint NOT NULL DEFAULT 0,
    value        bigint NOT NULL DEFAULT 0,
    -- For distinct counts (visitors, sharing advocates, ordering customers): the member's
    -- 64-bit hash, folded into the day's HyperLogLog sketch.
    member       bigint,
    PRIMARY KEY (merchant_id, id)
);

CREATE TABLE analytics_dirty (
    merchant_id  bigint NOT NULL,
    entity       text NOT NULL CHECK (entity IN ('order', 'referral', 'reward', 'customer', 'advocate')),
    key          text NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, entity, key)
);

-- Each entity's current facts, as last computed: what to take back when it changes.
CREATE TABLE analytics_entity_facts (
    merchant_id  bigint NOT NULL,
    entity       text NOT NULL,
    key          text NOT NULL,
    program_id   bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    dim          text NOT NULL,
    currency     text NOT NULL,
    story_id     bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, entity, key, metric, program_id, day, dim, currency, story_id,
                 advocate_id)
);

-- Program totals per day (program_id 0: merchant-wide facts, such as every order the shop
-- reported, and customers no referral brought).
CREATE TABLE analytics_daily (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    dim          text NOT NULL,
    currency     text NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, program_id, day, metric, dim, currency)
);
CREATE INDEX analytics_daily_metric ON analytics_daily (merchant_id, metric, day);

CREATE TABLE analytics_story_daily (
    merchant_id  bigint NOT NULL,
    story_id     bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    dim          text NOT NULL,
    currency     text NOT NULL,
    program_id   bigint NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, story_id, day, metric, dim, currency)
);
CREATE INDEX analytics_story_daily_program ON analytics_story_daily (merchant_id, program_id, day);

-- Per advocate, by day and by month (the merchant's months): a leaderboard over a year
-- reads whole months from the second and only the partial months at its ends from the first.
CREATE TABLE analytics_advocate_daily (
    merchant_id  bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    currency     text NOT NULL,
    program_id   bigint NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, advocate_id, day, metric, currency)
);
CREATE INDEX analytics_advocate_daily_board
    ON analytics_advocate_daily (merchant_id, metric, day, advocate_id);

CREATE TABLE analytics_advocate_monthly (
    merchant_id  bigint NOT NULL,
    metric       text NOT NULL,
    month        date NOT NULL,
    advocate_id  bigint NOT NULL,
    currency     text NOT NULL,
    program_id   bigint NOT NULL,
    value        bigint NOT NULL,
    PRIMARY KEY (merchant_id, metric, month, advocate_id, currency)
);

-- Distinct counts per day as HyperLogLog sketches (Apache DataSketches, lg_k 12: about
-- 1.6 % relative standard error), unioned over any range.
CREATE TABLE analytics_sketches (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    day          date NOT NULL,
    metric       text NOT NULL,
    sketch       bytea NOT NULL,
    PRIMARY KEY (merchant_id, program_id, day, metric)
);

-- The advocate's share page opened by a person (bots and HEAD excluded): the funnel's top.
CREATE TABLE share_page_views (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    viewed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX share_page_views_advocate ON share_page_views (merchant_id, advocate_id, viewed_at);

-- When the advocate first shared: their first share button followed or the first click on
-- their link, whichever came first. The cycle time counts from it.
ALTER TABLE advocates ADD COLUMN first_shared_at timestamptz;

-- Changes are noticed where they are written: every insert or update of an order, referral,
-- reward or an advocate's first share marks what it changes, in its own transaction, so no
-- write path (the checkout, a review, a payout, the release worker, one still to come) can
-- forget to. A mark is one row per thing, whatever the number of changes before the worker
-- comes by.
CREATE FUNCTION analytics_customer_key(customer_id text, email text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN customer_id IS NOT NULL THEN 'c:' || customer_id
                WHEN email IS NOT NULL THEN 'e:' || email END
$$;

CREATE FUNCTION analytics_mark_order() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    customer text := analytics_customer_key(NEW.customer_id, NEW.email_normalised);
BEGIN
    INSERT INTO analytics_dirty (merchant_id, entity, key)
    VALUES (NEW.merchant_id, 'order', NEW.id::text)
    ON CONFLICT DO NOTHING;
    IF customer IS NOT NULL THEN
        INSERT INTO analytics_dirty (merchant_id, entity, key)
        VALUES (NEW.merchant_id, 'customer', customer)
        ON CONFLICT DO NOTHING;
        -- Customers who ordered, a distinct count per merchant day (never taken back).
        IF TG_OP = 'INSERT' THEN
            INSERT INTO analytics_deltas (merchant_id, program_id, day, metric, member)
            SELECT NEW.merchant_id, 0,
                   (NEW.occurred_at AT TIME ZONE click_time_zone(m.time_zone))::date,
                   'ordering_customers', hashtextextended(customer, 0)
            FROM merchants m WHERE m.id = NEW.merchant_id;
        END IF;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER orders_analytics AFTER INSERT OR UPDATE OF refunded, status, referral_id
    ON orders FOR EACH ROW EXECUTE FUNCTION analytics_mark_order();

-- A referral's outcome changes its own facts, its orders' (referred or not), its friend's
-- cohort, its advocate's (a friend turned advocate) and, when the friend is an advocate too,
-- theirs.
CREATE FUNCTION analytics_mark_referral() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_dirty (merchant_id, entity, key)
    SELECT NEW.merchant_id, e, k FROM (VALUES
        ('referral', NEW.id::text),
        ('advocate', NEW.advocate_id::text),
        ('customer', analytics_customer_key(NEW.friend_customer_id, NEW.friend_email_normalised))
    ) AS t(e, k)
    WHERE k IS NOT NULL
    UNION ALL
    SELECT NEW.merchant_id, 'order', o.id::text FROM orders o
    WHERE o.merchant_id = NEW.merchant_id AND o.referral_id = NEW.id
    UNION ALL
    SELECT NEW.merchant_id, 'advocate', a.id::text FROM advocates a
    WHERE a.merchant_id = NEW.merchant_id AND a.customer_id = NEW.friend_customer_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER referrals_analytics AFTER INSERT OR UPDATE OF status, first_order_pk, signed_up_at
    ON referrals FOR EACH ROW EXECUTE FUNCTION analytics_mark_referral();

CREATE FUNCTION analytics_mark_reward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_dirty (merchant_id, entity, key)
    VALUES (NEW.merchant_id, 'reward', NEW.id::text)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER rewards_analytics AFTER INSERT OR UPDATE OF status, amount
    ON rewards FOR EACH ROW EXECUTE FUNCTION analytics_mark_reward();

-- The cycle time of an advocate's referrals counts from their first share.
CREATE FUNCTION analytics_mark_first_share() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO analytics_dirty (merchant_id, entity, key)
    SELECT r.merchant_id, 'referral', r.id::text FROM referrals r
    WHERE r.merchant_id = NEW.merchant_id AND r.advocate_id = NEW.id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER advocates_first_share_analytics AFTER UPDATE OF first_shared_at
    ON advocates FOR EACH ROW EXECUTE FUNCTION analytics_mark_first_share();
