-- Held coupons, and payout emails checked the one strict way.
--
-- A friend's coupon is issued with its reward but is `held` while the reward is pending or in
-- review: its code is known, it cannot be redeemed, and it does not expire. Approval makes it
-- `issued` (redeemable, its validity counted from then); a reversal voids it. Coupons are
-- re-keyed by merchant first (Citus rules): lookups are always per merchant.
ALTER TABLE coupons DROP CONSTRAINT coupons_status_check;
ALTER TABLE coupons ADD CONSTRAINT coupons_status_check
    CHECK (status IN ('held', 'issued', 'redeemed', 'expired', 'void'));
ALTER TABLE coupons DROP CONSTRAINT coupons_pkey;
ALTER TABLE coupons ADD PRIMARY KEY (merchant_id, code);
ALTER TABLE coupons DROP CONSTRAINT coupons_reward_id_key;
ALTER TABLE coupons ADD CONSTRAINT coupons_reward_key UNIQUE (merchant_id, reward_id);

-- Coupons issued before this rule, whose rewards are still held, are held too.
UPDATE coupons c SET status = 'held'
FROM rewards r
WHERE r.merchant_id = c.merchant_id AND r.id = c.reward_id
  AND c.status = 'issued' AND r.status IN ('pending', 'in_review');

-- Why money cannot be sent to an address: 'no_email', 'invalid_email', or NULL when it can.
-- The same rule as referral.lib.emails.payout_email_problem (tests check they agree): a
-- dot-atom local part starting with a letter, digit or underscore (nothing a spreadsheet
-- reads as a formula, so exports never escape an email), at most 64 characters; a domain of
-- LDH labels with an alphabetic or punycode top label; at most 254 characters in all.
CREATE FUNCTION payout_email_problem(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR value = '' THEN 'no_email'
        WHEN length(value) > 254 OR length(split_part(value, '@', 1)) > 64
             OR value !~ '^[A-Za-z0-9_][A-Za-z0-9!#$%&''*+/=?^_`{|}~-]*([.][A-Za-z0-9!#$%&''*+/=?^_`{|}~-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?[.])+([A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})$' THEN 'invalid_email'
    END
$$;
