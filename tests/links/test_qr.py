"""QR codes of referral links: `/r/{code}/qr.png` and `/r/{code}/qr.svg`.

No QR decoder is installed, so the PNG is read back module by module and compared with the
symbol for the expected link (the symbol for a text is fixed once its error-correction level
is chosen; any level is accepted).
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_H, ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q

from tests.factories import create_advocate, create_program

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FOREGROUND, BACKGROUND = "#1a7f37", "#fffbe6"


@pytest.fixture
async def program(client, tenant):
    return await create_program(client, tenant, qr_foreground=FOREGROUND, qr_background=BACKGROUND)


@pytest.fixture
async def advocate(client, tenant, program):
    return await create_advocate(client, tenant, program["id"])


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def read_modules(png: bytes) -> tuple[list[list[bool]], int, Image.Image]:
    """(dark modules without the quiet zone, quiet zone width in whole modules, the image).

    The symbol sits in the middle: the pixels a size leaves over widen the quiet zone."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    width, height = image.size
    assert width == height
    light = image.getpixel((0, 0))
    # The top-left finder pattern: its top edge is a run of 7 dark modules.
    start = next(i for i in range(width) if image.getpixel((i, i)) != light)
    run = next(x for x in range(start, width) if image.getpixel((x, start)) == light) - start
    assert run % 7 == 0, run
    box = run // 7
    # The top-right finder pattern ends the symbol's top row.
    end = next(x for x in range(width - 1, -1, -1) if image.getpixel((x, start)) != light) + 1
    assert (end - start) % box == 0
    inner = (end - start) // box
    assert width - end in (start, start + 1)  # centred
    modules = [
        [
            image.getpixel((start + c * box + box // 2, start + r * box + box // 2)) != light
            for c in range(inner)
        ]
        for r in range(inner)
    ]
    return modules, start // box, image


def symbols_for(text: str) -> list[list[list[bool]]]:
    out = []
    for level in (ERROR_CORRECT_L, ERROR_CORRECT_M, ERROR_CORRECT_Q, ERROR_CORRECT_H):
        qr = qrcode.QRCode(error_correction=level, border=0)
        qr.add_data(text)
        qr.make(fit=True)
        out.append(qr.get_matrix())
    return out


async def png(client, code: str, query: str = "", **headers: str):
    return await client.get(f"/r/{code}/qr.png{query}", headers=headers)


def assert_problem(response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    if code:
        assert response.json()["code"] == code


class TestPng:
    async def test_encodes_the_qr_channel_link(self, client, advocate):
        r = await png(client, advocate["code"], "?size=300")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "image/png"
        assert r.content.startswith(PNG_MAGIC)
        modules, border, image = read_modules(r.content)
        assert border >= 4  # the quiet zone scanners need
        assert 150 < image.width <= 300
        assert modules in symbols_for(f"{advocate['link']}?ch=qr")
        assert modules not in symbols_for(advocate["link"] + "?ch=link")

    async def test_uses_the_program_palette(self, client, advocate):
        r = await png(client, advocate["code"])
        image = Image.open(io.BytesIO(r.content)).convert("RGB")
        colours = {colour for _, colour in image.getcolors(16)}
        assert colours == {rgb(FOREGROUND), rgb(BACKGROUND)}

    async def test_code_typed_loosely_gives_the_same_image(self, client, advocate):
        canonical = await png(client, advocate["code"])
        loose = await png(client, advocate["code"].lower())
        assert loose.status_code == 200
        assert loose.content == canonical.content
        assert loose.headers["etag"] == canonical.headers["etag"]

    async def test_vanity_code_encodes_the_vanity_link(self, client, tenant, advocate):
        r = await client.post(
            f"/v1/advocates/{advocate['id']}/codes", json={"code": "ANNA10"}, headers=tenant.auth
        )
        assert r.status_code == 201, r.text
        r = await png(client, "anna-io")
        assert r.status_code == 200
        modules, _, _ = read_modules(r.content)
        assert modules in symbols_for("http://testserver.local/r/ANNA10?ch=qr")

    @pytest.mark.parametrize("size", [64, 200, 1024])
    async def test_size_within_bound(self, client, advocate, size):
        r = await png(client, advocate["code"], f"?size={size}")
        assert r.status_code == 200, r.text
        modules, _, image = read_modules(r.content)
        assert image.width <= size
        assert image.width > size / 2
        assert modules in symbols_for(f"{advocate['link']}?ch=qr")

    @pytest.mark.parametrize("size", [64, 100, 240, 370, 400, 999, 1024])
    async def test_the_size_asked_for_is_the_size_served(self, client, advocate, size):
        r = await png(client, advocate["code"], f"?size={size}")
        assert r.status_code == 200, r.text
        modules, border, image = read_modules(r.content)
        assert image.size == (size, size)
        assert border >= 4
        assert modules in symbols_for(f"{advocate['link']}?ch=qr")
        colours = {colour for _, colour in image.getcolors(16)}
        assert colours == {rgb(FOREGROUND), rgb(BACKGROUND)}  # padding in the background

    async def test_default_size_is_the_documented_one(self, client, advocate):
        r = await png(client, advocate["code"])
        assert Image.open(io.BytesIO(r.content)).size == (300, 300)

    async def test_bigger_size_bigger_image(self, client, advocate):
        small = Image.open(io.BytesIO((await png(client, advocate["code"], "?size=128")).content))
        big = Image.open(io.BytesIO((await png(client, advocate["code"], "?size=800")).content))
        assert big.width > 4 * small.width

    @pytest.mark.parametrize("size", ["63", "1025", "0", "-300", "big", "300.5"])
    async def test_size_out_of_range(self, client, advocate, size):
        assert_problem(await png(client, advocate["code"], f"?size={size}"), 400)
        r = await client.get(f"/r/{advocate['code']}/qr.svg?size={size}")
        assert_problem(r, 400)

    @pytest.mark.parametrize("fmt", ["png", "svg"])
    async def test_unknown_code(self, client, advocate, fmt):
        r = await client.get(f"/r/NOSUCHCODE/qr.{fmt}")
        assert_problem(r, 404, "code_not_found")


class TestHead:
    @pytest.mark.parametrize("fmt", ["png", "svg"])
    async def test_head_answers_like_get_without_a_body(self, client, advocate, fmt):
        url = f"/r/{advocate['code']}/qr.{fmt}?size=400"
        got, headed = await client.get(url), await client.head(url)
        assert got.status_code == headed.status_code == 200
        for name in ("content-type", "content-length", "etag", "cache-control"):
            assert headed.headers[name] == got.headers[name], name
        assert int(headed.headers["content-length"]) == len(got.content) > 0
        assert headed.content == b""
        not_modified = await client.head(url, headers={"if-none-match": got.headers["etag"]})
        assert not_modified.status_code == 304

    @pytest.mark.parametrize("query", ["?size=63", "?size=big"])
    async def test_head_of_a_bad_size_is_the_same_problem(self, client, advocate, query):
        url = f"/r/{advocate['code']}/qr.png{query}"
        got, headed = await client.get(url), await client.head(url)
        assert headed.status_code == got.status_code == 400
        assert headed.headers["content-type"] == got.headers["content-type"]
        assert headed.headers["content-length"] == got.headers["content-length"]
        assert headed.content == b""

    async def test_head_of_an_unknown_code_is_404(self, client):
        headed = await client.head("/r/NOSUCHCODE/qr.png")
        assert headed.status_code == 404
        assert headed.headers["content-type"].startswith("application/problem+json")

    async def test_head_of_an_unknown_link_is_the_get_without_its_body(self, client):
        got, headed = await client.get("/r/NOSUCHCODE"), await client.head("/r/NOSUCHCODE")
        assert got.status_code == headed.status_code == 404
        assert headed.headers["content-type"] == got.headers["content-type"]
        assert headed.headers["content-length"] == got.headers["content-length"]
        assert int(got.headers["content-length"]) == len(got.content) > 0
        assert headed.content == b""


class TestCaching:
    async def test_etag_and_not_modified(self, client, advocate):
        r = await png(client, advocate["code"])
        etag = r.headers["etag"]
        assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
        cache_control = r.headers["cache-control"]
        assert "public" in cache_control and "max-age=" in cache_control
        again = await png(client, advocate["code"], **{"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        other = await png(client, advocate["code"], **{"if-none-match": '"somethingelse"'})
        assert other.status_code == 200
        assert other.content == r.content

    async def test_each_size_and_format_has_its_own_etag(self, client, advocate):
        tags = {
            (await client.get(f"/r/{advocate['code']}/qr.{fmt}?size={size}")).headers["etag"]
            for fmt in ("png", "svg")
            for size in (128, 256)
        }
        assert len(tags) == 4

    async def test_palette_change_changes_the_etag(self, client, tenant, program, advocate):
        before = await png(client, advocate["code"])
        r = await client.patch(
            f"/v1/programs/{program['id']}",
            json={"qr_foreground": "#112233"},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        after = await png(client, advocate["code"], **{"if-none-match": before.headers["etag"]})
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        image = Image.open(io.BytesIO(after.content)).convert("RGB")
        assert {colour for _, colour in image.getcolors(16)} == {
            rgb("#112233"),
            rgb(BACKGROUND),
        }


class TestSvg:
    async def test_uses_the_program_palette_and_size(self, client, advocate):
        r = await client.get(f"/r/{advocate['code']}/qr.svg?size=256")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("image/svg+xml")
        root = ET.fromstring(r.content)
        assert root.tag.endswith("svg")
        assert (root.get("width"), root.get("height")) == ("256", "256")
        fills = {el.get("fill", "").lower() for el in root.iter() if el.get("fill")}
        assert FOREGROUND in fills
        assert BACKGROUND in fills
        assert "#000000" not in fills
        assert r.headers["etag"]
        assert "public" in r.headers["cache-control"]

    @pytest.mark.parametrize("size", [64, 370, 400, 1024])
    async def test_width_and_height_are_the_size_in_pixels(self, client, advocate, size):
        r = await client.get(f"/r/{advocate['code']}/qr.svg?size={size}")
        root = ET.fromstring(r.content)
        assert (root.get("width"), root.get("height")) == (str(size), str(size))
        # The drawing is in module units and scaled to the size: square, nothing cut off.
        x, y, w, h = (float(v) for v in root.get("viewBox").split())
        assert (x, y) == (0, 0) and w == h >= 21 + 8  # modules and quiet zone

    async def test_default_palette(self, client, tenant):
        program = await create_program(client, tenant)
        advocate = await create_advocate(client, tenant, program["id"])
        r = await client.get(f"/r/{advocate['code']}/qr.svg")
        root = ET.fromstring(r.content)
        fills = {el.get("fill", "").lower() for el in root.iter() if el.get("fill")}
        assert {"#000000", "#ffffff"} <= fills

    async def test_palette_change_shows_in_the_svg(self, client, tenant, program, advocate):
        r = await client.patch(
            f"/v1/programs/{program['id']}",
            json={"qr_foreground": "#AA0055", "qr_background": "#00ffcc"},
            headers=tenant.auth,
        )
        assert r.status_code == 200, r.text
        r = await client.get(f"/r/{advocate['code']}/qr.svg")
        fills = {el.get("fill", "").lower() for el in ET.fromstring(r.content).iter()}
        assert {"#aa0055", "#00ffcc"} <= fills
        assert FOREGROUND not in fills
