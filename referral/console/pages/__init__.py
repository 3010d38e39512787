"""The console's pages, one module per part of the program a team works on, assembled into
one router under `/console` with the session and form dependencies and error pages."""

from __future__ import annotations

from litestar import Router

from referral.console.pages import advocates, auth, overview, referrals, review
from referral.console.pages.common import DEPENDENCIES, EXCEPTION_HANDLERS

console_router = Router(
    path="/console",
    route_handlers=[
        auth.sign_in_form,
        auth.sign_in,
        auth.sign_out,
        auth.signed_out,
        auth.switch_mode,
        overview.overview,
        overview.report_csv,
        advocates.advocates_page,
        advocates.advocate_page,
        referrals.referral_page,
        referrals.decide,
        review.queue,
        review.decide,
    ],
    dependencies=DEPENDENCIES,
    exception_handlers=dict(EXCEPTION_HANDLERS),
    include_in_schema=False,
)
