"""Who may call what: every operation of the API, its scope and its audit action, in one table.

A secret key is unrestricted, or limited to scopes: `checkout` (what the shop's storefront
and checkout call), `finance` (payout batches, their files, the books), `read` (every GET)
and `admin` (programs, policies, reviews, manual reward actions, keys, webhooks, customers'
data rights). The table is the only place a route's scope is said: the request check
(`referral/http/deps.py`) and the OpenAPI document (`apply_to_spec`) both read it, and a
test walks every route with every scope.

A route that changes something names the audit action it records (`audited`), or why it
records none (`unaudited`): the checkout's facts are the shop's own records, kept as they
came and told as events, not staff changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from litestar.routes import HTTPRoute

if TYPE_CHECKING:
    from litestar import Litestar

Scope = Literal["checkout", "finance", "read", "admin"]
SCOPES: tuple[Scope, ...] = ("checkout", "finance", "read", "admin")
READ_METHODS = frozenset({"GET", "HEAD"})

SCOPE_TEXT = {
    "checkout": "what the shop's storefront and checkout call: quote, signups, orders, refunds "
    "and cancellations, its customers' advocates, share URLs, contact preferences, stories "
    "and code checks",
    "finance": "payout batches, their files, payees' payout details and yearly totals, and "
    "the books (balances, ledger exports)",
    "read": "every GET",
    "admin": "programs, fraud policies, reviews, manual reward actions, the merchant's "
    "settings, keys, webhooks, imports, customers' data rights and the audit log",
}


@dataclass(frozen=True, slots=True)
class Access:
    scope: Scope | None  # None: any valid key of the merchant (or none, when `public`)
    public: bool = False  # no key at all: links, QR codes, public pages, health
    audited: str | None = None  # the audit action a successful call records
    unaudited: str | None = None  # why a change records no audit row


PUBLIC = Access(scope=None, public=True)
ANY_KEY = Access(scope=None)
FACT = "a checkout fact: recorded as it came, and told as an event"


def read(scope: Scope = "read") -> Access:
    return Access(scope=scope)


def change(scope: Scope, audited: str) -> Access:
    return Access(scope=scope, audited=audited)


def fact(scope: Scope, why: str = FACT) -> Access:
    return Access(scope=scope, unaudited=why)


OPERATIONS: dict[str, Access] = {
    # operations and public pages
    "health": PUBLIC,
    "ready": PUBLIC,
    "followReferralLink": PUBLIC,
    "headReferralLink": PUBLIC,
    "getQrPng": PUBLIC,
    "headQrPng": PUBLIC,
    "getQrSvg": PUBLIC,
    "headQrSvg": PUBLIC,
    "getSocialProof": PUBLIC,
    "sharePage": PUBLIC,
    "shareLink": PUBLIC,
    "shareContact": PUBLIC,
    "sharePagePublishStory": PUBLIC,
    "sharePagePayee": PUBLIC,
    "sharePageRedeemPoints": PUBLIC,
    "sharePageCancelRedemption": PUBLIC,
    "sharePagePreferences": PUBLIC,
    "storyPage": PUBLIC,
    "storyImage": PUBLIC,
    "storyShare": PUBLIC,
    "getWidgetScript": PUBLIC,
    "getWidgetManifest": PUBLIC,
    "getWidgetShare": PUBLIC,
    "getWidgetOffer": PUBLIC,
    # the merchant and its keys
    "getMerchant": ANY_KEY,
    "updateMerchant": change("admin", "merchant.updated"),
    "listKeys": read("admin"),
    "createKey": change("admin", "api_key.created"),
    "revokeKey": change("admin", "api_key.revoked"),
    "rollKey": change("admin", "api_key.rolled"),
    "listAuditLog": read("admin"),
    # a customer's data rights
    "exportCustomer": read("admin"),
    "eraseCustomer": change("admin", "customer.erased"),
    # programs and fraud policies
    "listPrograms": read(),
    "createProgram": change("admin", "program.created"),
    "getProgram": read(),
    "updateProgram": change("admin", "program.updated"),
    "pauseProgram": change("admin", "program.paused"),
    "resumeProgram": change("admin", "program.resumed"),
    "endProgram": change("admin", "program.ended"),
    "getFraudPolicy": read(),
    "putFraudPolicy": change("admin", "fraud_policy.replaced"),
    "backtestFraudPolicy": fact("admin", "a what-if over history: it changes nothing"),
    # experiments and holdouts
    "createExperiment": change("admin", "experiment.created"),
    "getExperiment": read(),
    "endExperiment": change("admin", "experiment.ended"),
    "setHoldout": change("admin", "holdout.set"),
    "getHoldoutReport": read(),
    # the storefront and checkout
    "upsertAdvocate": fact("checkout", "the shop's customer, as its backend reports them"),
    "getAdvocate": read(),
    "listAdvocates": read(),
    "createShareUrl": fact("checkout", "signs a link: it changes nothing"),
    "setContactPreference": fact("checkout", "the customer's own choice, as the shop reports it"),
    "getCode": read("checkout"),
    "quoteCheckout": fact("checkout", "a quote: it changes nothing"),
    "recordSignup": fact("checkout"),
    "recordOrder": fact("checkout"),
    "cancelOrder": fact("checkout"),
    "refundOrder": fact("checkout"),
    "createStory": fact("checkout", "the advocate's own story, as the shop reports it"),
    "validateCoupon": fact("checkout", "a question: it changes nothing"),
    "redeemCoupon": fact("checkout"),
    # staff actions on advocates, referrals, rewards and stories
    "addVanityCode": change("admin", "advocate.code_added"),
    "reactivateAdvocate": change("admin", "advocate.reactivated"),
    "listReferrals": read(),
    "getReferral": read(),
    "approveReferral": change("admin", "referral.approved"),
    "rejectReferral": change("admin", "referral.rejected"),
    "listRewards": read(),
    "getReward": read(),
    "approveReward": change("admin", "reward.approved"),
    "reinstateReward": change("admin", "reward.reinstated"),
    "reverseReward": change("admin", "reward.reversed"),
    "listStories": read(),
    "getStory": read(),
    "updateStory": change("admin", "story.updated"),
    # imports: switching in from another service
    "createImport": change("admin", "import.created"),
    "getImport": read(),
    "listImports": read(),
    "listImportErrors": read(),
    "getImportErrorsCsv": read(),
    # coupon pools: the shop's own codes for friends
    "createCouponPool": change("admin", "coupon_pool.created"),
    "listCouponPools": read(),
    "getCouponPool": read(),
    "addCouponCodes": change("admin", "coupon_pool.codes_added"),
    "addCouponCodesCsv": change("admin", "coupon_pool.codes_added"),
    # finance
    "listPayoutBatches": read("finance"),
    "createPayoutBatch": change("finance", "payout_batch.created"),
    "getPayoutBatch": read("finance"),
    "cancelPayoutBatch": change("finance", "payout_batch.cancelled"),
    "markPayoutBatchExported": change("finance", "payout_batch.exported"),
    "markPayoutBatchPaid": change("finance", "payout_batch.paid"),
    "listPayoutLines": read("finance"),
    "failPayoutLine": change("finance", "payout_line.failed"),
    "exportPayoutsCsv": read("finance"),
    "exportPayoutRewardsCsv": read("finance"),
    "getPaypalExport": read("finance"),
    "getLedgerBalances": read("finance"),
    "exportLedgerBalancesCsv": read("finance"),
    "exportLedgerEntriesCsv": read("finance"),
    # payees: where each customer's payouts go (finance's, so a leaked checkout key cannot
    # redirect them), and the totals paid for tax forms
    "putPayee": change("finance", "payee.updated"),
    # points, levels and the preference centre (issue 19)
    "putPointsRules": change("admin", "points_rules.updated"),
    "getPointsRules": read(),
    "getCustomerPoints": read("checkout"),
    "createPointsRedemption": fact(
        "checkout", "the customer's own spend: kept in the points journal, told as an event"
    ),
    "cancelPointsRedemption": fact(
        "checkout", "the customer's own cancel: kept in the points journal, told as an event"
    ),
    "putPreferences": fact("checkout", "the consent record keeps each change, with who made it"),
    "getPreferences": read("checkout"),
    "getPayee": read("finance"),
    "getPayeeTotals": read("finance"),
    "getPayeeYearTotals": read("finance"),
    "getBankTransferExport": read("finance"),
    # reports and the outbox
    "getAnalyticsReport": read(),
    "listEvents": read(),
    "listEventWebhookAttempts": read("admin"),
    # webhooks
    "listWebhookEndpoints": read("admin"),
    "createWebhookEndpoint": change("admin", "webhook_endpoint.created"),
    "getWebhookEndpoint": read("admin"),
    "updateWebhookEndpoint": change("admin", "webhook_endpoint.updated"),
    "deleteWebhookEndpoint": change("admin", "webhook_endpoint.deleted"),
    "rotateWebhookSecret": change("admin", "webhook_endpoint.secret_rotated"),
    "testWebhookEndpoint": fact("admin", "sends a test event: its attempt is kept as any other"),
    "listWebhookEndpointAttempts": read("admin"),
    "resendWebhookEvent": change("admin", "webhook_event.resent"),
    "recoverWebhookEndpoint": change("admin", "webhook_endpoint.recovered"),
}


def of(operation_id: str | None) -> Access | None:
    return OPERATIONS.get(operation_id) if operation_id else None


def allows(scopes: frozenset[str] | None, access: Access, method: str) -> bool:
    """Whether a key with `scopes` (None: unrestricted) may make this call."""
    if scopes is None or access.scope is None:
        return True
    return access.scope in scopes or ("read" in scopes and method in READ_METHODS)


def accepted_scopes(access: Access, methods: frozenset[str]) -> list[str]:
    """The scopes that let a key call the route, as the OpenAPI document lists them."""
    if access.scope is None:
        return []
    if methods <= READ_METHODS and access.scope != "read":
        return [access.scope, "read"]
    return [access.scope]


def apply_to_routes(app: Litestar) -> None:
    """Each operation's security requirement in the OpenAPI document, from the table: the
    scopes that admit a restricted secret key (OpenAPI 3.1 lets a bearer scheme list them),
    and the publishable key where a handler takes any key (`reader`)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            rule = of(handler.operation_id if isinstance(handler.operation_id, str) else None)
            if rule is None or rule.public:
                continue
            requirements: list[dict[str, list[str]]] = [
                {"secretKey": accepted_scopes(rule, frozenset(handler.http_methods))}
            ]
            if "reader" in handler.parsed_fn_signature.parameters:
                requirements.append({"publishableKey": []})
            handler.security = requirements
