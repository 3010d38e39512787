"""`/metrics` for Prometheus: request latency per route and status, the click writer, the
database pool (per instance, summed over its workers) and the workers' lags (from the
database). Unauthenticated, like /healthz: it holds no merchant's data; keep it off the
public internet at the load balancer if its route names are yours to hide."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from referral.lib import metrics
from referral.operations import service


@get("/metrics", include_in_schema=False)
async def metrics_page(state: State) -> Response[bytes]:
    runtime = state.runtime
    metrics.sample_pool(runtime.pool.get_size(), runtime.pool.get_idle_size())
    lags = await service.lags(runtime.pool)
    return Response(
        metrics.exposition(lags),
        media_type=metrics.CONTENT_TYPE,
        headers={"cache-control": "no-store"},
    )
