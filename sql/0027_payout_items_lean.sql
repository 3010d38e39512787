-- A batch writes one item per reward it pays: a million items for a million rewards, in one
-- statement. Each index on `payout_items` and each foreign-key check is paid a million times
-- there, so the table keeps only what its readers need (bench/README.md, "payouts"):
--   * the primary key leads with the line: a line's items, and a batch's through its lines,
--     in the order the rewards CSV lists them (no separate line and batch indexes);
--   * one unique index per reward serves both "one active batch per reward" (every active
--     reward item maps to 0, the others to their own id, so only the active one can clash)
--     and the ledger export's lookup of a reward's items, active or not;
--   * no foreign key to `payout_lines`, nor from the lines to `payout_batches`: items are
--     only ever written by the statement that writes their lines (`payouts/repo.py`,
--     FILL_BATCH), with the batch its transaction has just inserted, and never move.
ALTER TABLE payout_items DROP CONSTRAINT payout_items_merchant_id_line_id_fkey;
ALTER TABLE payout_lines DROP CONSTRAINT payout_lines_merchant_id_batch_id_fkey;
ALTER TABLE payout_items DROP CONSTRAINT payout_items_pkey,
    ADD PRIMARY KEY (merchant_id, line_id, id);
DROP INDEX payout_items_line;
DROP INDEX payout_items_batch;
DROP INDEX payout_items_reward;
DROP INDEX payout_items_one_batch_per_reward;
CREATE UNIQUE INDEX payout_items_one_batch_per_reward ON payout_items
    (merchant_id, reward_id, (CASE WHEN active AND ledger_entry_id IS NULL THEN 0 ELSE id END));
-- Receivables netted off, active or not (the books' netted figures): few rows, so cheap.
CREATE INDEX payout_items_receivables ON payout_items (merchant_id, ledger_entry_id)
    WHERE ledger_entry_id IS NOT NULL;
