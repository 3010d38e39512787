-- Attribution and double-sided rewards: orders, refunds, referrals, rewards, the ledger,
-- coupons, the outbox and idempotency keys. Money is bigint minor units + char(3) currency.

-- Every order the shop sends, referred or not: it decides "new customer" and lets stats
-- report the referred share of sales.
CREATE TABLE orders (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id        bigint NOT NULL REFERENCES merchants (id),
    order_id           text NOT NULL,
    customer_id        text,
    email_normalised   text,
    subtotal           bigint NOT NULL CHECK (subtotal >= 0),
    total              bigint NOT NULL CHECK (total >= 0),
    currency           char(3) NOT NULL,
    refunded           bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= total),
    status             text NOT NULL DEFAULT 'placed'
                       CHECK (status IN ('placed', 'partially_refunded', 'refunded', 'cancelled')),
    occurred_at        timestamptz NOT NULL,
    is_import          boolean NOT NULL DEFAULT false,
    referral_id        bigint,
    -- SHA-256 of the money fields: a retry with other amounts is a conflict, not a new order.
    fingerprint        bytea NOT NULL,
    result             jsonb NOT NULL DEFAULT '{}',
    metadata           jsonb NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, order_id),
    UNIQUE (merchant_id, id)
);
CREATE INDEX orders_customer ON orders (merchant_id, customer_id, occurred_at)
    WHERE customer_id IS NOT NULL;
CREATE INDEX orders_email ON orders (merchant_id, email_normalised, occurred_at)
    WHERE email_normalised IS NOT NULL;

CREATE TABLE refunds (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    order_pk     bigint NOT NULL,
    refund_id    text NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    currency     char(3) NOT NULL,
    occurred_at  timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, order_pk) REFERENCES orders (merchant_id, id),
    UNIQUE (merchant_id, order_pk, refund_id)
);

-- A friend attributed to an advocate. The friend key is the shop's customer id, else the
-- normalised email. A friend has at most one live (not rejected) referral per program:
-- the first valid attribution wins, for good.
CREATE TABLE referrals (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id             bigint NOT NULL,
    program_id              bigint NOT NULL,
    advocate_id             bigint NOT NULL,
    friend_key              text NOT NULL,
    friend_customer_id      text,
    friend_email_normalised text,
    status                  text NOT NULL
                            CHECK (status IN ('pending', 'converted', 'in_review', 'rejected')),
    source                  text NOT NULL CHECK (source IN ('code', 'link', 'signup_email')),
    attribution             jsonb NOT NULL,
    decision                jsonb NOT NULL DEFAULT '{}',
    rejection_reason        text,
    signed_up_at            timestamptz,
    converted_at            timestamptz,
    first_order_pk          bigint,
    created_at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id),
    UNIQUE (merchant_id, id)
);
CREATE UNIQUE INDEX referrals_one_live_per_friend ON referrals (program_id, friend_key)
    WHERE status <> 'rejected';
CREATE INDEX referrals_friend_customer ON referrals (merchant_id, friend_customer_id)
    WHERE friend_customer_id IS NOT NULL;
CREATE INDEX referrals_friend_email ON referrals (merchant_id, friend_email_normalised)
    WHERE friend_email_normalised IS NOT NULL;
CREATE INDEX referrals_advocate ON referrals (merchant_id, advocate_id, created_at);
CREATE INDEX referrals_created ON referrals (merchant_id, created_at, id);

-- What one party earns from one referral (or one milestone). `amount` is the current value:
-- for cash and store credit it always equals the sum of the reward's ledger entries.
CREATE TABLE rewards (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id     bigint NOT NULL,
    program_id      bigint NOT NULL,
    referral_id     bigint,
    advocate_id     bigint NOT NULL,
    side            text NOT NULL CHECK (side IN ('advocate', 'friend')),
    payee_key       text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('cash', 'store_credit', 'coupon', 'points')),
    currency        char(3),
    amount          bigint NOT NULL CHECK (amount >= 0),
    original_amount bigint NOT NULL CHECK (original_amount >= 0),
    basis_points    integer,
    order_pk        bigint,
    milestone       integer,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'in_review', 'approved', 'paid', 'reversed')),
    reversed_from   text,
    hold_until      timestamptz NOT NULL,
    -- When it was earned (the order's or signup's occurred_at): caps and periods use it.
    earned_at       timestamptz NOT NULL,
    rule            jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    approved_at     timestamptz,
    paid_at         timestamptz,
    reversed_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, referral_id) REFERENCES referrals (merchant_id, id),
    UNIQUE (merchant_id, id),
    CHECK ((kind IN ('cash', 'store_credit', 'coupon')) = (currency IS NOT NULL))
);
-- One reward per party per referral; one bonus per advocate per milestone.
CREATE UNIQUE INDEX rewards_one_per_side ON rewards (referral_id, side) WHERE milestone IS NULL;
CREATE UNIQUE INDEX rewards_one_per_milestone ON rewards (advocate_id, milestone)
    WHERE milestone IS NOT NULL;
CREATE INDEX rewards_due ON rewards (hold_until) WHERE status = 'pending';
CREATE INDEX rewards_order ON rewards (merchant_id, order_pk) WHERE order_pk IS NOT NULL;
CREATE INDEX rewards_advocate ON rewards (merchant_id, advocate_id, side, earned_at);
CREATE INDEX rewards_created ON rewards (merchant_id, created_at, id);

-- Append-only. Accounts per payee and currency: pending -> payable -> paid, and receivable
-- for money reversed after payment. A move between accounts is two rows sharing a
-- transition id; balances are sums of entries.
CREATE TABLE ledger_entries (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id    bigint NOT NULL,
    reward_id      bigint NOT NULL,
    transition_id  bigint NOT NULL,
    payee_key      text NOT NULL,
    currency       char(3) NOT NULL,
    account        text NOT NULL CHECK (account IN ('pending', 'payable', 'paid', 'receivable')),
    amount         bigint NOT NULL CHECK (amount <> 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id)
);
CREATE INDEX ledger_entries_reward ON ledger_entries (merchant_id, reward_id, id);
CREATE INDEX ledger_entries_payee ON ledger_entries (merchant_id, payee_key, currency, account);

-- Every state change of a reward, with who did it and why: the reward's history.
CREATE TABLE reward_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    reward_id    bigint NOT NULL,
    from_status  text,
    to_status    text NOT NULL,
    amount       bigint NOT NULL,
    delta        bigint NOT NULL,
    reason       text NOT NULL,
    actor        text NOT NULL,
    note         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id)
);
CREATE INDEX reward_transitions_reward ON reward_transitions (merchant_id, reward_id, id);

-- Single-use codes issued to friends. The F1 prefix holds a character that generated
-- referral codes never use, and vanity codes may not start with it.
CREATE TABLE coupons (
    code         text PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    reward_id    bigint NOT NULL,
    amount       bigint NOT NULL,
    currency     char(3) NOT NULL,
    status       text NOT NULL DEFAULT 'issued'
                 CHECK (status IN ('issued', 'redeemed', 'expired', 'void')),
    expires_at   timestamptz NOT NULL,
    redeemed_order_pk bigint,
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id),
    UNIQUE (reward_id)
);

CREATE TABLE signups (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id      bigint NOT NULL REFERENCES merchants (id),
    customer_id      text NOT NULL,
    email_normalised text,
    referral_id      bigint,
    occurred_at      timestamptz NOT NULL,
    result           jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, customer_id)
);

-- The outbox: written in the same transaction as the change it announces.
CREATE TABLE events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    type         text NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_merchant ON events (merchant_id, id);
CREATE INDEX events_merchant_type ON events (merchant_id, type, id);

-- Idempotency-Key: scoped to merchant and route, stored with its response in the same
-- transaction as the effect.
CREATE TABLE idempotency_keys (
    merchant_id    bigint NOT NULL,
    route          text NOT NULL,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    status_code    integer NOT NULL,
    response       bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, route, key)
);
