"""The webhook's HTTPS server: ``POST /mutate``, ``POST /validate`` (AdmissionReview v1),
``GET /healthz``, on its own port (``--webhook-port``) so the kubelet API's client-certificate
rules stay its own. TLS is the runner's context (the chart's certificate, or self-signed)."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from vk_eci.admission.imagecache import mutate, validate
from vk_eci.admission.review import Webhook
from vk_eci.log import node_logger

MAX_BODY = 3 * 1024 * 1024  # the API server's request limit for an object is 3 MiB


def app(hook: Webhook) -> web.Application:
    def handler(decide: Callable[[Webhook, Mapping[str, Any]], Awaitable[dict[str, Any]]]
                ) -> Any:
        async def handle(request: web.Request) -> web.Response:
            try:
                review = await request.json()
                req = review["request"]
            except (ValueError, KeyError, TypeError):
                return web.json_response({"error": "expected an AdmissionReview"}, status=400)
            return web.json_response(await decide(hook, req))
        return handle

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    application = web.Application(client_max_size=MAX_BODY)
    application.router.add_post("/mutate", handler(mutate))
    application.router.add_post("/validate", handler(validate))
    application.router.add_get("/healthz", healthz)
    return application


async def serve(hook: Webhook, host: str, port: int, ctx: ssl.SSLContext) -> web.AppRunner:
    runner = web.AppRunner(app(hook), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ctx).start()
    node_logger.info("admission webhook listening on https://%s:%d", host, port)
    return runner
