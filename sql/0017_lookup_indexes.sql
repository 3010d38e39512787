-- Lookups the console makes on every view, measured at the analytics benchmark's size
-- (50,000 advocates, 258,000 rewards), that scanned whole tables:
-- a referral's rewards (the review queue, the explain view: 35-55 ms each, a parallel scan;
-- the unique index on referral and side is partial, so a lookup by referral cannot use it),
CREATE INDEX rewards_referral ON rewards (merchant_id, referral_id) WHERE referral_id IS NOT NULL;
-- the advocates of every program, oldest first (the console's list: a scan and a sort of
-- every advocate for a page of 25),
CREATE INDEX advocates_created ON advocates (merchant_id, created_at, id);
-- and an advocate found by email in any case (the console's search).
CREATE INDEX advocates_email ON advocates (merchant_id, lower(email)) WHERE email IS NOT NULL;
