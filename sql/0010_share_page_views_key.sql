-- share_page_views follows the schema rules: a key with merchant_id first (Citus-ready).
ALTER TABLE share_page_views ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE share_page_views ADD CONSTRAINT share_page_views_pkey PRIMARY KEY (merchant_id, id);
