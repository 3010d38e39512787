-- The merchant console's sign-in links and sessions.
--
-- A sign-in link is printed once (`referral console-link`) and holds a random token; only its
-- SHA-256 is kept, so a copy of the database signs nobody in. It works once, within 15
-- minutes: redeeming it is one UPDATE that sets `used_at` where it is still NULL, so two
-- tabs racing on the same link start one session.
--
-- A session belongs to one merchant, and so to one mode (a live merchant and its test twin
-- are two merchants): switching mode ends this session and starts one on the twin. The
-- cookie carries the merchant's public id, a random session secret and an HMAC over both (a
-- cookie signed by another deployment's key is refused before any query); the table keeps
-- the secret's SHA-256, the person's name or email (the actor of every console action) and
-- when the session ends. Both tables are keyed by merchant first (schema rules, DECISIONS).

CREATE TABLE console_sign_in_links (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    token_hash   bytea NOT NULL CHECK (length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    PRIMARY KEY (merchant_id, token_hash)
);

CREATE TABLE console_sessions (
    merchant_id    bigint NOT NULL REFERENCES merchants (id),
    secret_hash    bytea NOT NULL CHECK (length(secret_hash) = 32),
    actor          text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    signed_out_at  timestamptz,
    PRIMARY KEY (merchant_id, secret_hash)
);
