-- Levels (issue 19): a program customer's level, reached by qualifying activity in a
-- rolling 12 months (the program's points rules say which: referred friends, points
-- earned or spend). Kept until `held_until` (a year after it was reached): never demoted
-- before. Each change is a `customer.level_changed` event and a row of `level_changes`.
CREATE TABLE customer_levels (
    merchant_id bigint NOT NULL,
    program_id  bigint NOT NULL,
    customer_id text NOT NULL,
    level       text NOT NULL,
    qualifying  bigint NOT NULL,
    multiplier_bp integer NOT NULL DEFAULT 10000,  -- the level's, read by the order's points
    reached_at  timestamptz NOT NULL,
    held_until  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, program_id, customer_id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);

CREATE TABLE level_changes (
    merchant_id   bigint NOT NULL,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    program_id    bigint NOT NULL,
    customer_id   text NOT NULL,
    from_level    text,
    to_level      text NOT NULL,
    qualifying    bigint NOT NULL,
    rules_version integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id, customer_id)
        REFERENCES customer_levels (merchant_id, program_id, customer_id) ON UPDATE CASCADE
);
CREATE INDEX level_changes_customer ON level_changes (merchant_id, program_id, customer_id, id);
