-- Switching in from another service (referral/imports/): a file of advocates, customers or
-- past orders, uploaded (`POST /v1/imports`) or read by `referral import`, staged line by
-- line with COPY and worked through in batches by the imports worker (FOR UPDATE SKIP
-- LOCKED on the import's row, one transaction per batch, so any number of workers share
-- the queue and none processes a line twice). Every write of a batch is set-based and
-- idempotent (ON CONFLICT DO NOTHING): the same file imported again creates nothing.
CREATE TABLE imports (
    merchant_id  bigint NOT NULL REFERENCES merchants (id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    kind         text NOT NULL CHECK (kind IN ('advocates', 'customers', 'orders')),
    format       text NOT NULL CHECK (format IN ('csv', 'jsonl')),
    program_id   bigint,  -- advocates: the program they refer for
    status       text NOT NULL DEFAULT 'receiving'
                 CHECK (status IN ('receiving', 'queued', 'running', 'succeeded', 'failed')),
    columns      text[],  -- a CSV file's header, as staged
    lines        bigint NOT NULL DEFAULT 0,  -- lines staged (blank lines not counted)
    bytes        bigint NOT NULL DEFAULT 0,
    next_line    bigint NOT NULL DEFAULT 1,  -- where the next batch starts
    lines_read   bigint NOT NULL DEFAULT 0,
    created      bigint NOT NULL DEFAULT 0,
    unchanged    bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    failure      text,  -- why the whole file failed (a bad header), never a line's data
    created_at   timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    PRIMARY KEY (merchant_id, id),
    FOREIGN KEY (merchant_id, program_id) REFERENCES programs (merchant_id, id)
);
CREATE INDEX imports_created ON imports (merchant_id, created_at, id);
-- The worker's queue, across merchants (small: only unfinished imports).
CREATE INDEX imports_waiting ON imports (created_at) WHERE status IN ('queued', 'running');

-- The file's lines until they are processed (deleted when the import finishes). No foreign
-- key: a million-line COPY checks none (the import's row is written first, in the same
-- transaction).
CREATE TABLE import_lines (
    merchant_id  bigint NOT NULL,
    import_id    bigint NOT NULL,
    line_no      bigint NOT NULL,
    raw          text NOT NULL,
    PRIMARY KEY (merchant_id, import_id, line_no)
);

-- The per-line error report: the line's number, a stable code and a message that names the
-- field, never its value. At most 10,000 are kept per import (`failed` counts them all).
CREATE TABLE import_errors (
    merchant_id  bigint NOT NULL,
    import_id    bigint NOT NULL,
    line_no      bigint NOT NULL,
    code         text NOT NULL,
    message      text NOT NULL,
    PRIMARY KEY (merchant_id, import_id, line_no),
    FOREIGN KEY (merchant_id, import_id) REFERENCES imports (merchant_id, id) ON DELETE CASCADE
);

-- Customers the shop had before it switched: the "new customers only" rule counts them as
-- having bought before (referral/referrals/repo.py, BOUGHT_BEFORE and HAS_ORDERS). Known
-- by customer id or by normalised email, each once per merchant. Erased with the person
-- (referral/customers/).
CREATE TABLE imported_customers (
    merchant_id       bigint NOT NULL REFERENCES merchants (id),
    id                bigint GENERATED ALWAYS AS IDENTITY,
    customer_id       text,
    email_normalised  text,
    import_id         bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (customer_id IS NOT NULL OR email_normalised IS NOT NULL),
    PRIMARY KEY (merchant_id, id),
    UNIQUE (merchant_id, customer_id),
    UNIQUE (merchant_id, email_normalised)
);  -- import_id names the import that brought it (no key checked: a million rows a file)
