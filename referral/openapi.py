"""Print the OpenAPI document the app serves, as committed in `openapi/openapi.json`.

`python -m referral.openapi > openapi/openapi.json` (or `make openapi`) after an API change.
"""

from __future__ import annotations

import json

from referral.app import create_app
from referral.settings import Settings


def document() -> str:
    # The spec does not depend on settings; these are placeholders that open nothing.
    app = create_app(
        Settings(
            database_url="postgresql://unused/unused",
            hashids_salt="-" * 16,
            click_token_key="-" * 16,
            ip_hash_key="-" * 16,
        )
    )
    return json.dumps(app.openapi_schema.to_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(document(), end="")
