-- A program's reward rules are versioned: each change of `rewards` bumps the version, and
-- each reward records the version it was granted under (its `rule` keeps the rule itself),
-- so changing the rewards never changes what was granted, and the explain view says which
-- rules a reward came from. Rewards granted before versions were kept have none (NULL).
ALTER TABLE programs ADD COLUMN rules_version integer NOT NULL DEFAULT 1;
ALTER TABLE rewards ADD COLUMN rules_version integer;
