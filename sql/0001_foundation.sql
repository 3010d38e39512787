-- Foundation: merchants and keys, programs, advocates, codes, clicks.
-- Every table carries merchant_id so the schema can be distributed by merchant (Citus).

CREATE TABLE merchants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- A live merchant and its test-mode twin share an account; test data is its own tenant.
    account_id  uuid NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('test', 'live')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    time_zone   text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, mode)
);

CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    kind         text NOT NULL CHECK (kind IN ('secret', 'publishable')),
    -- SHA-256 of the whole key: keys are high-entropy, and a slow hash would break the
    -- checkout latency budget.
    key_hash     bytea NOT NULL UNIQUE,
    key_hint     text NOT NULL,
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE programs (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id               bigint NOT NULL REFERENCES merchants (id),
    name                      text NOT NULL,
    status                    text NOT NULL DEFAULT 'active'
                              CHECK (status IN ('draft', 'active', 'paused', 'archived')),
    landing_url               text NOT NULL,
    fallback_url              text,
    attribution_window_days   integer NOT NULL DEFAULT 30 CHECK (attribution_window_days BETWEEN 1 AND 365),
    hold_days                 integer NOT NULL DEFAULT 30 CHECK (hold_days BETWEEN 0 AND 365),
    rewards                   jsonb NOT NULL DEFAULT '{}',
    fraud_policy              jsonb NOT NULL DEFAULT '{}',
    qr_foreground             text NOT NULL DEFAULT '#000000',
    qr_background             text NOT NULL DEFAULT '#ffffff',
    starts_at                 timestamptz NOT NULL DEFAULT now(),
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, id)
);
CREATE INDEX programs_merchant_created ON programs (merchant_id, created_at, id);

CREATE TABLE advocates (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    customer_id  text NOT NULL,
    email        text,
    name         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id),
    UNIQUE (program_id, customer_id),
    UNIQUE (merchant_id, id)
);
CREATE INDEX advocates_program_created ON advocates (merchant_id, program_id, created_at, id);

-- One code table for the whole deployment: the URL /r/{code} names no merchant.
-- lookup_key is the normalised, confusable-folded form; two codes that a person could
-- mistake for each other share it, so they cannot both exist.
CREATE TABLE codes (
    lookup_key   text PRIMARY KEY,
    code         text NOT NULL,
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('generated', 'vanity')),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id)
);
CREATE INDEX codes_advocate ON codes (merchant_id, advocate_id);

-- Clicks: append-only, written in batches by COPY, partitioned by month. No foreign keys
-- (they make COPY 2-3x slower); attribution never reads this table (it reads the signed
-- click token), so a click still in the writer's buffer can never lose an order.
CREATE TABLE clicks (
    id            uuid NOT NULL,
    clicked_at    timestamptz NOT NULL,
    merchant_id   bigint NOT NULL,
    program_id    bigint NOT NULL,
    advocate_id   bigint NOT NULL,
    code          text NOT NULL,
    channel       text NOT NULL,
    visitor_id    text NOT NULL,
    ip_hash       bytea,
    ip_net_hash   bytea,
    user_agent    text,
    referer_host  text,
    story_id      bigint,
    is_bot        boolean NOT NULL DEFAULT false,
    PRIMARY KEY (merchant_id, clicked_at, id)
) PARTITION BY RANGE (clicked_at);
CREATE TABLE clicks_default PARTITION OF clicks DEFAULT;

-- Creates the monthly partitions around `at`; called on start-up and daily by the app.
CREATE FUNCTION ensure_click_partitions(at timestamptz, months_ahead integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    month_start date;
    name text;
BEGIN
    FOR i IN 0..months_ahead LOOP
        month_start := (date_trunc('month', at AT TIME ZONE 'UTC') + make_interval(months => i))::date;
        name := format('clicks_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF clicks FOR VALUES FROM (%L) TO (%L)',
                name, month_start::timestamp AT TIME ZONE 'UTC',
                (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        END IF;
    END LOOP;
END $$;
SELECT ensure_click_partitions(now(), 2);

-- Click counts for stats, per advocate, channel and hour. The click writer adds each
-- flushed batch in one statement, so no row is updated once per click.
CREATE TABLE click_rollups (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    channel      text NOT NULL,
    hour         timestamptz NOT NULL,
    clicks       bigint NOT NULL DEFAULT 0,
    bot_hits     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (merchant_id, advocate_id, channel, hour)
);
CREATE INDEX click_rollups_program ON click_rollups (merchant_id, program_id, hour);
