"""The demo landing page: what a shop's landing page receives from the redirect.

Mounted only with REFERRAL_DEMO_PAGES=1 (what `make run` on the embedded database sets).
"""

from __future__ import annotations

import html

from litestar import Request, Response, Router, get
from litestar.params import FromQuery

from referral.runtime import Runtime


@get("/demo/landing", include_in_schema=False)
async def demo_landing(
    request: Request, ref: FromQuery[str] = "", ref_token: FromQuery[str] = ""
) -> Response[str]:
    runtime: Runtime = request.app.state.runtime
    token = runtime.signer.verify(ref_token)
    base = runtime.settings.public_base_url
    decoded = (
        f"click {token.click_id[:12]}…, channel {token.channel}, visitor {token.visitor_id}"
        if token
        else "missing or not valid"
    )
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Demo shop</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}}
code,pre{{background:#f4f4f4;padding:.1rem .3rem;border-radius:4px}}pre{{padding:1rem;
overflow-x:auto}}</style></head><body>
<h1>Welcome to the demo shop</h1>
<p>You arrived through a referral link. A real shop stores these two values first-party
(cookie or session) and sends them back with the signup and the order:</p>
<ul><li>code: <code>{html.escape(ref)}</code></li>
<li>click token: <code>{html.escape(ref_token[:24])}…</code> ({html.escape(decoded)})</li></ul>
<p>The click is recorded; see it counted on the advocate:</p>
<pre>curl -H "Authorization: Bearer $KEY" {html.escape(base)}/v1/codes/{html.escape(ref)}</pre>
</body></html>"""
    return Response(body, media_type="text/html; charset=utf-8")


demo_router = Router(path="/", route_handlers=[demo_landing])
