-- The preference centre (issue 19): how a merchant's customer wants to be contacted
-- (channels), about what (topics), and their birthday. One row per customer; every consent
-- given or withdrawn is kept in `preference_consents` (append-only) for the record.
CREATE TABLE customer_preferences (
    merchant_id     bigint NOT NULL REFERENCES merchants (id),
    customer_id     text NOT NULL,
    channels        text[] NOT NULL DEFAULT '{}',
    topics          text[] NOT NULL DEFAULT '{}',
    birthday        date,
    birthday_set_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      text NOT NULL CHECK (updated_by IN ('key', 'advocate')),
    PRIMARY KEY (merchant_id, customer_id)
);

CREATE TABLE preference_consents (
    merchant_id bigint NOT NULL,
    id          bigint GENERATED ALWAYS AS IDENTITY,
    customer_id text NOT NULL,
    consent     text NOT NULL,  -- channel:email, channel:sms, topic:rewards, topic:offers
    given       boolean NOT NULL,
    by          text NOT NULL CHECK (by IN ('key', 'advocate')),
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, customer_id) REFERENCES customer_preferences (merchant_id, customer_id)
        ON UPDATE CASCADE
);
CREATE INDEX preference_consents_customer ON preference_consents (merchant_id, customer_id, id);

-- Append-only, but for an erasure: the customer id becomes its tombstone (the record of
-- consents is kept, naming no one).
CREATE FUNCTION preference_consents_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'customer_id') = (to_jsonb(OLD) - 'customer_id') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'preference_consents is append-only';
END
$$;
CREATE TRIGGER preference_consents_append_only BEFORE UPDATE OR DELETE ON preference_consents
    FOR EACH ROW EXECUTE FUNCTION preference_consents_append_only();
-- The birthday job's look-up: today's month and day, across merchants.
CREATE INDEX customer_preferences_birthday
    ON customer_preferences ((extract(month FROM birthday)), (extract(day FROM birthday)))
    WHERE birthday IS NOT NULL;
