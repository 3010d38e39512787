-- Webhooks: the outbox (`events`) delivered to the shop's endpoints, Standard Webhooks style.
--
-- Fan-out: a statement trigger on `events` creates one delivery per matching endpoint in the
-- transaction that writes the event. No event can be committed without its deliveries (and
-- none delivered that rolled back), whatever the process does next; there is no cursor over
-- `events.id` to get wrong (identity values commit out of order, so a cursor that has passed
-- id N can still see N committed later). Like the analytics marks (0009), no write path can
-- forget it. An endpoint that is disabled still gets its deliveries, as `failed` without an
-- attempt, so `recover` after re-enabling it sends what it missed.
--
-- Delivery: workers take due deliveries per endpoint with FOR UPDATE SKIP LOCKED and lease
-- them (`next_attempt_at` moves to the lease's end, `claim` counts the takes) before sending
-- outside any transaction; a worker killed mid-send leaves the lease to expire and the
-- delivery is sent again under the same webhook-id (at-least-once). Every attempt is a row.

CREATE TABLE webhook_endpoints (
    merchant_id      bigint NOT NULL REFERENCES merchants (id),
    id               bigint GENERATED ALWAYS AS IDENTITY,
    url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description      text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- Exact types, `category.*` or `*` (every type).
    event_types      text[] NOT NULL DEFAULT '{*}',
    enabled          boolean NOT NULL DEFAULT true,
    disabled_reason  text CHECK (disabled_reason IN ('manual', 'gone', 'failing')),
    disabled_at      timestamptz,
    -- The first failed attempt since the last success: 5 days of failure disables.
    failing_since    timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id)
);

-- Signing secrets: the current one (expires_at NULL) and, for 24 hours after a rotation, the
-- previous one; every unexpired secret signs, so receivers can switch at their own pace.
CREATE TABLE webhook_secrets (
    merchant_id  bigint NOT NULL,
    endpoint_id  bigint NOT NULL,
    id           bigint GENERATED ALWAYS AS IDENTITY,
    secret       bytea NOT NULL CHECK (length(secret) BETWEEN 24 AND 64),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    PRIMARY KEY (merchant_id, endpoint_id, id),
    FOREIGN KEY (merchant_id, endpoint_id)
        REFERENCES webhook_endpoints (merchant_id, id) ON DELETE CASCADE
);

-- One per (endpoint, event): its place in the retry schedule and whether it is done.
-- `event_id` names a row of `events` (no foreign key: that table's key is still `(id)`, see
-- FINDINGS; the delivery is created by the event's own insert).
CREATE TABLE webhook_deliveries (
    merchant_id      bigint NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id      bigint NOT NULL,
    event_id         bigint NOT NULL,
    status           text NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- Attempts in the current round (a resend or recover starts a new round).
    attempts         integer NOT NULL DEFAULT 0,
    -- Pending: when the next attempt is due (or, while one is in flight, its lease's end).
    next_attempt_at  timestamptz,
    claim            bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, endpoint_id, event_id),
    FOREIGN KEY (merchant_id, endpoint_id)
        REFERENCES webhook_endpoints (merchant_id, id) ON DELETE CASCADE
);
-- What the workers read: per endpoint, its due deliveries in due order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (merchant_id, endpoint_id, next_attempt_at)
    WHERE status = 'pending';
-- Recover: an endpoint's failed deliveries in a time window.
CREATE INDEX webhook_deliveries_failed ON webhook_deliveries (merchant_id, endpoint_id, created_at)
    WHERE status = 'failed';

CREATE TABLE webhook_attempts (
    merchant_id   bigint NOT NULL,
    id            bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id   bigint NOT NULL,
    delivery_id   bigint,  -- NULL for a `webhook.test` sent by POST .../test
    event_id      bigint,
    message_id    text NOT NULL,  -- the webhook-id header
    event_type    text NOT NULL,
    attempted_at  timestamptz NOT NULL,
    succeeded     boolean NOT NULL,
    status_code   integer,
    error         text,  -- timeout | connection | address_refused | invalid_url, else NULL
    duration_ms   integer NOT NULL,
    response      text NOT NULL DEFAULT '',  -- the first bytes of the answer, bounded
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, endpoint_id)
        REFERENCES webhook_endpoints (merchant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (merchant_id, endpoint_id, id);
CREATE INDEX webhook_attempts_event ON webhook_attempts (merchant_id, event_id, id);

-- The one matching rule, also in `webhooks/rules.py` (a test holds the two to each other).
CREATE FUNCTION webhook_type_matches(patterns text[], event_type text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
        SELECT 1 FROM unnest(patterns) AS p
        WHERE p = '*' OR p = event_type
           OR (right(p, 2) = '.*' AND starts_with(event_type, left(p, -1)))
    )
$$;

CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (merchant_id, endpoint_id, event_id, status, next_attempt_at)
    SELECT e.merchant_id, w.id, e.id,
           CASE WHEN w.enabled THEN 'pending' ELSE 'failed' END,
           CASE WHEN w.enabled THEN now() END
    FROM new_events e
    JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id
    WHERE e.type <> 'webhook.test' AND webhook_type_matches(w.event_types, e.type);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_webhooks AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();
