-- Reward stories and the customer-facing pages: the program's page settings, the advocate's
-- contact preference, stories with moderation, and append-only view and share rows.

-- How the customer pages look and whether stories go live without a person's approval.
ALTER TABLE programs
    ADD COLUMN brand_colour text NOT NULL DEFAULT '#1a7f37'
        CHECK (brand_colour ~ '^#[0-9a-fA-F]{6}$'),
    ADD COLUMN locale text NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'sv')),
    ADD COLUMN stories_auto_publish boolean NOT NULL DEFAULT false;

-- How the advocate wants to hear about rewards; sent with every advocate-side reward event.
ALTER TABLE advocates
    ADD COLUMN contact_preference text NOT NULL DEFAULT 'email'
        CHECK (contact_preference IN ('email', 'sms', 'none'));

-- An advocate's public account of one reward (a referral reward or a milestone bonus).
-- The slug is random (never derived from the id), so story pages cannot be walked in order.
CREATE TABLE stories (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id   bigint NOT NULL,
    program_id    bigint NOT NULL,
    advocate_id   bigint NOT NULL,
    reward_id     bigint NOT NULL,
    slug          text NOT NULL UNIQUE CHECK (slug ~ '^[A-Za-z0-9_-]{8,32}$'),
    body          text NOT NULL CHECK (length(body) BETWEEN 1 AND 280),
    -- The advocate's first name as shown on the page; NULL shows no name.
    display_name  text CHECK (length(display_name) BETWEEN 1 AND 40),
    status        text NOT NULL CHECK (status IN ('pending', 'published', 'hidden')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    FOREIGN KEY (merchant_id, advocate_id) REFERENCES advocates (merchant_id, id),
    FOREIGN KEY (merchant_id, reward_id) REFERENCES rewards (merchant_id, id),
    UNIQUE (reward_id),
    UNIQUE (merchant_id, id)
);
CREATE INDEX stories_created ON stories (merchant_id, created_at, id);
CREATE INDEX stories_advocate ON stories (merchant_id, advocate_id, created_at);
CREATE INDEX stories_published ON stories (merchant_id, program_id, published_at)
    WHERE status = 'published';

-- One row per counted view of a story page (bots and HEAD excluded): an insert, never an
-- update of a counter row, so concurrent viewers never queue on a lock.
CREATE TABLE story_views (
    merchant_id  bigint NOT NULL,
    story_id     bigint NOT NULL,
    viewed_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX story_views_story ON story_views (merchant_id, story_id);

-- One row per share button followed, from a story page (story_id set) or the advocate's
-- share page (story_id NULL).
CREATE TABLE shares (
    merchant_id  bigint NOT NULL,
    program_id   bigint NOT NULL,
    advocate_id  bigint NOT NULL,
    story_id     bigint,
    channel      text NOT NULL,
    shared_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shares_story ON shares (merchant_id, story_id, channel) WHERE story_id IS NOT NULL;
CREATE INDEX shares_advocate ON shares (merchant_id, advocate_id, shared_at);

-- Per-story funnel figures without scanning every click or referral.
CREATE INDEX clicks_story ON clicks (merchant_id, story_id) WHERE story_id IS NOT NULL;
CREATE INDEX referrals_story ON referrals (merchant_id, (attribution ->> 'story_id'))
    WHERE attribution ? 'story_id';
CREATE INDEX orders_referral ON orders (merchant_id, referral_id) WHERE referral_id IS NOT NULL;
