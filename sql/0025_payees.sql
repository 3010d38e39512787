-- Payees: where a merchant's customer wants their payouts sent, set by the shop's backend
-- (PUT /v1/payees/{customer_id}) or by the advocate on their share page. One row per
-- customer of the merchant (the payee key of rewards and payout lines). `id`: what the audit
-- log names the payee by, so it never keeps the customer id an erasure removes.
CREATE TABLE payees (
    merchant_id    bigint NOT NULL REFERENCES merchants (id),
    customer_id    text NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    method         text NOT NULL CHECK (method IN ('email', 'bank_transfer')),
    email          text,
    iban           text,  -- validated (schwifty), compact and upper-case: SE3550000000054910000003
    account_holder text,
    bic            text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     text NOT NULL CHECK (updated_by IN ('key', 'console', 'cli', 'advocate')),
    PRIMARY KEY (merchant_id, customer_id),
    CHECK (method <> 'email' OR email IS NOT NULL),
    CHECK (method <> 'bank_transfer' OR (iban IS NOT NULL AND account_holder IS NOT NULL))
);

-- A payout line freezes where its money goes when its batch is made, as it froze the email:
-- every export of a batch is byte-identical, whatever the payee changes later.
ALTER TABLE payout_lines
    ADD COLUMN payee_method text NOT NULL DEFAULT 'email'
        CHECK (payee_method IN ('email', 'bank_transfer')),
    ADD COLUMN payee_iban text,
    ADD COLUMN payee_account_holder text,
    ADD COLUMN payee_bic text;

-- Why a bank transfer cannot be made to an IBAN: 'no_iban', 'invalid_iban', or NULL when it
-- can. The shape and the ISO 13616 check digits (mod 97); the service checks more on input
-- (schwifty: each country's length and layout), this holds the exports to it.
CREATE FUNCTION payout_iban_problem(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR value = '' THEN 'no_iban'
        WHEN value !~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$' THEN 'invalid_iban'
        WHEN (SELECT string_agg(CASE WHEN c BETWEEN 'A' AND 'Z' THEN (ascii(c) - 55)::text
                                     ELSE c END, '' ORDER BY n)
              FROM unnest(string_to_array(substr(value, 5) || left(value, 4), NULL))
                   WITH ORDINALITY AS t (c, n))::numeric % 97 <> 1 THEN 'invalid_iban'
    END
$$;

-- An advocate changing their own payout details on their share page is audited as who they
-- are (`advocate`, named by their advocate id), not as a key, a console user or the CLI.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_actor_type_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_actor_type_check
    CHECK (actor_type IN ('key', 'console', 'cli', 'advocate'));
