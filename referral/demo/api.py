"""The demo landing page: what a shop's landing page receives from the redirect.

Mounted only with REFERRAL_DEMO_PAGES=1 (what `make run` on the embedded database sets).
"""

from __future__ import annotations

import html

from litestar import Request, Response, Router, get
from litestar.params import FromQuery

from referral.runtime import Runtime
from referral.web import security


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
    token_js = html.escape(ref_token if token else "")
    base_h = html.escape(base)
    order_suffix = token.click_id[:8] if token else "1"
    nonce = security.new_nonce()
    body = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Demo shop</title>
<style nonce="{nonce}">
body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem}}
code,pre{{background:#f4f4f4;padding:.1rem .3rem;border-radius:4px}}pre{{padding:1rem;
overflow-x:auto}}</style></head><body>
<h1>Welcome to the demo shop</h1>
<p>You arrived through a referral link. A real shop stores these two values first-party
(cookie or session) and sends them back with the signup and the order:</p>
<ul><li>code: <code>{html.escape(ref)}</code></li>
<li>click token: <code>{html.escape(ref_token[:24])}…</code> ({html.escape(decoded)})</li></ul>
<p>Next, as the shop's checkout would (KEY is the demo secret key from the banner). The
demo program holds rewards 0 days, so the advocate's reward is approved within a minute.</p>
<pre>KEY=sk_test_…
# 1. Would the friend offer apply to a 50 EUR cart?
curl -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
  -d '{{"ref_token": "{token_js}", "email": "friend@example.com",
       "subtotal": 5000, "currency": "EUR"}}' {base_h}/v1/checkout/quote

# 2. The friend pays: record the order (both parties are rewarded)
curl -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\
  -d '{{"order_id": "demo-{order_suffix}", "customer_id": "friend-{order_suffix}",
       "email": "friend@example.com", "subtotal": 5000, "total": 5000, "currency": "EUR",
       "ref_token": "{token_js}", "occurred_at": "'$(date -u +%FT%TZ)'"}}' {base_h}/v1/orders

# 3. The rewards, approved once the hold has passed
curl -H "Authorization: Bearer $KEY" "{base_h}/v1/rewards?status=approved"</pre>
</body></html>"""
    return Response(body, media_type="text/html", headers=security.page_headers(nonce))


demo_router = Router(path="/", route_handlers=[demo_landing])
