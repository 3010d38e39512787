"""Every column that could hold a customer's personal data is accounted for: what an erasure
does with it, or why it holds none. A new text, JSON or binary column named like personal
data (an email, a phone, an address, a note…) fails here until someone decides, so erasure
cannot silently fall behind the schema. The erasure tests check the decisions hold (nothing
of the person is left in any row)."""

from __future__ import annotations

import re

# (table, column) -> what an erasure does with it.
ERASED = {
    ("advocates", "customer_id"): "the erasure's tombstone",
    ("advocates", "email"): "cleared",
    ("advocates", "name"): "cleared",
    ("codes", "code"): "a vanity code is replaced by a tombstone; generated codes are random",
    ("codes", "lookup_key"): "as the code",
    ("clicks", "code"): "a vanity code is replaced by its tombstone",
    ("clicks", "ip_hash"): "cleared on their clicks as a friend",
    ("clicks", "ip_net_hash"): "cleared on their clicks as a friend",
    ("clicks", "user_agent"): "cleared on their clicks as a friend",
    ("clicks", "visitor_id"): "the visitor cookie replaced by a tombstone per cookie",
    ("unique_clicks", "visitor_id"): "their rows deleted (the rollups hold the counts)",
    ("customer_signals", "customer_id"): "their signals deleted",
    ("customer_signals", "value"): "their signals deleted",
    ("events", "data"): "every string naming them replaced (jsonb_scrub)",
    ("idempotency_keys", "response"): "a stored answer naming them deleted",
    ("ledger_entries", "payee_key"): "the tombstone (amounts stay)",
    ("rewards", "payee_key"): "the tombstone (amounts and states stay)",
    ("orders", "customer_id"): "the tombstone",
    ("orders", "email_normalised"): "a tombstone address",
    ("orders", "fingerprint"): "made again from the tombstones",
    ("orders", "ip_hash"): "cleared",
    ("orders", "metadata"): "emptied (the shop's free text)",
    ("payout_lines", "payee_email"): "cleared (amount, status and reference stay)",
    ("payout_lines", "payee_iban"): "cleared, as the email",
    ("payout_lines", "payee_account_holder"): "cleared, as the email",
    ("payout_lines", "payee_bic"): "cleared, as the email (a bank's code, kept with the IBAN)",
    ("payees", "customer_id"): "the payee's row deleted",
    ("points_accounts", "customer_id"): "the tombstone (its lots and redemptions follow)",
    ("points_lots", "customer_id"): "the tombstone, with its account",
    ("points_redemptions", "customer_id"): "the tombstone, with its account",
    ("points_entries", "customer_id"): "the tombstone (the journal's amounts stay)",
    ("customer_levels", "customer_id"): "the tombstone (its changes follow)",
    ("level_changes", "customer_id"): "the tombstone, with its level",
    ("customer_preferences", "customer_id"): "the tombstone; birthday, channels, topics cleared",
    ("preference_consents", "customer_id"): "the tombstone (the record of consents stays)",
    ("payees", "email"): "the payee's row deleted",
    ("payees", "iban"): "the payee's row deleted",
    ("payees", "account_holder"): "the payee's row deleted",
    ("payees", "bic"): "the payee's row deleted",
    ("payout_lines", "payee_key"): "the tombstone",
    ("referral_reviews", "note"): "a note naming them replaced",
    ("reward_transitions", "note"): "a note naming them replaced",
    ("referrals", "attribution"): "visitor cookie and vanity code replaced",
    ("referrals", "decision"): "every string naming them replaced (jsonb_scrub)",
    ("referrals", "friend_customer_id"): "the tombstone",
    ("referrals", "friend_email_normalised"): "a tombstone address",
    ("referrals", "friend_key"): "the tombstone",
    ("signups", "customer_id"): "the tombstone",
    ("signups", "email_normalised"): "a tombstone address",
    ("signups", "ip_hash"): "cleared",
    ("signups", "result"): "its customer id the tombstone",
    ("stories", "body"): "replaced by '(erased)', the story hidden",
    ("stories", "display_name"): "cleared",
    ("webhook_attempts", "response"): "a receiver's answer to a scrubbed event emptied",
    ("analytics_entity_facts", "key"): "a customer's key renamed to the tombstone's",
    ("analytics_dirty", "key"): "a customer's key renamed to the tombstone's",
    ("imported_customers", "customer_id"): "their rows deleted",
    ("imported_customers", "email_normalised"): "their rows deleted",
}
NOT_PERSONAL = {
    ("analytics_sketches", "sketch"): "distinct-count sketches of hashes: no member is listed",
    ("analytics_sketches_monthly", "sketch"): "as the daily sketches",
    ("api_keys", "key_hash"): "the merchant's keys",
    ("idempotency_keys", "key"): "chosen by the shop's system per request (its answer is erased)",
    ("api_keys", "key_hint"): "the merchant's keys",
    ("audit_log", "actor"): "a staff member or key, or an advocate's public id (adv_…, which "
    "an erasure keeps on the advocate row too), never a customer's data",
    ("audit_log", "actor_type"): "key, console, cli or advocate",
    ("audit_log", "before"): "public shapes of staff changes, never a customer's data",
    ("audit_log", "after"): "as before",
    ("console_sessions", "actor"): "a staff member",
    ("coupons", "code"): "random, or a code from the shop's own pool",
    ("coupon_pool_codes", "code"): "codes the shop made in its platform, for anyone",
    ("coupon_pools", "name"): "the shop's label",
    ("experiments", "name"): "the shop's label for an experiment",
    ("experiments", "variants"): "the shop's variants: labels, weights and reward settings",
    ("experiments", "hash_key"): "random key of the variant hash, names nobody",
    ("program_holdouts", "hash_key"): "random key of the holdout hash, names nobody",
    ("customer_erasures", "subject_hash"): "a keyed hash: it proves an erasure, names nobody",
    ("customer_erasures", "erased"): "counts",
    ("clicks", "referer_host"): "the site a link was followed from, not the person",
    ("merchants", "name"): "the shop",
    ("programs", "name"): "the shop's campaign",
    ("payees", "method"): "email or bank_transfer",
    ("payout_lines", "payee_method"): "email or bank_transfer: names nobody",
    ("payees", "updated_by"): "key, console, cli or advocate",
    ("orders", "result"): "the order's answer: public ids, amounts, random coupon codes, notes",
    ("referral_reviews", "actor"): "a staff member",
    ("reward_transitions", "actor"): "a staff member or the system",
    ("webhook_endpoints", "description"): "the shop's own label",
    ("import_errors", "code"): "a stable error code (`invalid_email`), never a line's value",
}
# Names a personal-data column would have.
LOOKS_PERSONAL = re.compile(
    r"email|name|customer|ip|agent|visitor|address|body|metadata|payee|note|response|"
    r"display|phone|fingerprint|attribution|decision|result|actor|member|sketch|^code$|"
    r"lookup_key|^key$|^value$|before|after|^erased$|subject_hash|birth|street|city|postal"
)


async def test_every_personal_looking_column_has_a_decision(db):
    rows = await db.fetch(
        """SELECT c.relname AS tbl, a.attname AS col
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND a.attnum > 0 AND NOT a.attisdropped
             AND format_type(a.atttypid, NULL) IN
                 ('text', 'text[]', 'jsonb', 'json', 'bytea', 'character varying', 'character')"""
    )
    columns = {(r["tbl"], r["col"]) for r in rows}
    looking = {c for c in columns if LOOKS_PERSONAL.search(c[1])}
    undecided = looking - ERASED.keys() - NOT_PERSONAL.keys()
    assert not undecided, (
        "say what an erasure does with these (referral/customers/, and ERASED here) or why "
        f"they hold no personal data (NOT_PERSONAL): {sorted(undecided)}"
    )
    gone = (ERASED.keys() | NOT_PERSONAL.keys()) - columns
    assert not gone, f"these columns no longer exist: {sorted(gone)}"
    assert not ERASED.keys() & NOT_PERSONAL.keys()
