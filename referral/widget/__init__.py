"""The embeddable widget: one script a shop includes from its own deployment, defining
`<referral-share>` (the advocate's link, copy, QR, share buttons, rewards) and
`<referral-offer>` (the friend's offer on the landing page, the click token kept
first-party), and the public JSON they read."""
