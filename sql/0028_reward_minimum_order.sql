-- The program's minimum order value a reward was granted under (in the order's currency),
-- kept on the reward: a refund judges "below the minimum" by the terms the reward was
-- earned on, not by the program's terms of the day. NULL: no minimum applied.
ALTER TABLE rewards ADD COLUMN minimum_order bigint;

-- Rewards granted before this migration: the program's minimum as it stands now, which is
-- what a refund of theirs used until today.
UPDATE rewards r
SET minimum_order = (p.rewards -> 'minimum_order' ->> btrim(r.currency))::bigint
FROM programs p
WHERE p.merchant_id = r.merchant_id AND p.id = r.program_id
  AND r.order_pk IS NOT NULL AND r.currency IS NOT NULL
  AND p.rewards -> 'minimum_order' ? btrim(r.currency);
