-- The books: balances as of any past moment and a ledger export over a time range
-- (referral/rewards/books.py).

-- Entries in a range, in the order they were booked: the export's scan (and the balances'
-- `created_at <= as_of`) without reading the merchant's whole ledger.
CREATE INDEX ledger_entries_created ON ledger_entries (merchant_id, created_at, id);

-- When a line failed. A receivable netted off in a line is recovered while that line stands
-- paid: from its batch's payment until the line fails (if it ever does), so the balances of a
-- moment in between need the failure's time. A line that failed before its batch was paid
-- has failed_at before the batch's paid_at: it never recovered anything.
ALTER TABLE payout_lines ADD COLUMN failed_at timestamptz;

-- Lines that failed before this column existed. One that had been paid (its rewards were
-- paid in the batch's payment, at the batch's paid_at) failed when the first `payout_failed`
-- move of one of its rewards came after that. One that failed before payment moved nothing:
-- its time stays unknown (NULL: the line recovered nothing, which is true).
UPDATE payout_lines l SET failed_at = (
    SELECT min(t.created_at)
    FROM payout_items i
    JOIN reward_transitions t ON t.merchant_id = i.merchant_id AND t.reward_id = i.reward_id
    WHERE i.merchant_id = l.merchant_id AND i.line_id = l.id AND i.ledger_entry_id IS NULL
      AND t.reason = 'payout_failed' AND t.created_at > b.paid_at
      AND EXISTS (SELECT 1 FROM reward_transitions p
                  WHERE p.merchant_id = i.merchant_id AND p.reward_id = i.reward_id
                    AND p.reason = 'payout_paid' AND p.created_at = b.paid_at)
)
FROM payout_batches b
WHERE l.status = 'failed' AND b.merchant_id = l.merchant_id AND b.id = l.batch_id
  AND b.paid_at IS NOT NULL;

-- The batch a reward's payment (or a payment's failure) was booked by, for the export: every
-- item of the reward, active or not (the unique index holds the active ones only).
CREATE INDEX payout_items_reward ON payout_items (merchant_id, reward_id);
