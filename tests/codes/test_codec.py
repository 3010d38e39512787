"""Referral codes: the pure codec (generation, normalisation, vanity rules) and the code API.

Pure rules are property-tested with hypothesis; what a shop or a friend sees goes through the
HTTP API on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral.codes.codec import CodeCodec, VanityCodeError, lookup_key, normalise
from tests.factories import create_advocate, create_program, on_app_loop

ALPHABET = set("ABCDEFGHJKMNPQRSTUVWXYZ23456789")
CONFUSABLE = set("0O1IL")
SALT = "test-salt-0123456789"  # tests.conftest.make_settings
codec = CodeCodec(SALT)

ids = st.integers(min_value=1, max_value=2**53)
separators = st.sampled_from(["", " ", "-", "  ", " - "])


def _garble(code: str, data: st.DataObject) -> str:
    """The code as a person might type it: any case, spaces and dashes anywhere."""
    out = []
    for ch in code:
        out.append(data.draw(separators))
        out.append(ch.lower() if data.draw(st.booleans()) else ch)
    out.append(data.draw(separators))
    return "".join(out)


# --- generated codes ------------------------------------------------------------------


class TestGeneratedCodes:
    @given(ids)
    def test_round_trip(self, advocate_id):
        assert codec.decode(codec.generate(advocate_id)) == advocate_id

    @given(ids)
    def test_alphabet_and_length(self, advocate_id):
        code = codec.generate(advocate_id)
        assert len(code) >= 7
        assert set(code) <= ALPHABET
        assert not set(code) & CONFUSABLE

    @given(ids, ids)
    def test_distinct_ids_give_distinct_codes(self, a, b):
        if a != b:
            assert codec.generate(a) != codec.generate(b)

    @given(ids, st.data())
    def test_typed_loosely_still_decodes(self, advocate_id, data):
        code = codec.generate(advocate_id)
        assert codec.decode(_garble(code, data)) == advocate_id

    @given(st.text(alphabet="".join(sorted(ALPHABET)), min_size=1, max_size=12))
    def test_decode_only_accepts_what_generate_produces(self, raw):
        decoded = codec.decode(raw)
        if decoded is not None:
            assert codec.generate(decoded) == raw

    @given(st.text(max_size=60))
    def test_decode_never_raises(self, raw):
        decoded = codec.decode(raw)
        assert decoded is None or isinstance(decoded, int)

    def test_salt_matters(self):
        other = CodeCodec("another-deployment-salt")
        assert [codec.generate(i) for i in range(1, 50)] != [
            other.generate(i) for i in range(1, 50)
        ]
        assert other.decode(codec.generate(1042)) != 1042


# --- normalisation and lookup keys ----------------------------------------------------


class TestLookupKey:
    @given(st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20))
    def test_case_spaces_and_dashes_do_not_matter(self, code):
        assert lookup_key(code.lower()) == lookup_key(code.upper()) == lookup_key(code)
        spaced = "-".join(code[i : i + 3] for i in range(0, len(code), 3))
        assert lookup_key(spaced) == lookup_key(" " + code + " ") == lookup_key(code)

    @given(st.text(max_size=40))
    def test_idempotent(self, raw):
        assert lookup_key(lookup_key(raw)) == lookup_key(raw)
        assert normalise(normalise(raw)) == normalise(raw)

    @given(st.text(alphabet=string.ascii_letters + string.digits + " -", max_size=30))
    def test_key_has_no_confusable_letters_or_separators(self, raw):
        key = lookup_key(raw)
        assert not set(key) & set("OIL -")
        assert key == key.upper()

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ("ANNA10", "anna-io"),
            ("ANNA10", "ANNA1O"),
            ("ANNA10", "annalo"),
            ("ANNA10", "Anna 10"),
            ("HELLO", "he11o"),
        ],
    )
    def test_confusables_fold_together(self, a, b):
        assert lookup_key(a) == lookup_key(b)

    @pytest.mark.parametrize(
        "pasted",
        [
            "ANNA\u00a010",  # no-break space, as messengers paste it
            "anna\u201310",  # en dash, from smart punctuation
            "ANNA\u200b10",  # zero-width space
            "\tanna-10\n",
            "ANNA\u221210",  # minus sign
        ],
    )
    def test_pasted_separators_are_dropped(self, pasted):
        assert lookup_key(pasted) == "ANNA10"
        assert normalise(pasted) == "ANNA10"

    def test_different_codes_stay_different(self):
        assert lookup_key("ANNA10") != lookup_key("ANNA11")
        assert lookup_key("ANNA") != lookup_key("ANNE")

    @given(ids)
    def test_generated_code_is_its_own_key(self, advocate_id):
        code = codec.generate(advocate_id)
        assert lookup_key(code) == normalise(code) == code


# --- vanity rules, pure --------------------------------------------------------------


class TestVanityRules:
    @given(ids)
    def test_a_generated_code_is_never_a_vanity_code(self, advocate_id):
        with pytest.raises(VanityCodeError) as exc:
            codec.check_vanity(codec.generate(advocate_id).lower())
        assert exc.value.code == "vanity_code_ambiguous"

    @given(st.text(alphabet=string.ascii_uppercase + string.digits, min_size=4, max_size=20))
    def test_accepted_codes_are_canonical(self, raw):
        try:
            code = codec.check_vanity(raw.lower())
        except VanityCodeError as exc:
            assert exc.code in {"vanity_code_reserved", "vanity_code_ambiguous"}
            return
        assert code == raw
        assert codec.decode(code) is None

    @given(st.text(alphabet=string.ascii_uppercase + string.digits, max_size=30))
    def test_length_is_counted_without_separators(self, raw):
        spaced = " - ".join(raw)
        if not 4 <= len(raw) <= 20:
            with pytest.raises(VanityCodeError) as exc:
                codec.check_vanity(spaced)
            assert exc.value.code == "vanity_code_length"


# --- through the API -------------------------------------------------------------------


async def _advocate(client, tenant, customer_id="cus_1"):
    program = await create_program(client, tenant)
    return program, await create_advocate(client, tenant, program["id"], customer_id)


async def _add(client, tenant, advocate, code):
    return await client.post(
        f"/v1/advocates/{advocate['id']}/codes", json={"code": code}, headers=tenant.auth
    )


def _problem(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


class TestVanityApi:
    @pytest.mark.parametrize(
        ("typed", "stored"),
        [
            ("ABCD", "ABCD"),  # 4: shortest
            ("a b-c d", "ABCD"),
            ("anna10", "ANNA10"),
            ("SUMMER2024ANNASHOP20", "SUMMER2024ANNASHOP20"),  # 20: longest
        ],
    )
    async def test_accepted(self, client, tenant, typed, stored):
        _, advocate = await _advocate(client, tenant)
        r = await _add(client, tenant, advocate, typed)
        assert r.status_code == 201, r.text
        assert r.json()["vanity_codes"] == [stored]
        assert r.json()["code"] == advocate["code"]  # the generated code stays
        again = await client.get(f"/v1/advocates/{advocate['id']}", headers=tenant.auth)
        assert again.json()["vanity_codes"] == [stored]

    @pytest.mark.parametrize(
        ("typed", "error"),
        [
            ("AB-C", "vanity_code_length"),  # dashes do not count
            ("SUMMER2024ANNASHOP201", "vanity_code_length"),  # 21
            ("ANNA!", "vanity_code_charset"),
            ("ANNA.10", "vanity_code_charset"),
            ("ÄNNA10", "vanity_code_charset"),
            ("admin", "vanity_code_reserved"),
            ("Support", "vanity_code_reserved"),
            ("HE1P", "vanity_code_reserved"),  # reads as HELP
            ("free", "vanity_code_reserved"),
            # Friend coupons start F1; FIONA folds to F10NA and would be read as a coupon.
            ("FIONA", "vanity_code_reserved"),
            ("f1rst", "vanity_code_reserved"),
            ("FLOWER", "vanity_code_reserved"),
        ],
    )
    async def test_refused(self, client, tenant, typed, error):
        _, advocate = await _advocate(client, tenant)
        _problem(await _add(client, tenant, advocate, typed), 422, error)
        r = await client.get(f"/v1/advocates/{advocate['id']}", headers=tenant.auth)
        assert r.json()["vanity_codes"] == []

    async def test_a_code_shorter_than_the_schema_allows_names_the_field(self, client, tenant):
        """Under four characters the request's own schema (minLength 4) refuses it."""
        _, advocate = await _advocate(client, tenant)
        response = await _add(client, tenant, advocate, "ABC")
        _problem(response, 400, "validation_error")
        assert [error["key"] for error in response.json()["errors"]] == ["code"]

    async def test_code_that_reads_as_a_generated_code_is_refused(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        # Another advocate's future code, and this advocate's own generated code.
        for candidate in (codec.generate(987_654), codec.generate(5).lower(), advocate["code"]):
            _problem(await _add(client, tenant, advocate, candidate), 422, "vanity_code_ambiguous")

    async def test_re_adding_own_code_is_idempotent(self, client, tenant, db):
        _, advocate = await _advocate(client, tenant)
        assert (await _add(client, tenant, advocate, "ANNA10")).status_code == 201
        for typed in ("ANNA10", "anna-10", "Anna IO"):
            r = await _add(client, tenant, advocate, typed)
            assert r.status_code == 200, r.text
            assert r.json()["vanity_codes"] == ["ANNA10"]
        assert await db.fetchval("SELECT count(*) FROM codes WHERE kind = 'vanity'") == 1

    async def test_unique_within_a_merchant(self, client, tenant):
        program, anna = await _advocate(client, tenant)
        ben = await create_advocate(client, tenant, program["id"], "cus_2")
        assert (await _add(client, tenant, anna, "ANNA10")).status_code == 201
        _problem(await _add(client, tenant, ben, "anna10"), 409, "code_taken")

    async def test_unique_across_merchants_and_confusable_twins(self, client, tenant, other_tenant):
        _, anna = await _advocate(client, tenant)
        _, other = await _advocate(client, other_tenant)
        assert (await _add(client, tenant, anna, "ANNA10")).status_code == 201
        for twin in ("ANNA10", "ANNAIO", "anna-lo", "ANNA1O"):
            _problem(await _add(client, other_tenant, other, twin), 409, "code_taken")
        r = await client.get(f"/v1/advocates/{other['id']}", headers=other_tenant.auth)
        assert r.json()["vanity_codes"] == []

    async def test_concurrent_claims_one_winner(self, client, tenant, other_tenant, db):
        _, anna = await _advocate(client, tenant)
        _, other = await _advocate(client, other_tenant)
        claims = [(tenant, anna, "ANNA10"), (other_tenant, other, "anna-io")] * 5

        async def send(http):
            return await asyncio.gather(
                *(
                    http.post(
                        f"/v1/advocates/{advocate['id']}/codes",
                        json={"code": code},
                        headers=owner.auth,
                    )
                    for owner, advocate, code in claims
                )
            )

        responses = await on_app_loop(client, send)
        statuses = [r.status_code for r in responses]
        assert statuses.count(201) == 1, statuses
        winner = claims[statuses.index(201)][1]["id"]
        for (_, advocate, _), r in zip(claims, responses, strict=True):
            if advocate["id"] == winner:
                assert r.status_code in (200, 201), r.text
            else:
                _problem(r, 409, "code_taken")
        assert await db.fetchval("SELECT count(*) FROM codes WHERE kind = 'vanity'") == 1

    async def test_several_vanity_codes(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        assert (await _add(client, tenant, advocate, "ANNA10")).status_code == 201
        r = await _add(client, tenant, advocate, "ANNASHOP")
        assert r.status_code == 201
        assert r.json()["vanity_codes"] == ["ANNA10", "ANNASHOP"]

    async def test_another_merchants_advocate_is_not_found(self, client, tenant, other_tenant):
        _, advocate = await _advocate(client, tenant)
        _problem(await _add(client, other_tenant, advocate, "ANNA10"), 404, "advocate_not_found")

    async def test_publishable_key_may_not_add_codes(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        r = await client.post(
            f"/v1/advocates/{advocate['id']}/codes",
            json={"code": "ANNA10"},
            headers=tenant.public_auth,
        )
        _problem(r, 403, "secret_key_required")


class TestCodeLookupApi:
    async def test_generated_code_found_case_insensitively(self, client, tenant):
        program, advocate = await _advocate(client, tenant)
        code = advocate["code"]
        for typed in (code, code.lower(), f"{code[:3]}-{code[3:].lower()}"):
            r = await client.get(f"/v1/codes/{typed}", headers=tenant.public_auth)
            assert r.status_code == 200, r.text
            assert r.json()["code"] == code
            assert r.json()["program_id"] == program["id"]
            assert r.json()["active"] is True

    async def test_vanity_code_found_when_typed_with_confusables(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        assert (await _add(client, tenant, advocate, "ANNA10")).status_code == 201
        for typed in ("anna-io", "ANNA10", "anna 1o"):
            r = await client.get(f"/v1/codes/{typed}", headers=tenant.public_auth)
            assert r.status_code == 200, r.text
            assert r.json()["code"] == "ANNA10"

    async def test_code_pasted_with_unicode_separators(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        code = advocate["code"]
        typed = f"{code[:3]}\u2013{code[3:]}\u00a0".lower()
        r = await client.get(f"/v1/codes/{typed}", headers=tenant.public_auth)
        assert r.status_code == 200, r.text
        assert r.json()["code"] == code

    async def test_unknown_code(self, client, tenant):
        await _advocate(client, tenant)
        r = await client.get("/v1/codes/NOSUCHCODE", headers=tenant.public_auth)
        _problem(r, 404, "code_not_found")

    async def test_another_merchants_code_is_not_found(self, client, tenant, other_tenant):
        _, advocate = await _advocate(client, tenant)
        r = await client.get(f"/v1/codes/{advocate['code']}", headers=other_tenant.public_auth)
        _problem(r, 404, "code_not_found")

    async def test_paused_program_code_is_inactive(self, client, tenant):
        program, advocate = await _advocate(client, tenant)
        r = await client.patch(
            f"/v1/programs/{program['id']}", json={"status": "paused"}, headers=tenant.auth
        )
        assert r.status_code == 200, r.text
        r = await client.get(f"/v1/codes/{advocate['code']}", headers=tenant.public_auth)
        assert r.status_code == 200
        assert r.json()["active"] is False

    async def test_needs_a_key(self, client, tenant):
        _, advocate = await _advocate(client, tenant)
        r = await client.get(f"/v1/codes/{advocate['code']}")
        _problem(r, 401, "missing_api_key")


class TestAdvocateUpsert:
    async def test_idempotent(self, client, tenant, db):
        program = await create_program(client, tenant)
        body = {"program_id": program["id"], "customer_id": "cus_1042"}
        first = await client.post("/v1/advocates", json=body, headers=tenant.auth)
        second = await client.post("/v1/advocates", json=body, headers=tenant.auth)
        assert (first.status_code, second.status_code) == (201, 200)
        assert first.json()["id"] == second.json()["id"]
        assert first.json()["code"] == second.json()["code"]
        code = first.json()["code"]
        assert len(code) >= 7 and set(code) <= ALPHABET
        assert first.json()["link"] == f"http://testserver.local/r/{code}"
        assert await db.fetchval("SELECT count(*) FROM advocates") == 1

    async def test_different_customers_get_different_codes(self, client, tenant):
        program = await create_program(client, tenant)
        a = await create_advocate(client, tenant, program["id"], "cus_a")
        b = await create_advocate(client, tenant, program["id"], "cus_b")
        assert a["id"] != b["id"]
        assert a["code"] != b["code"]

    async def test_concurrent_upserts_make_one_advocate(self, client, tenant, db):
        program = await create_program(client, tenant)
        body = {"program_id": program["id"], "customer_id": "cus_race", "email": "a@x.example"}

        async def send(http):
            return await asyncio.gather(
                *(http.post("/v1/advocates", json=body, headers=tenant.auth) for _ in range(20))
            )

        responses = await on_app_loop(client, send)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 19 + [201], [r.text for r in responses]
        assert len({r.json()["id"] for r in responses}) == 1
        assert len({r.json()["code"] for r in responses}) == 1
        assert await db.fetchval("SELECT count(*) FROM advocates") == 1
        assert await db.fetchval("SELECT count(*) FROM codes WHERE kind = 'generated'") == 1
        assert await db.fetchval("SELECT code FROM codes") == responses[0].json()["code"]
