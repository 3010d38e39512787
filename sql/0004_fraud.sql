-- The fraud engine: what each customer was seen with (hashed), IPs of orders and signups
-- for velocity counts, the policy's version, and the audit trail of review decisions.

-- Hashed signals seen with a customer (orders, signups, advocate upserts), so a friend can be
-- compared with their advocate: kinds ip (address), ip_ua (address and user agent), visitor
-- (the link's visitor cookie), payment (the shop's payment fingerprint) and address (the
-- normalised shipping address). Values are HMACs under the IP hash key, never raw.
CREATE TABLE customer_signals (
    merchant_id    bigint NOT NULL REFERENCES merchants (id),
    customer_id    text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('ip', 'ip_ua', 'visitor', 'payment', 'address')),
    value          bytea NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    PRIMARY KEY (merchant_id, customer_id, kind, value)
);

-- Velocity: signups and orders per IP per day, counted through these indexes.
ALTER TABLE orders ADD COLUMN ip_hash bytea;
ALTER TABLE signups ADD COLUMN ip_hash bytea;
CREATE INDEX orders_ip ON orders (merchant_id, ip_hash, occurred_at) WHERE ip_hash IS NOT NULL;
CREATE INDEX signups_ip ON signups (merchant_id, ip_hash, occurred_at) WHERE ip_hash IS NOT NULL;

-- An advocate's rejected referrals (rule rejected_referrals) and the review queue.
CREATE INDEX referrals_advocate_rejected ON referrals (merchant_id, advocate_id, created_at)
    WHERE status = 'rejected';
CREATE INDEX referrals_in_review ON referrals (merchant_id, created_at, id)
    WHERE status = 'in_review';
-- Backtests replay one program's referrals over a time range.
CREATE INDEX referrals_program_created ON referrals (merchant_id, program_id, created_at, id);

-- An advocate whose rejected referrals reached the policy's limit has their codes suspended;
-- a person may reactivate them, and only rejections after that count again.
ALTER TABLE advocates ADD COLUMN suspended_at timestamptz;
ALTER TABLE advocates ADD COLUMN reactivated_at timestamptz;

-- Every PUT of a policy bumps the version; decisions name the version they were made under.
ALTER TABLE programs ADD COLUMN fraud_policy_version integer NOT NULL DEFAULT 0;

-- Each approve or reject of a referral by a person, with the rewards it moved, so the
-- decision can be undone exactly (an approve reinstates what the reject reversed).
CREATE TABLE referral_reviews (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    referral_id  bigint NOT NULL,
    action       text NOT NULL CHECK (action IN ('approve', 'reject')),
    actor        text NOT NULL,
    note         text,
    from_status  text NOT NULL,
    to_status    text NOT NULL,
    reward_ids   bigint[] NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (merchant_id, referral_id) REFERENCES referrals (merchant_id, id)
);
CREATE INDEX referral_reviews_referral ON referral_reviews (merchant_id, referral_id, id);
