-- Points (issue 19): a currency of their own, never money, never in a payout batch.
-- A balance belongs to one program's customer (merchant, program, the shop's customer id):
-- the program says how points are earned, what they buy and when they expire, so one set
-- of rules explains every number; a shop with two programs keeps two balances apart.

-- The program's points rules, versioned like its reward rules (0023): each change is a new
-- row, each lot records the version it was earned under, so a change never rewrites what
-- was earned.
CREATE TABLE points_rules (
    merchant_id bigint NOT NULL,
    program_id  bigint NOT NULL,
    version     integer NOT NULL CHECK (version >= 1),
    rules       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, program_id, version),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);

-- One row per program customer with points: the row a redemption or the expiry job locks
-- (so neither can spend a lot the other is taking), and the last activity that a program
-- expiring "since the last activity" counts from (`expires_at`: then every lot goes).
CREATE TABLE points_accounts (
    merchant_id      bigint NOT NULL,
    program_id       bigint NOT NULL,
    customer_id      text NOT NULL,
    last_activity_at timestamptz NOT NULL,
    expires_at       timestamptz,
    expiring_told_at timestamptz,  -- points.expiring sent for this expires_at
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, program_id, customer_id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);

-- A lot: points earned at once, for one reason (`source`, `source_key`: unique, so a retry
-- earns once). `remaining` is what is left of it; the entries say where the rest went.
CREATE TABLE points_lots (
    merchant_id   bigint NOT NULL,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    program_id    bigint NOT NULL,
    customer_id   text NOT NULL,
    source        text NOT NULL CHECK (source IN ('order', 'advocate_referral', 'friend_order',
                  'share', 'story', 'birthday', 'signup', 'adjustment')),
    source_key    text NOT NULL,
    points        bigint NOT NULL CHECK (points > 0),
    remaining     bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    earned_at     timestamptz NOT NULL,
    expires_at    timestamptz,  -- "since earned" programs; NULL: the account's expiry
    expiring_told_at timestamptz,
    rules_version integer NOT NULL,
    order_pk      bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, program_id, customer_id, source, source_key),
    FOREIGN KEY (merchant_id, program_id, customer_id)
        REFERENCES points_accounts (merchant_id, program_id, customer_id) ON UPDATE CASCADE
);
CREATE INDEX points_lots_open ON points_lots (merchant_id, program_id, customer_id, earned_at, id)
    WHERE remaining > 0;
CREATE INDEX points_lots_due ON points_lots (expires_at) WHERE remaining > 0;
CREATE INDEX points_lots_order ON points_lots (merchant_id, order_pk) WHERE order_pk IS NOT NULL;
CREATE INDEX points_accounts_due ON points_accounts (expires_at) WHERE expires_at IS NOT NULL;

-- A redemption: points turned into a coupon or store credit from the program's catalogue,
-- through a reward (rewards/ issues the coupon and books the credit). Cancelled while the
-- coupon is unused (or the credit unpaid): its points return to the lots they came from.
CREATE TABLE points_redemptions (
    merchant_id  bigint NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    program_id   bigint NOT NULL,
    customer_id  text NOT NULL,
    item         text NOT NULL,
    points       bigint NOT NULL CHECK (points > 0),
    reward_id    bigint NOT NULL,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id, customer_id)
        REFERENCES points_accounts (merchant_id, program_id, customer_id) ON UPDATE CASCADE,
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id)
);
CREATE INDEX points_redemptions_customer
    ON points_redemptions (merchant_id, program_id, customer_id, id);

-- The journal, append-only: every change of a lot, with why. A lot's points plus its
-- entries' deltas (after its own 'earn') equal its remaining; the balance is the sum of the
-- open lots. `ref`: the order, redemption or refund it came from.
CREATE TABLE points_entries (
    merchant_id bigint NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    program_id  bigint NOT NULL,
    customer_id text NOT NULL,
    lot_id      bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('earn', 'redeem', 'cancel', 'refund', 'expire')),
    delta       bigint NOT NULL CHECK (delta <> 0),
    ref         text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, lot_id) REFERENCES points_lots (merchant_id, id)
);
CREATE INDEX points_entries_customer ON points_entries (merchant_id, program_id, customer_id, id);
CREATE INDEX points_entries_lot ON points_entries (merchant_id, lot_id);

-- Append-only, but for an erasure (referral/customers/): the customer id becomes its
-- tombstone, and nothing else may change.
CREATE FUNCTION points_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'customer_id') = (to_jsonb(OLD) - 'customer_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'points_entries is append-only';
END
$$;
CREATE TRIGGER points_entries_append_only BEFORE UPDATE OR DELETE ON points_entries
    FOR EACH ROW EXECUTE FUNCTION points_entries_append_only();
