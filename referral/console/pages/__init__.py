"""The console's pages, one module per part of the program a team works on, assembled into
one router under `/console` with the session and form dependencies and error pages."""

from __future__ import annotations

from litestar import Router

from referral.console.pages import (
    advocates,
    auth,
    overview,
    payouts,
    referrals,
    review,
    settings,
    stories,
)
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
        payouts.payouts_page,
        payouts.preview_page,
        payouts.create_batch,
        payouts.batch_page,
        payouts.batch_step,
        payouts.fail_line,
        payouts.payouts_csv,
        payouts.rewards_csv,
        stories.stories_page,
        stories.story_image,
        stories.moderate,
        settings.settings_page,
        settings.program_page,
        settings.save_program,
        settings.change_lifecycle,
        settings.fraud_page,
        settings.preview_policy,
        settings.save_policy,
    ],
    dependencies=DEPENDENCIES,
    exception_handlers=dict(EXCEPTION_HANDLERS),
    include_in_schema=False,
)
