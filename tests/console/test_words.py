"""The console speaks English and Swedish: every catalogue says everything in both."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import date

import pytest

from referral.console import words
from referral.console.pages import __path__ as pages_path


def _catalogues():
    yield "common", words.COMMON
    for module in pkgutil.iter_modules(pages_path):
        found = getattr(
            importlib.import_module(f"referral.console.pages.{module.name}"), "WORDS", None
        )
        if found is not None:
            yield module.name, found


@pytest.mark.parametrize(("name", "catalogue"), list(_catalogues()))
def test_every_key_is_in_both_languages(name, catalogue):
    assert set(catalogue) == {"en", "sv"}, name
    assert set(catalogue["en"]) == set(catalogue["sv"]), set(catalogue["en"]) ^ set(catalogue["sv"])
    for locale in ("en", "sv"):
        assert all(text.strip() for text in catalogue[locale].values()), (name, locale)


def test_figures_read_as_each_language_writes_them():
    assert words.number(12480, "en") == "12,480"
    assert words.number(12480, "sv") == "12\u00a0480"
    assert words.percent(0.125, "en") == "12.5%"
    assert words.percent(0.125, "sv") == "12,5\u00a0%"
    assert words.percent(None, "en") == "—"
    assert words.money(125000, "EUR", "sv") == "1\u00a0250 EUR"
    assert words.day(date(2026, 3, 2), "sv") == "2 mars 2026"
    assert words.status("in_review", "sv") == "granskas"
    assert words.status("something_new", "en") == "something new"
    assert words.fact(True, "sv") == "ja"
