"""The text of a page as its reader sees it: what a browser shows, without the head, scripts,
styles, attributes or hidden elements, whitespace collapsed; a status pill on a line of its
own, as the page lays it out. Tests of wording assert on this,
not on the HTML source (where a share button's message to a friend sits in an attribute)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = {"head", "script", "style", "template", "textarea"}
_BLOCKS = {
    "p",
    "li",
    "h1",
    "h2",
    "h3",
    "section",
    "header",
    "br",
    "div",
    "label",
    "figcaption",
    "blockquote",
    "legend",
    "button",
    "a",
}
_VOID = {"br", "img", "input", "meta", "link", "hr"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, hidden, block)

    def _hidden(self) -> bool:
        return any(hidden for _, hidden, _ in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        hidden = tag in _SKIPPED or "hidden" in names or "sr-only" in (names.get("class") or "")
        block = tag in _BLOCKS or "status" in (names.get("class") or "").split()
        if block:
            self.parts.append("\n")
        if tag not in _VOID:
            self.stack.append((tag, hidden, block))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                if self.stack[i][2]:
                    self.parts.append("\n")
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if not self._hidden():
            self.parts.append(data)


def visible_text(page: str) -> str:
    """The page's visible text: one line per block, spaces collapsed."""
    parser = _Text()
    parser.feed(page)
    lines = (re.sub(r"\s+", " ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)
