-- A program's holdout: a share of the merchant's customers (1-50 %, `share_bps` in basis
-- points) who are never invited to refer, so the report can compare them with the treated
-- ones (`referral/experiments/holdout.py`). Who is held out is a keyed hash of the
-- customer id under `hash_key` (rules.held_out): no row per customer.
CREATE TABLE program_holdouts (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    program_id   bigint NOT NULL,
    share_bps    integer NOT NULL,
    hash_key     bytea NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, program_id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);
ALTER TABLE program_holdouts ADD CONSTRAINT program_holdouts_share_check
    CHECK (share_bps BETWEEN 100 AND 5000);

-- Each time a held-out customer asked for a code or a share page and was told they are
-- held out: appended (no counter row to queue on), naming no one.
CREATE TABLE holdout_answers (
    merchant_id  bigint NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    program_id   bigint NOT NULL,
    via          text NOT NULL,
    answered_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES program_holdouts (merchant_id, program_id)
);
ALTER TABLE holdout_answers ADD CONSTRAINT holdout_answers_via_check
    CHECK (via IN ('advocate', 'share_url', 'share_page'));
CREATE INDEX holdout_answers_program ON holdout_answers (merchant_id, program_id, answered_at);
