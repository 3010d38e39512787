-- Experiments: a program's offers tested against each other (`referral/experiments/`).
--
-- An experiment has 2-4 variants (`variants`: key, name, weight and the settings each
-- overrides: friend and advocate reward, share page headline and text, story prompt). An
-- advocate's variant is a keyed hash of the advocate under `hash_key` (rules.assign): it
-- never changes, and the redirect computes it from its cached program without a lookup.
-- `status` is what the merchant chose: running (from `starts_at`, until `ends_at` when
-- given) or ended (by hand, with the winner when one was chosen). One running experiment
-- per program.
CREATE TABLE experiments (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    program_id   bigint NOT NULL,
    name         text NOT NULL,
    status       text NOT NULL,
    variants     jsonb NOT NULL,
    hash_key     bytea NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz,
    ended_at     timestamptz,
    winner       text,
    -- The program's rules version the winner's rewards became (NULL: none).
    rules_version integer,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);
ALTER TABLE experiments ADD CONSTRAINT experiments_status_check
    CHECK (status IN ('running', 'ended'));
ALTER TABLE experiments ADD CONSTRAINT experiments_schedule_check
    CHECK (ends_at IS NULL OR ends_at > starts_at);
CREATE UNIQUE INDEX experiments_one_running ON experiments (merchant_id, program_id)
    WHERE status = 'running';
CREATE INDEX experiments_program ON experiments (merchant_id, program_id, created_at);

-- An advocate's first exposure to an experiment (their share page, widget, share URL or
-- advocate record served), with the variant they were shown: the readout's denominator.
CREATE TABLE experiment_exposures (
    merchant_id   bigint NOT NULL,
    experiment_id bigint NOT NULL,
    advocate_id   bigint NOT NULL,
    variant       text NOT NULL,
    via           text NOT NULL,
    exposed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, experiment_id, advocate_id),
    FOREIGN KEY (merchant_id, experiment_id) REFERENCES experiments (merchant_id, id),
    FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id)
);
ALTER TABLE experiment_exposures ADD CONSTRAINT experiment_exposures_via_check
    CHECK (via IN ('advocate', 'share_url', 'share_page'));

-- Every instance's code cache holds its programs' running experiment (the redirect assigns
-- the variant from it): a started, changed or ended experiment is announced as its
-- program's change (migration 0014's `p:` payload), so every instance reads it again.
CREATE FUNCTION notify_experiment_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('referral_codes', 'p:' || string_agg(DISTINCT n.program_id::text, ','))
    FROM new_experiments n;
    RETURN NULL;
END $$;

CREATE TRIGGER experiments_notify_insert AFTER INSERT ON experiments
    REFERENCING NEW TABLE AS new_experiments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_experiment_changes();
CREATE TRIGGER experiments_notify_update AFTER UPDATE ON experiments
    REFERENCING NEW TABLE AS new_experiments
    FOR EACH STATEMENT EXECUTE FUNCTION notify_experiment_changes();
