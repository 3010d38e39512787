"""Where each share button goes: the network's share intent for a text and a URL.

Targets are fixed per channel, never taken from the request, so the tracked share redirect
cannot be turned into an open redirect. `copy` and `share_sheet` happen in the browser:
they are recorded but have no intent URL.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

# The buttons in the order the pages show them.
NETWORK_CHANNELS = ("whatsapp", "email", "sms", "x", "facebook", "linkedin")
BROWSER_CHANNELS = ("copy", "share_sheet")
SHARE_CHANNELS = NETWORK_CHANNELS + BROWSER_CHANNELS

LABELS = {
    "whatsapp": "WhatsApp",
    "email": "Email",
    "sms": "SMS",
    "x": "X",
    "facebook": "Facebook",
    "linkedin": "LinkedIn",
}


def intent_url(channel: str, *, text: str, url: str, subject: str) -> str | None:
    """The share intent of `channel` for `text` and `url`; None for a browser-only channel.
    KeyError for an unknown channel (the caller answers 404)."""
    message = f"{text} {url}"
    if channel == "whatsapp":
        return "https://wa.me/?" + urlencode({"text": message})
    if channel == "email":
        # mailto: wants %20 for spaces, not "+".
        return f"mailto:?subject={quote(subject)}&body={quote(message)}"
    if channel == "sms":
        return f"sms:?&body={quote(message)}"
    if channel == "x":
        return "https://x.com/intent/post?" + urlencode({"text": text, "url": url})
    if channel == "facebook":
        return "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url})
    if channel == "linkedin":
        return "https://www.linkedin.com/sharing/share-offsite/?" + urlencode({"url": url})
    if channel in BROWSER_CHANNELS:
        return None
    raise KeyError(channel)
