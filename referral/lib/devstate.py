"""Local development state under `.referral/`: secrets and the demo keys, made once.

Reusing them keeps printed links, QR codes and keys working across restarts. Never used
with an external DATABASE_URL or in production: there the secrets must be set explicitly.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("REFERRAL_HOME", ".referral")).resolve()


def _load_or_create(path: Path, make: dict[str, str]) -> dict[str, str]:
    """The file's values, or `make` written as them. Written whole under another name and
    linked into place, so a command started at the same moment never reads it half written
    and the first one's values win."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(json.dumps(make, indent=2))
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink(missing_ok=True)
    return json.loads(path.read_text())


def dev_secrets() -> dict[str, str]:
    return _load_or_create(
        home() / "secrets.json",
        {
            "hashids_salt": secrets.token_urlsafe(24),
            "click_token_key": secrets.token_urlsafe(32),
            "ip_hash_key": secrets.token_urlsafe(32),
        },
    )


def demo_keys() -> dict[str, str]:
    return _load_or_create(
        home() / "demo.json",
        {
            "secret_key": f"sk_test_{secrets.token_urlsafe(24)}",
            "publishable_key": f"pk_test_{secrets.token_urlsafe(24)}",
        },
    )


def remember_base_url(base_url: str) -> None:
    """What the last `referral serve` printed as its base URL, for `referral dev env`."""
    path = home() / "server.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"base_url": base_url}))


def served_base_url() -> str | None:
    try:
        return json.loads((home() / "server.json").read_text())["base_url"]
    except (OSError, ValueError, KeyError):
        return None
