"""One spelling per token: a share-page token (and a click token) is accepted only as the
canonical unpadded base64url of its bytes. Every other spelling of the same bytes (the last
character's spare bits set, `=` padding, the standard alphabet's `+` and `/`, characters
the decoder would skip) is answered exactly as an unknown token is: no oracle."""

from __future__ import annotations

import base64
import binascii
import re
import time

import pytest

from referral.lib import b64url
from referral.links.token import ClickToken, ClickTokenSigner
from referral.share_page.service import signer
from tests.factories import create_program

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def forgiving_decode(text: str) -> bytes:
    """What the signers used to decode with."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def last_character_variants(token: str) -> list[str]:
    """Every other last character that a forgiving decoder reads as the same bytes."""
    blob = forgiving_decode(token)
    variants = []
    for c in ALPHABET:
        other = token[:-1] + c
        if other == token:
            continue
        try:
            if forgiving_decode(other) == blob:
                variants.append(other)
        except (binascii.Error, ValueError):
            pass
    return variants


def without_nonce(page: str) -> str:
    """A page without its per-response CSP nonce, the one part that differs each time."""
    return re.sub(r'nonce="[^"]*"', 'nonce=""', page)


def accepted_before(spelling: str, token: str) -> bool:
    """The old decoder read `spelling` as the token's own bytes."""
    try:
        return forgiving_decode(spelling) == forgiving_decode(token)
    except (binascii.Error, ValueError):
        return False


def other_spellings(token: str) -> list[str]:
    """Non-canonical spellings of the same bytes, each accepted by the old decoder."""
    padded = token + "=" * (-len(token) % 4)
    spellings = [
        *last_character_variants(token),
        padded if padded != token else token + "==",
        token + "=",
        token[:5] + "...." + token[5:],  # skipped by a forgiving decoder
        token[:5] + "~~~~" + token[5:],
        token.replace("-", "+"),  # the standard alphabet (a "/" would be another URL)
    ]
    return [s for s in dict.fromkeys(spellings) if s != token and accepted_before(s, token)]


def test_the_codec_round_trips_and_refuses_other_spellings():
    for n in range(40):
        data = bytes(range(n))
        assert b64url.decode(b64url.encode(data)) == data
    token = b64url.encode(b"\x00" * 37)  # 37 bytes: the last character has 4 spare bits
    assert len(last_character_variants(token)) == 15
    for other in other_spellings(token):
        assert b64url.decode(other) is None, other
    for bad in ("A", "AAAAA", "é" * 4, " AAA", "AA AA"):
        assert b64url.decode(bad) is None


async def _advocate(client, tenant):
    program = await create_program(client, tenant)
    response = await client.post(
        "/v1/advocates",
        json={"program_id": program["id"], "customer_id": "cus_anna", "name": "Anna"},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_every_other_spelling_of_a_share_token_is_an_unknown_token(client, tenant, settings):
    anna = await _advocate(client, tenant)
    token = signer(settings).sign(anna["id"], int(time.time()) + 3600)
    genuine = await client.get(f"/share/{token}")
    assert genuine.status_code == 200
    variants = last_character_variants(token)
    # What the issue measured: the last character of today's tokens carries 4 spare bits.
    assert len(token) % 4 == 2 and len(variants) == 15
    unknown = await client.get(f"/share/{token[:-3]}AAA")
    assert unknown.status_code == 403

    spellings = other_spellings(token)
    assert len(spellings) >= 15 + 2 + 2  # spare bits, padding, skipped characters
    for other in spellings:
        path = f"/share/{other}"
        response = await client.get(path)
        assert response.status_code == unknown.status_code, other
        assert without_nonce(response.text) == without_nonce(unknown.text), other
        assert response.headers["content-type"] == unknown.headers["content-type"]
        posted = await client.post(f"{path}/contact", data={"contact_preference": "none"})
        assert posted.status_code == 403, other
    advocate = await client.get(f"/v1/advocates/{anna['id']}", headers=tenant.auth)
    assert advocate.json()["contact_preference"] == "email"  # no variant changed anything


@pytest.mark.parametrize("story_id", [None, "sty_abcdefghij"])
def test_a_click_token_has_one_spelling(story_id):
    signer = ClickTokenSigner("click-key-0123456789")
    for channel in ("link", "qr", "whatsapp"):  # payloads of several lengths
        token = signer.sign(
            ClickToken("ANNA10", "ab" * 16, channel, "v" * 16, 1_764_582_000, story_id)
        )
        assert signer.verify(token) is not None
        spellings = other_spellings(token)
        assert len(spellings) >= 4  # more where the last character has spare bits
        for other in spellings:
            assert signer.verify(other) is None, other
