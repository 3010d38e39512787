-- When an advocate's person was erased (referral/customers/): their share page, opened from
-- a link sent before, answers as for an unknown advocate instead of showing a dead link.
ALTER TABLE advocates ADD COLUMN erased_at timestamptz;
