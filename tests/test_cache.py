"""The response cache (``--cache-size``), end to end over real sockets with httpx: what is
stored and replayed without the app (``calls=N`` in each body counts the app's calls), what
never is, ``Age``, expiry, ``Vary``, request directives, invalidation by unsafe methods, and
concurrent misses reaching the app once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.serverproc import ServerProcess, sandman

APP = "tests.cache_apps:app"
PUBLIC = "cc=public,_max-age=60"


@pytest.fixture(scope="module")
def server():
    with sandman(APP, "--cache-size", "1M", "--metrics-port", "0") as running:
        yield running


_unique = iter(range(10**6))


def url(server: ServerProcess, query: str, path: str = "/r") -> str:
    """A URL no other test uses (each gets a fresh cache key)."""
    return f"{server.url}{path}{next(_unique)}?{query}"


def calls(response: httpx.Response) -> int:
    return int(response.text.split()[0].removeprefix("calls="))


# -- stored and replayed ---------------------------------------------------------------------


def test_a_public_response_is_replayed_with_age(server):
    target = url(server, PUBLIC)
    first = httpx.get(target)
    assert calls(first) == 1 and "age" not in first.headers
    second = httpx.get(target)
    assert second.text == first.text, "from the cache"
    assert second.headers["age"] == "0"
    assert second.headers["cache-control"] == "public, max-age=60"
    assert second.headers["content-type"] == "text/plain"
    time.sleep(1.1)
    third = httpx.get(target)
    assert calls(third) == 1 and int(third.headers["age"]) >= 1


def test_head_is_answered_from_the_stored_get(server):
    target = url(server, PUBLIC)
    body = httpx.get(target).content
    r = httpx.head(target)
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(body))
    assert r.content == b""
    assert calls(httpx.get(target)) == 1


def test_s_maxage_alone_is_enough_and_wins_over_max_age(server):
    target = url(server, "cc=s-maxage=1,_max-age=60")
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target)) == 1
    time.sleep(1.2)
    assert calls(httpx.get(target)) == 2, "stale after s-maxage"


def test_an_expired_response_goes_back_to_the_app(server):
    target = url(server, "cc=public,_max-age=1")
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target)) == 1
    time.sleep(1.2)
    assert calls(httpx.get(target)) == 2


def test_a_streamed_response_is_stored_whole(server):
    target = url(server, f"{PUBLIC}&stream=1&size=5000")
    first = httpx.get(target)
    second = httpx.get(target)
    assert len(second.content) == 5000 and second.content == first.content
    assert "age" in second.headers


def test_if_none_match_on_a_stored_response_is_304(server):
    target = url(server, f"{PUBLIC}&etag=v1")
    httpx.get(target)
    r = httpx.get(target, headers={"if-none-match": '"v1"'})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == '"v1"' and "age" in r.headers
    assert calls(httpx.get(target)) == 1


def test_other_statuses_with_a_lifetime_are_stored(server):
    target = url(server, f"{PUBLIC}&status=404")
    assert httpx.get(target).status_code == 404
    r = httpx.get(target)
    assert r.status_code == 404 and calls(r) == 1 and "age" in r.headers


# -- never stored ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "cc=max-age=60",  # not marked for shared caches
        "cc=public",  # no lifetime
        "cc=public,_max-age=0",
        "cc=private,_max-age=60",
        "cc=public,_max-age=60,_private",
        "cc=public,_max-age=60,_no-store",
        "cc=public,_max-age=60,_no-cache",
        f"{PUBLIC}&cookie=1",
        f"{PUBLIC}&vary=*",
        f"{PUBLIC}&status=206",
        "",  # no Cache-Control at all
    ],
)
def test_what_is_never_stored(server, query):
    target = url(server, query)
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target)) == 2


def test_authorization_is_stored_only_when_the_response_allows_it(server):
    auth = {"authorization": "Bearer t"}
    target = url(server, "cc=max-age=60")
    assert calls(httpx.get(target, headers=auth)) == 1
    assert calls(httpx.get(target, headers=auth)) == 2
    target = url(server, PUBLIC)
    assert calls(httpx.get(target, headers=auth)) == 1
    assert calls(httpx.get(target)) == 1, "public: a shared cache may reuse it"


def test_a_response_larger_than_a_quarter_of_the_cache_is_not_stored(server):
    target = url(server, f"{PUBLIC}&size=300000")  # the cache is 1 MiB
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target)) == 2


# -- Vary and request directives -------------------------------------------------------------


def test_vary_keeps_a_variant_per_header_value(server):
    target = url(server, f"{PUBLIC}&vary=accept-language")
    en = httpx.get(target, headers={"accept-language": "en"})
    fr = httpx.get(target, headers={"accept-language": "fr"})
    assert (en.text, fr.text) == ("calls=1 lang=en", "calls=2 lang=fr")
    assert httpx.get(target, headers={"accept-language": "en"}).text == "calls=1 lang=en"
    assert httpx.get(target, headers={"accept-language": "fr"}).text == "calls=2 lang=fr"
    assert calls(httpx.get(target)) == 3, "no accept-language is a variant of its own"


def test_request_no_cache_refreshes_and_no_store_bypasses(server):
    target = url(server, PUBLIC)
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target, headers={"cache-control": "no-cache"})) == 2
    assert calls(httpx.get(target)) == 2, "the refreshed response was stored"
    assert calls(httpx.get(target, headers={"pragma": "no-cache"})) == 3
    assert calls(httpx.get(target, headers={"cache-control": "no-store"})) == 4
    assert calls(httpx.get(target)) == 3, "no-store neither took nor stored"


def test_request_max_age_caps_the_age_accepted(server):
    target = url(server, PUBLIC)
    assert calls(httpx.get(target)) == 1
    time.sleep(1.1)
    assert calls(httpx.get(target, headers={"cache-control": "max-age=0"})) == 2
    assert calls(httpx.get(target, headers={"cache-control": "max-age=30"})) == 2


# -- invalidation ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_unsafe_methods_invalidate_the_url(server, method):
    target = url(server, PUBLIC)
    assert calls(httpx.get(target)) == 1
    assert calls(httpx.get(target)) == 1
    httpx.request(method, target, content=b"change")
    assert calls(httpx.get(target)) == 3, "the GET after the change reached the app"


def test_head_responses_are_invalidated_too(server):
    target = url(server, PUBLIC)
    httpx.get(target)
    httpx.post(target)
    r = httpx.head(target)
    assert r.status_code == 200 and "age" not in r.headers


# -- concurrent misses -----------------------------------------------------------------------


def test_concurrent_misses_reach_the_app_once(server):
    target = url(server, f"{PUBLIC}&sleep=1")

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=20)
        async with httpx.AsyncClient(limits=limits, timeout=20) as client:
            return await asyncio.gather(*(client.get(target) for _ in range(20)))

    responses = asyncio.run(burst())
    assert {r.status_code for r in responses} == {200}
    assert {r.text for r in responses} == {"calls=1 lang=-"}
    path = target.split("127.0.0.1", 1)[1].split("/", 1)[1]
    assert server.stderr.count(f"APP call GET /{path.split('?')[0]}") == 1


def test_concurrent_misses_of_an_uncacheable_response_all_reach_the_app(server):
    target = url(server, "cc=private&sleep=0.5")

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20) as client:
            return await asyncio.gather(*(client.get(target) for _ in range(5)))

    responses = asyncio.run(burst())
    assert sorted(calls(r) for r in responses) == [1, 2, 3, 4, 5]


# -- the rest --------------------------------------------------------------------------------


def test_hits_have_access_lines_and_are_counted(server):
    target = url(server, PUBLIC)
    httpx.get(target)
    httpx.get(target)
    path = target.split(str(server.port), 1)[1]
    server.wait_for(rf'"GET {path.replace("?", "[?]")} HTTP/1.1" 200 OK', stream="stdout")
    port = int(server.wait_for(r"Metrics and health checks on http://[^:]+:(\d+)/").group(1))
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert "sandman_cache_hits_total " in text and "sandman_cache_hits_total 0" not in text
    assert "sandman_cache_stores_total 0" not in text


def test_no_cache_without_cache_size():
    with sandman(APP) as running:
        target = f"{running.url}/plain?{PUBLIC}"
        assert calls(httpx.get(target)) == 1
        assert calls(httpx.get(target)) == 2


def test_a_bad_cache_size_is_a_usage_error():
    from tests.serverproc import command, spawn

    proc = spawn(command(APP, "--port", "0", "--cache-size", "lots"))
    assert proc.wait(timeout=30) == 2
    assert "--cache-size 'lots'" in proc.stderr


def test_hits_over_http2(server):
    target = url(server, PUBLIC)
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        first = client.get(target)
        second = client.get(target)
    assert first.http_version == second.http_version == "HTTP/2"
    assert calls(second) == 1 and second.headers["age"] == "0"
