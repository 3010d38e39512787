"""The API docs page (`/openapi`): Swagger UI, served by this deployment itself.

Swagger UI's files come from the `swagger-ui-py` package (its `static/` folder, Swagger UI 5)
and the initializer from `web/static/docs.js`, all under `/openapi/assets/`: nothing from a
CDN or a font service, so the page works offline and sends no reader's address to anyone
else. It runs under the same Content-Security-Policy as every page (`web/security.py`): no
inline script (the initializer is a served file, the spec is fetched from
`/openapi/openapi.json`) and no inline style (Swagger UI 5 styles its elements through the
DOM, which a policy does not block; its stylesheet's icons are `data:` images).
"""

from __future__ import annotations

import html
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

from litestar import Request, Router, get
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import OpenAPIRenderPlugin
from litestar.params import FromPath
from litestar.response import File


def _swagger_ui_static() -> Path:
    """The package's `static/` folder, found without importing the package (which would
    import its framework adapters)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; it is a dependency of referral")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


_SWAGGER = _swagger_ui_static()
_OWN = Path(__file__).resolve().parent / "static"
# What the page loads, and nothing else of the package (no editor, no OAuth redirect page).
ASSETS = {
    "swagger-ui.css": (_SWAGGER / "swagger-ui.css", "text/css"),
    "index.css": (_SWAGGER / "index.css", "text/css"),
    "swagger-ui-bundle.js": (_SWAGGER / "swagger-ui-bundle.js", "text/javascript"),
    "favicon-32x32.png": (_SWAGGER / "favicon-32x32.png", "image/png"),
    "docs.js": (_OWN / "docs.js", "text/javascript"),
}
# In the asset URLs, so an upgrade of either is fetched anew despite the day of caching.
_VERSION = importlib.metadata.version("swagger-ui-py")
ASSET_CACHE = "public, max-age=86400"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} API</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png?v={version}">
<link rel="stylesheet" href="{assets}/index.css?v={version}">
<link rel="stylesheet" href="{assets}/swagger-ui.css?v={version}">
</head>
<body>
<noscript><p>The API docs need JavaScript. The OpenAPI document itself is at
<a href="{spec}">{spec}</a>.</p></noscript>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{assets}/swagger-ui-bundle.js?v={version}"></script>
<script src="{assets}/docs.js?v={version}"></script>
</body>
</html>
"""


class SwaggerDocs(OpenAPIRenderPlugin):
    """Swagger UI at the OpenAPI root (and at `/swagger` under it), its files served locally."""

    def __init__(self, path: str | list[str] | None = None) -> None:
        super().__init__(path=path or ["/", "/swagger"])
        self._assets = "/assets"
        self._page: bytes | None = None

    def receive_router(self, router: Router) -> None:
        """Serve the page's files beside it, under `<openapi path>/assets/`."""
        self._assets = f"{router.path.rstrip('/')}/assets"

        @get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
        def docs_asset(name: FromPath[str]) -> File:
            found = ASSETS.get(name)
            if found is None:
                raise NotFoundException(f"No docs asset named {name!r}")
            path, media_type = found
            return File(
                path,
                media_type=media_type,
                content_disposition_type="inline",
                headers={"cache-control": ASSET_CACHE},
            )

        router.register(docs_asset)

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        if self._page is None:  # the same for every request: built once
            self._page = _PAGE.format(
                title=html.escape(str(openapi_schema["info"]["title"])),
                assets=html.escape(self._assets),
                spec=html.escape(self.get_openapi_json_route(request)),
                version=html.escape(_VERSION),
            ).encode()
        return self._page
