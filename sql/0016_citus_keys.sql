-- Every table that belongs to a merchant distributes by `merchant_id` (DECISIONS.md, "Schema
-- rules"): its primary key, each unique constraint and each foreign key between merchant
-- tables contain `merchant_id`, so Citus can place a merchant's rows on one shard and check
-- every constraint there. Before this migration most primary keys were `(id)` beside a
-- `UNIQUE (merchant_id, id)`: the unique constraint becomes the primary key (the same
-- number of indexes, none new on the write path), and the per-row uniques gain
-- `merchant_id` in front. Story pages are found by slug alone, across merchants: the
-- slugs move to a deployment-wide lookup (`story_slugs`, like `codes`), a reference table.
-- `tests/test_schema_citus.py` reads the catalog and fails on any table that breaks the rule.

-- Foreign keys onto the (merchant_id, id) uniques that become primary keys, put back below.
ALTER TABLE codes DROP CONSTRAINT codes_merchant_id_advocate_id_fkey;
ALTER TABLE referrals DROP CONSTRAINT referrals_merchant_id_advocate_id_fkey;
ALTER TABLE stories DROP CONSTRAINT stories_merchant_id_advocate_id_fkey;
ALTER TABLE refunds DROP CONSTRAINT refunds_merchant_id_order_pk_fkey;
ALTER TABLE payout_lines DROP CONSTRAINT payout_lines_merchant_id_batch_id_fkey;
ALTER TABLE payout_items DROP CONSTRAINT payout_items_merchant_id_line_id_fkey;
ALTER TABLE advocates DROP CONSTRAINT advocates_merchant_id_program_id_fkey;
ALTER TABLE rewards DROP CONSTRAINT rewards_merchant_id_referral_id_fkey;
ALTER TABLE referral_reviews DROP CONSTRAINT referral_reviews_merchant_id_referral_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_merchant_id_reward_id_fkey;
ALTER TABLE reward_transitions DROP CONSTRAINT reward_transitions_merchant_id_reward_id_fkey;
ALTER TABLE coupons DROP CONSTRAINT coupons_merchant_id_reward_id_fkey;
ALTER TABLE stories DROP CONSTRAINT stories_merchant_id_reward_id_fkey;

ALTER TABLE programs DROP CONSTRAINT programs_pkey, DROP CONSTRAINT programs_merchant_id_id_key,
    ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE advocates DROP CONSTRAINT advocates_pkey,
    DROP CONSTRAINT advocates_merchant_id_id_key, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE orders DROP CONSTRAINT orders_pkey, DROP CONSTRAINT orders_merchant_id_id_key,
    ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE referrals DROP CONSTRAINT referrals_pkey,
    DROP CONSTRAINT referrals_merchant_id_id_key, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE rewards DROP CONSTRAINT rewards_pkey, DROP CONSTRAINT rewards_merchant_id_id_key,
    ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE payout_batches DROP CONSTRAINT payout_batches_pkey,
    DROP CONSTRAINT payout_batches_merchant_id_id_key, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE payout_lines DROP CONSTRAINT payout_lines_pkey,
    DROP CONSTRAINT payout_lines_merchant_id_id_key, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE stories DROP CONSTRAINT stories_pkey, DROP CONSTRAINT stories_merchant_id_id_key,
    ADD PRIMARY KEY (merchant_id, id);

-- Tables nothing points at: their `(id)` key gains `merchant_id`. The outbox's own
-- (merchant_id, id) index is the primary key now.
ALTER TABLE refunds DROP CONSTRAINT refunds_pkey, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_pkey, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE reward_transitions DROP CONSTRAINT reward_transitions_pkey,
    ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE signups DROP CONSTRAINT signups_pkey, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE events DROP CONSTRAINT events_pkey, ADD PRIMARY KEY (merchant_id, id);
DROP INDEX events_merchant;
ALTER TABLE payout_items DROP CONSTRAINT payout_items_pkey, ADD PRIMARY KEY (merchant_id, id);
ALTER TABLE referral_reviews DROP CONSTRAINT referral_reviews_pkey,
    ADD PRIMARY KEY (merchant_id, id);

-- On Citus `codes` is a reference table, which may not point at a distributed one:
-- `sql/citus/distribute.sql` drops this key there; on one PostgreSQL it stays.
ALTER TABLE codes ADD FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id);
ALTER TABLE referrals
    ADD FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id);
ALTER TABLE stories ADD FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id);
ALTER TABLE refunds ADD FOREIGN KEY (merchant_id, order_pk) REFERENCES orders (merchant_id, id);
ALTER TABLE payout_lines
    ADD FOREIGN KEY (merchant_id, batch_id) REFERENCES payout_batches (merchant_id, id);
ALTER TABLE payout_items
    ADD FOREIGN KEY (merchant_id, line_id) REFERENCES payout_lines (merchant_id, id);
ALTER TABLE advocates ADD FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id);
ALTER TABLE rewards ADD FOREIGN KEY (merchant_id, referral_id) REFERENCES referrals (merchant_id, id);
ALTER TABLE referral_reviews
    ADD FOREIGN KEY (merchant_id, referral_id) REFERENCES referrals (merchant_id, id);
ALTER TABLE ledger_entries
    ADD FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id);
ALTER TABLE reward_transitions
    ADD FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id);
ALTER TABLE coupons ADD FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id);
ALTER TABLE stories ADD FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id);

-- One row per thing, within its merchant.
ALTER TABLE advocates DROP CONSTRAINT advocates_program_id_customer_id_key,
    ADD UNIQUE (merchant_id, program_id, customer_id);
ALTER TABLE payout_lines DROP CONSTRAINT payout_lines_batch_id_payee_key_key,
    ADD UNIQUE (merchant_id, batch_id, payee_key);
ALTER TABLE stories DROP CONSTRAINT stories_reward_id_key, ADD UNIQUE (merchant_id, reward_id);

DROP INDEX referrals_one_live_per_friend;
CREATE UNIQUE INDEX referrals_one_live_per_friend ON referrals (merchant_id, program_id, friend_key)
    WHERE status <> 'rejected';
DROP INDEX rewards_one_per_side;
CREATE UNIQUE INDEX rewards_one_per_side ON rewards (merchant_id, referral_id, side)
    WHERE milestone IS NULL;
DROP INDEX rewards_one_per_milestone;
CREATE UNIQUE INDEX rewards_one_per_milestone ON rewards (merchant_id, advocate_id, milestone)
    WHERE milestone IS NOT NULL;
DROP INDEX payout_items_one_batch_per_reward;
CREATE UNIQUE INDEX payout_items_one_batch_per_reward ON payout_items (merchant_id, reward_id)
    WHERE active AND ledger_entry_id IS NULL;
DROP INDEX payout_items_one_batch_per_receivable;
CREATE UNIQUE INDEX payout_items_one_batch_per_receivable
    ON payout_items (merchant_id, ledger_entry_id) WHERE active AND ledger_entry_id IS NOT NULL;

-- A story page is opened by its slug alone: which merchant's story it is, deployment-wide.
-- Written with the story, in its transaction (`stories/repo.py`); never changed.
CREATE TABLE story_slugs (
    slug         text PRIMARY KEY,
    merchant_id  bigint NOT NULL,
    story_id     bigint NOT NULL
);
INSERT INTO story_slugs (slug, merchant_id, story_id) SELECT slug, merchant_id, id FROM stories;
ALTER TABLE stories DROP CONSTRAINT stories_slug_key, ADD UNIQUE (merchant_id, slug);
