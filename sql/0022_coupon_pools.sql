-- Coupon pools (referral/coupons/): codes the shop created in its own shop platform and
-- uploaded, handed one to each friend whose reward is a pool coupon. A code is unique per
-- merchant, compared without case, across every pool and every coupon already given; a
-- friend's reward that finds its pools empty waits (`coupon_waits`) and gets the next code
-- uploaded, oldest reward first.
CREATE TABLE coupon_pools (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    program_id   bigint NOT NULL,
    currency     char(3) NOT NULL,
    name         text NOT NULL,
    low_below    integer NOT NULL CHECK (low_below >= 0),
    low_days     integer NOT NULL CHECK (low_days >= 0),
    low_since    timestamptz,  -- when `coupon_pool.low` was recorded; cleared by a refill
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);
CREATE INDEX coupon_pools_program ON coupon_pools (merchant_id, program_id, currency, id);

CREATE TABLE coupon_pool_codes (
    merchant_id  bigint NOT NULL,
    pool_id      bigint NOT NULL,
    code         text NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    reward_id    bigint,  -- the friend's reward it was given to
    assigned_at  timestamptz,
    PRIMARY KEY (merchant_id, pool_id, code),
    FOREIGN KEY (merchant_id, pool_id) REFERENCES coupon_pools (merchant_id, id)
);
CREATE UNIQUE INDEX coupon_pool_codes_folded ON coupon_pool_codes (merchant_id, lower(code));
CREATE INDEX coupon_pool_codes_free ON coupon_pool_codes (merchant_id, pool_id, added_at, code)
    WHERE reward_id IS NULL;
CREATE INDEX coupon_pool_codes_assigned ON coupon_pool_codes (merchant_id, pool_id, assigned_at)
    WHERE reward_id IS NOT NULL;

CREATE TABLE coupon_waits (
    merchant_id  bigint NOT NULL,
    reward_id    bigint NOT NULL,
    program_id   bigint NOT NULL,
    currency     char(3) NOT NULL,
    amount       bigint NOT NULL,
    valid_days   integer NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, reward_id),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id)
);
CREATE INDEX coupon_waits_program ON coupon_waits (merchant_id, program_id, currency, since);

-- A pool code typed at checkout is found without case; a redemption reported on its own
-- (`POST /v1/coupons/{code}/redeem`) names the shop's order id before the order is reported.
CREATE INDEX coupons_code_folded ON coupons (merchant_id, lower(code));
ALTER TABLE coupons ADD COLUMN redeemed_order_id text, ADD COLUMN redeemed_at timestamptz;
