"""Pure helpers of the customer pages: words, money, offers, masking, share intents, the
share-page token and the share image. No server, no database."""

from __future__ import annotations

from io import BytesIO
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from referral.share_page.token import SharePageSigner, derive_key
from referral.stories import image
from referral.stories.service import clean_text, new_slug
from referral.web import i18n
from referral.web.intents import SHARE_CHANNELS, intent_url


def test_money_reads_naturally_in_both_languages():
    assert i18n.money(1000, "EUR", "en") == "10 EUR"
    assert i18n.money(1050, "EUR", "en") == "10.50 EUR"
    assert i18n.money(1050, "EUR", "sv") == "10,50 EUR"
    assert i18n.money(500, "JPY", "en") == "500 JPY"


def test_offer_text_follows_the_friend_rule():
    assert i18n.offer_text({"kind": "coupon", "amounts": {"EUR": 1000}}, "en") == (
        "10 EUR off your first order"
    )
    assert i18n.offer_text({"kind": "cash", "basis_points": 1250}, "sv") == (
        "12,5 % rabatt på din första beställning"
    )
    assert i18n.offer_text({"kind": "points", "points": 1500}, "en") == "1,500 points"
    assert i18n.offer_text(None, "en") is None  # the pages say something else


def test_offer_text_speaks_to_its_reader():
    coupon = {"kind": "coupon", "amounts": {"EUR": 1000}}
    assert i18n.offer_text(coupon, "en", reader="advocate") == "10 EUR off their first order"
    assert i18n.offer_text(coupon, "sv", reader="advocate") == (
        "10 EUR rabatt på sin första beställning"
    )
    cash = {"kind": "cash", "amounts": {"SEK": 5000}}
    assert i18n.offer_text(cash, "en") == "50 SEK when you order"
    assert i18n.offer_text(cash, "en", reader="advocate") == "50 SEK when they order"
    assert i18n.offer_text(cash, "sv", reader="advocate") == "50 SEK när de handlar"
    percent = {"kind": "coupon", "basis_points": 1500}
    assert i18n.offer_text(percent, "en", reader="advocate") == "15% off their first order"


def test_every_advocate_offer_has_a_friend_offer_and_back():
    en = i18n.STRINGS["en"]
    friend = {k for k in en if k.startswith("offer_") and not k.endswith("_them")}
    advocate = {
        k.removesuffix("_them") for k in en if k.startswith("offer_") and k.endswith("_them")
    }
    assert friend == advocate
    for locale in i18n.LOCALES:
        for key in friend:
            assert "your" not in i18n.STRINGS[locale][f"{key}_them"]
            assert " din " not in i18n.STRINGS[locale][f"{key}_them"]


def test_money_follows_the_currency_exponent_and_groups_thousands():
    assert i18n.money(123456789, "EUR", "en") == "1,234,567.89 EUR"
    assert i18n.money(123456789, "EUR", "sv") == "1\u00a0234\u00a0567,89 EUR"
    assert i18n.money(150000, "JPY", "en") == "150,000 JPY"
    assert i18n.money(1250, "KWD", "en") == "1.250 KWD"
    assert i18n.money(1000, "KWD", "sv") == "1 KWD"


def test_reward_rows_and_sentences():
    assert i18n.reward_row("coupon", 1000, "EUR", "en") == "10 EUR coupon"
    assert i18n.reward_row("coupon", 1000, "EUR", "sv") == "Rabattkod på 10 EUR"
    assert i18n.reward_text("coupon", 1000, "EUR", "en") == "a 10 EUR coupon"
    assert i18n.reward_text("store_credit", 500, "EUR", "en") == "5 EUR store credit"
    assert i18n.reward_text("store_credit", 500, "EUR", "sv") == "5 EUR i tillgodohavande"
    assert i18n.reward_text("points", 1500, None, "sv") == "1\u00a0500 poäng"


def test_friends_joined_groups_thousands():
    assert i18n.friends_joined(1284, "en") == "1,284 friends joined this month"
    assert i18n.friends_joined(1284, "sv") == "1\u00a0284 vänner gick med den här månaden"


def test_public_names_and_friends_are_masked():
    assert i18n.first_name("  Anna Maria Svensson ") == "Anna"
    assert i18n.first_name(None) is None and i18n.first_name("   ") is None
    assert i18n.masked_friend("bea@example.com", 1, "en") == "Friend B…"
    assert i18n.masked_friend(None, 3, "en") == "Friend #3"
    assert i18n.masked_friend("+bea@example.com", 2, "sv") == "Vän nr 2"


def test_every_english_string_has_a_swedish_one():
    assert set(i18n.STRINGS["en"]) == set(i18n.STRINGS["sv"])


def test_story_text_is_one_clean_paragraph():
    assert clean_text("  I got\n10 EUR\t at Shop  ") == "I got 10 EUR at Shop"
    for bad in ("", "   ", "a\x00b", "x" * 281):
        with pytest.raises(Exception) as raised:
            clean_text(bad)
        assert getattr(raised.value, "code", None) == "invalid_story_text"


def test_slugs_are_random_and_url_safe():
    slugs = {new_slug() for _ in range(1000)}
    assert len(slugs) == 1000
    assert all(len(s) == 12 and s.replace("-", "").replace("_", "").isalnum() for s in slugs)


@pytest.mark.parametrize("channel", SHARE_CHANNELS)
def test_intents_carry_the_url_and_never_the_request(channel):
    url = "https://r.example/r/ABC?ch=x"
    target = intent_url(channel, text="Hi & bye", url=url, subject="Shop")
    if channel in ("copy", "share_sheet"):
        assert target is None
        return
    assert target.split(":", 1)[0] in ("https", "mailto", "sms")
    decoded = str(parse_qs(urlsplit(target).query))
    assert url in decoded or url in target.replace("%3A", ":").replace("%2F", "/")


def test_unknown_channel_is_refused():
    with pytest.raises(KeyError):
        intent_url("myspace", text="t", url="u", subject="s")


def test_share_page_token_round_trip_expiry_and_tampering():
    signer = SharePageSigner(derive_key("click-key-0123456789"))
    token = signer.sign("adv_abc", 2_000)
    assert signer.verify(token, now=1_999).advocate_id == "adv_abc"
    assert signer.verify(token, now=2_000) == "expired"
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert signer.verify(flipped, now=0) == "invalid"
    assert SharePageSigner("another-key-0123456789").verify(token, now=0) == "invalid"
    assert signer.verify("", now=0) == "invalid" and signer.verify("!!", now=0) == "invalid"
    assert "adv_abc" not in token  # not readable as text at a glance; the MAC protects it
    assert derive_key("k" * 20) != "k" * 20


def test_share_image_is_1200_by_630_in_the_shops_colour():
    png = image.render("I got 10 EUR at Shop " * 12, "— Anna", "10 EUR off", "#aa3300")
    picture = Image.open(BytesIO(png))
    assert picture.size == (1200, 630) and picture.format == "PNG"
    assert picture.convert("RGB").getpixel((5, 5)) == (0xAA, 0x33, 0x00)
    assert image.ink_for((255, 255, 255)) == (17, 17, 17)
    assert image.ink_for((0, 0, 0)) == (255, 255, 255)


def test_wrap_keeps_every_line_within_the_width():
    lines = image.wrap("a " * 10 + "b" * 50, lambda line: len(line) <= 12)
    assert all(len(line) <= 12 for line in lines)
    assert "".join(lines).replace(" ", "") == "a" * 10 + "b" * 50
