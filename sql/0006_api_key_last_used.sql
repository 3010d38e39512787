-- API keys: when each was last used, and keyed by merchant first (Citus rules).
--
-- `last_used_at` is for `GET /v1/keys` and `referral keys list`: an operator deciding which
-- key to revoke wants to know which ones are still in use. It is written at most once a
-- minute per key, when an instance authenticates the key (its key cache misses).
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;

-- Every query by key id names the merchant; the primary key leads with it. The lookup by
-- `key_hash` is the one deployment-wide question (a key names its merchant), so that unique
-- index stays as it is.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_pkey;
ALTER TABLE api_keys ADD PRIMARY KEY (merchant_id, id);
DROP INDEX api_keys_merchant;
