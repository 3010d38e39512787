"""Who is visiting: bot detection, the client's IP and its privacy-safe hashes.

Only link unfurlers and crawlers are bots (curl is a visitor): counting previews as clicks
is the classic referral-stats bug. IPs are never stored raw: HMACs of the address and of
its network (/24 for IPv4, /64 for IPv6) with a server secret.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from hashlib import sha256

_BOT_UA = re.compile(
    r"facebookexternalhit|facebot|facebookcatalog|meta-externalagent|slackbot|slack-imgproxy"
    r"|twitterbot|whatsapp|telegrambot|discordbot|linkedinbot|skypeuripreview|pinterest"
    r"|redditbot|applebot|googlebot|google-inspectiontool|adsbot-google|mediapartners-google"
    r"|bingbot|bingpreview|msnbot|yandex|baiduspider|duckduckbot|petalbot|ahrefsbot|semrushbot"
    r"|mj12bot|dotbot|embedly|iframely|vkshare|viber|snapchat|mastodon|bluesky|cardyb"
    r"|outbrain|quora link preview|nuzzel|w3c_validator|crawler|spider|\bbot\b",
    re.IGNORECASE,
)


def is_bot(user_agent: str, method: str) -> bool:
    return method == "HEAD" or (bool(user_agent) and _BOT_UA.search(user_agent) is not None)


def client_ip(
    peer: str | None,
    forwarded_for: str | None,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The visitor's address: X-Forwarded-For is believed only when the peer is a trusted
    proxy, and then the right-most address not itself a trusted proxy wins."""
    try:
        address = ipaddress.ip_address(peer) if peer else None
    except ValueError:
        return None
    if address is None or not forwarded_for or not trusted:
        return address
    if not any(address in net for net in trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        try:
            hop_address = ipaddress.ip_address(hop.strip())
        except ValueError:
            return address
        if not any(hop_address in net for net in trusted):
            return hop_address
        address = hop_address
    return address


class IpHasher:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def hashes(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    ) -> tuple[bytes | None, bytes | None]:
        """(address HMAC, network HMAC), 16 bytes each."""
        if address is None:
            return None, None
        prefix = 24 if address.version == 4 else 64
        network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        return (
            hmac.new(self._key, address.packed, sha256).digest()[:16],
            hmac.new(self._key, network.network_address.packed + bytes([prefix]), sha256).digest()[
                :16
            ],
        )
