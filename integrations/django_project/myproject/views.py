"""Views of the example project: sync and async, HTML, JSON and a request body."""

from __future__ import annotations

import asyncio
import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        '<!doctype html><link rel="stylesheet" href="/static/css/site.css">'
        "<h1>Django on Sandman</h1>"
    )


async def ping(request: HttpRequest) -> JsonResponse:
    await asyncio.sleep(0)  # an async view runs on the server's event loop
    return JsonResponse(
        {"pong": True, "path": request.path, "scheme": request.scheme, "q": request.GET.get("q")}
    )


@csrf_exempt
def echo(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body or b"{}")
    return JsonResponse({"method": request.method, "received": data}, status=201)
