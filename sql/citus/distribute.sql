-- Distribute referral's schema on Citus, once, after the migrations (`referral migrate`) have
-- run on the coordinator with the citus extension created. See README, "Running on Citus".
--
-- Every merchant table is hash-distributed by `merchant_id` and co-located with `programs`,
-- so a merchant's rows live on one shard group: each request's statements (all filter by
-- `merchant_id`, a test holds them to it) are routed to one worker, and foreign keys,
-- unique constraints and `FOR UPDATE` work there as on one PostgreSQL. The deployment-wide
-- lookups are reference tables, copied to every worker: the merchants, the API keys (found
-- by hash before the merchant is known), the codes (found by code on the redirect) and the
-- story slugs (found by slug on a story page). `tests/test_schema_citus.py` checks that this
-- file names every table of the schema.

-- The triggers that mark rollups (0009, 0012), notify code changes (0014) and queue webhook
-- deliveries (0011) run on the shards, writing co-located rows of the same merchant.
SET citus.enable_unsafe_triggers = on;

-- Reference tables may not point at distributed ones: a code's advocate is checked by the
-- advocates service, which writes both in one transaction, instead of by this key.
ALTER TABLE codes DROP CONSTRAINT codes_merchant_id_advocate_id_fkey;

SELECT create_reference_table('merchants');
SELECT create_reference_table('api_keys');
SELECT create_reference_table('codes');
SELECT create_reference_table('story_slugs');

-- In the order of their foreign keys: a table after those it points at.
SELECT create_distributed_table('programs', 'merchant_id', colocate_with => 'none');
SELECT create_distributed_table('advocates', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('orders', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('refunds', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('referrals', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('rewards', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('ledger_entries', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('reward_transitions', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('coupons', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('signups', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('events', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('idempotency_keys', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('payout_batches', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('payout_lines', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('payout_items', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('customer_signals', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('referral_reviews', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('stories', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('story_views', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('shares', 'merchant_id', colocate_with => 'programs');
-- Partitioned by month: its partitions, and those `ensure_click_partitions` adds, follow.
SELECT create_distributed_table('clicks', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('click_rollups', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('unique_clicks', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('share_page_views', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_deltas', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_dirty', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_restate', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_entity_facts', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_daily', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_daily_totals', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_monthly', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_story_daily', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_story_totals', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_story_monthly', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_advocate_daily', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_advocate_monthly', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_sketches', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_sketches_monthly', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('webhook_endpoints', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('webhook_secrets', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('webhook_deliveries', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('webhook_attempts', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('console_sign_in_links', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('console_sessions', 'merchant_id', colocate_with => 'programs');
-- Its append-only trigger (0018) refuses updates and deletes on the shards too.
SELECT create_distributed_table('audit_log', 'merchant_id', colocate_with => 'programs');
-- A customer's erasures (0020), and from when each merchant's raw clicks are kept.
SELECT create_distributed_table('customer_erasures', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('analytics_click_horizon', 'merchant_id', colocate_with => 'programs');
-- Coupon pools, their codes, and the friends' rewards waiting for a code (0022).
SELECT create_distributed_table('coupon_pools', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('coupon_pool_codes', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('coupon_waits', 'merchant_id', colocate_with => 'programs');
-- Where each customer's payouts go (0025).
SELECT create_distributed_table('payees', 'merchant_id', colocate_with => 'programs');
-- Imports, their staged lines and error reports, and the customers they brought (0026).
SELECT create_distributed_table('imports', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('import_lines', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('import_errors', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('imported_customers', 'merchant_id', colocate_with => 'programs');
-- Experiments, their advocates' exposures (0029), holdouts and their answers (0030).
SELECT create_distributed_table('experiments', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('experiment_exposures', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('program_holdouts', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('holdout_answers', 'merchant_id', colocate_with => 'programs');
-- Points: rules versions, accounts, lots, redemptions and their journal (0031).
SELECT create_distributed_table('points_rules', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('points_accounts', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('points_lots', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('points_redemptions', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('points_entries', 'merchant_id', colocate_with => 'programs');
-- Levels and their changes (0032).
SELECT create_distributed_table('customer_levels', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('level_changes', 'merchant_id', colocate_with => 'programs');
-- Preferences and the consents on record (0033).
SELECT create_distributed_table('customer_preferences', 'merchant_id', colocate_with => 'programs');
SELECT create_distributed_table('preference_consents', 'merchant_id', colocate_with => 'programs');
