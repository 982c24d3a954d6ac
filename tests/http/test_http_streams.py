"""Resumable streams across replicas (issue 18, part 2): a real redis-server, two HTTP servers on
loopback (each its own uvicorn and event loop) in front of one sandbox, raw httpx for the SSE part so
the test controls `Last-Event-ID`, and Redis read back directly to see what was stored."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import redis
from mcp_types import JSONRPCNotification, JSONRPCResponse

from stripe_identity_mcp import event_store
from tests import loopback
from tests.conftest import SANDBOX_KEY, make_settings
from tests.export.helpers import jsonl_ids, live_ids
from tests.http.conftest import INIT, MCP_HEADERS, http_client, http_server, make_tokens

PV = "2025-11-25"  # the first protocol version with priming events (and so resumable request streams)
BOUND_S = 60  # every test is bounded: a hang fails it

pytestmark = pytest.mark.anyio


def entry_of(event_id: str) -> tuple[int, int]:
    """The Redis entry id inside our event id, as a comparable pair."""
    ms, seq = event_id.rsplit(".", 1)[1].split("-")
    return int(ms), int(seq)


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """SSE events (id/event/data) as the server framed them; comments (pings) are skipped."""
    event: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        event[name] = event[name] + "\n" + value if name == "data" and name in event else value
    if event:
        yield event


def headers(token: str, session_id: str | None = None) -> dict[str, str]:
    out = {**MCP_HEADERS, "Authorization": f"Bearer {token}", "mcp-protocol-version": PV}
    if session_id is not None:
        out["mcp-session-id"] = session_id
    return out


async def open_session(http: httpx.AsyncClient, url: str, token: str) -> str:
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": PV}}  # type: ignore[dict-item]
    async with http.stream("POST", url, json=init, headers=headers(token)) as r:
        assert r.status_code == 200, await r.aread()
        session_id = r.headers["mcp-session-id"]
        assert [e async for e in sse_events(r) if e.get("data")], "no initialize result"
    done = await http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers(token, session_id)
    )
    assert done.status_code == 202
    return session_id


def export_call(request_id: int, filename: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "export_customers", "arguments": {"filename": filename}, "_meta": {"progressToken": "p"}},
    }


def is_progress(event: dict[str, str]) -> bool:
    return bool(event.get("data")) and json.loads(event["data"]).get("method") == "notifications/progress"


def redis_dump(url: str) -> list[str]:
    """Every key and value in Redis, as text."""
    r = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)
    out = []
    for key in r.scan_iter(count=500):
        out.append(key)
        kind = r.type(key)
        if kind == "stream":
            out += [json.dumps(fields) + entry for entry, fields in r.xrange(key)]
        elif kind == "hash":
            out.append(json.dumps(r.hgetall(key)))
        else:
            out.append(repr(r.dump(key)))
    return out


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.toml"
    return path, make_tokens(path, ("bot", "read-only"), ("other", "read-only"))


def replica_settings(sb: Any, tmp_path: Path, tokens_file: Path, redis_url: str, **extra: Any) -> Any:
    return make_settings(
        sb, tokens_file=tokens_file, redis_url=redis_url, export_dir=tmp_path / "exports", audit_log=tmp_path / "a.jsonl",
        **extra,
    )  # fmt: skip


async def start_and_drop(http: httpx.AsyncClient, url: str, token: str, session_id: str, call: dict[str, Any]) -> list[dict[str, str]]:
    """POST the call, read up to its first progress notification, drop the connection."""
    seen: list[dict[str, str]] = []
    async with http.stream("POST", url, json=call, headers=headers(token, session_id)) as r:
        assert r.status_code == 200
        async for event in sse_events(r):
            seen.append(event)
            if is_progress(event):
                break
    assert seen and is_progress(seen[-1]) and seen[-1].get("id"), seen
    return seen


async def test_dropped_stream_resumes_on_another_replica_with_exactly_the_missed_events(
    sandbox_factory, redis_server, tmp_path, tokens
):
    tokens_file, tok = tokens
    # Upstream latency makes the export take several pages' time, so replica B resumes while A still works.
    with sandbox_factory(latency_ms=150) as sb:
        settings = replica_settings(sb, tmp_path, tokens_file, redis_server.url)
        with http_server(settings) as a, http_server(settings) as b, anyio.fail_after(BOUND_S):
            async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
                session_id = await open_session(http, a.url, tok["bot"])
                seen = await start_and_drop(http, a.url, tok["bot"], session_id, export_call(7, "all.jsonl"))
                last = seen[-1]["id"]
                resume = {**headers(tok["bot"], session_id), "Last-Event-ID": last}
                async with http.stream("GET", b.url, headers=resume) as r:
                    assert r.status_code == 200
                    assert r.headers["content-type"].startswith("text/event-stream")
                    resumed = [e async for e in sse_events(r)]

        # What replica A stored for that stream, read from Redis: the events after `last` are exactly
        # what B sent (the priming event carries no message and is not replayed).
        ref = event_store.parse_event_id(last)
        assert ref is not None
        stored = redis.Redis.from_url(redis_server.url, decode_responses=True).xrange(ref.stream_key)
        expected = [
            (f"{last.rsplit('.', 1)[0]}.{entry}", fields["m"]) for entry, fields in stored
            if entry_of("x." + entry) > entry_of(last) and fields["k"] != "p"
        ]  # fmt: skip
        assert [(e["id"], e["data"]) for e in resumed] == expected
        assert all(e["event"] == "message" for e in resumed)
        ids = [entry_of(e["id"]) for e in resumed]
        assert ids == sorted(set(ids)) and ids[0] > entry_of(last)  # strictly after, strictly increasing
        assert any(is_progress(e) for e in resumed)  # at least the final "done" progress was missed
        final = json.loads(resumed[-1]["data"])
        assert final["id"] == 7 and not final["result"].get("isError"), final
        summary = final["result"]["structuredContent"]
        exported = jsonl_ids(Path(summary["path"]))
        assert summary["count"] == len(exported) and set(exported) == live_ids(sb)  # what the sandbox holds

        dump = "\n".join(redis_dump(redis_server.url))
        for secret in (*tok.values(), SANDBOX_KEY, session_id):
            assert secret not in dump  # no bearer token, API key or session id in any key or value
        assert ref.stream_key in dump  # (the dump did read the stored events)


async def test_resume_by_another_principal_or_for_an_unknown_stream_is_404(sandbox, redis_server, tmp_path, tokens):
    tokens_file, tok = tokens
    settings = replica_settings(sandbox, tmp_path, tokens_file, redis_server.url)
    with http_server(settings) as a, http_server(settings) as b, anyio.fail_after(BOUND_S):
        async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
            session_id = await open_session(http, a.url, tok["bot"])
            async with http.stream("POST", a.url, json=export_call(3, "x.jsonl"), headers=headers(tok["bot"], session_id)) as r:
                first = [e async for e in sse_events(r)]
            primed = first[0]["id"]
            assert primed and not first[0]["data"]  # the priming event opens the stream
            for replica in (b, a):  # another replica (answered from Redis) and the session's own
                stranger = {**headers(tok["other"], session_id), "Last-Event-ID": primed}
                refused = await http.get(replica.url, headers=stranger)
                assert refused.status_code == 404 and "event:" not in refused.text and "data:" not in refused.text
            # the owner, but a session id that is not the stream's; and an id that names no stream
            wrong_session = {**headers(tok["bot"], "not-the-session"), "Last-Event-ID": primed}
            assert (await http.get(b.url, headers=wrong_session)).status_code == 404
            bogus = {**headers(tok["bot"], session_id), "Last-Event-ID": primed.rsplit(".", 2)[0] + ".0.1-0"}
            assert (await http.get(b.url, headers=bogus)).status_code == 404
            # the owner resumes on B: the whole stream after the priming event, ending with the result
            owner = {**headers(tok["bot"], session_id), "Last-Event-ID": primed}
            async with http.stream("GET", b.url, headers=owner) as r:
                assert r.status_code == 200
                again = [e async for e in sse_events(r)]
            assert [e["data"] for e in again] == [e["data"] for e in first[1:]]
            # and on A, which holds the session, the SDK replays from the same store (it then keeps the
            # stream open for live events, so read up to the result)
            async with http.stream("GET", a.url, headers=owner) as r:
                assert r.status_code == 200
                local: list[dict[str, str]] = []
                async for event in sse_events(r):
                    if event.get("data"):
                        local.append(event)
                    if event.get("data") and json.loads(event["data"]).get("id") == 3:
                        break
            assert [e["data"] for e in local] == [e["data"] for e in first[1:]]
        # the 2026-07-28 requests (no session, no event ids) are served as before through the same front
        async with http_client(a.url, tok["bot"], mode="auto") as client:
            result = await client.call_tool("list_customers", {"limit": 2})
            assert not result.is_error and result.structured_content


async def test_events_beyond_the_retention_are_gone_and_resuming_from_them_says_so(
    sandbox_factory, redis_server, tmp_path, tokens
):
    tokens_file, tok = tokens
    # Redis trims `MAXLEN ~` by whole nodes (100 entries by default); one entry per node makes the
    # trimming exact, so a stream of a few events shows the cap.
    redis.Redis.from_url(redis_server.url).config_set("stream-node-max-entries", 1)
    with sandbox_factory(latency_ms=100) as sb:
        settings = replica_settings(sb, tmp_path, tokens_file, redis_server.url, stream_max_events=2, stream_ttl_s=2)
        with http_server(settings) as a, http_server(settings) as b, anyio.fail_after(BOUND_S):
            async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
                session_id = await open_session(http, a.url, tok["bot"])
                async with http.stream("POST", a.url, json=export_call(4, "y.jsonl"), headers=headers(tok["bot"], session_id)) as r:
                    events = [e async for e in sse_events(r)]
                assert len(events) >= 4  # priming, progress…, done, result
                ref = event_store.parse_event_id(events[0]["id"])
                assert ref is not None
                key = ref.stream_key
                store = redis.Redis.from_url(redis_server.url, decode_responses=True)
                assert store.xlen(key) == 2  # the cap: only the last two events are kept
                assert 0 < store.ttl(key) <= 2  # and only for stream_ttl_s after the last one

                evicted = await http.get(b.url, headers={**headers(tok["bot"], session_id), "Last-Event-ID": events[0]["id"]})
                assert evicted.status_code == 410
                assert "no longer kept" in evicted.json()["error"]["message"]
                kept = {**headers(tok["bot"], session_id), "Last-Event-ID": events[-2]["id"]}
                async with http.stream("GET", b.url, headers=kept) as r:
                    assert [e["data"] for e in [e async for e in sse_events(r)]] == [events[-1]["data"]]

                with anyio.fail_after(10):  # the TTL: bounded wait until Redis has expired the stream
                    while store.exists(key):
                        await anyio.sleep(0.1)
                expired = await http.get(b.url, headers=kept)
                assert expired.status_code == 404 and "expired" in expired.json()["error"]["message"]


@pytest.mark.parametrize("outage", ["stopped", "silent"])
async def test_with_redis_down_tool_calls_still_succeed_without_resumability(
    sandbox, redis_server, tmp_path, tokens, caplog, outage
):
    tokens_file, tok = tokens
    redis_server.stop()
    silent = socket.socket()  # "silent": accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1] if outage == "silent" else redis_server.port
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    settings = replica_settings(sandbox, tmp_path, tokens_file, url)
    caplog.set_level(logging.WARNING, logger="stripe_identity_mcp.event_store")
    with http_server(settings) as a, anyio.fail_after(BOUND_S):
        async with http_client(a.url, tok["bot"]) as client:
            result = await client.call_tool("list_customers", {"limit": 3})
            assert not result.is_error and result.structured_content
        async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
            session_id = await open_session(http, a.url, tok["bot"])
            async with http.stream("POST", a.url, json=export_call(5, "z.jsonl"), headers=headers(tok["bot"], session_id)) as r:
                events = [e async for e in sse_events(r)]
            final = json.loads(events[-1]["data"])
            assert final["id"] == 5 and final["result"]["structuredContent"]["count"] == len(live_ids(sandbox))
            assert not any(e.get("id") for e in events)  # no event id: the client is not offered a resume
            resume = {**headers(tok["bot"], session_id), "Last-Event-ID": "0.0.1-0"}
            assert (await http.get(a.url, headers=resume)).status_code in (404, 503)
    silent.close()
    warnings = [r.getMessage() for r in caplog.records if r.name == "stripe_identity_mcp.event_store"]
    assert any("unreachable" in w and "without resumability" in w for w in warnings), warnings
    assert "hunter2-secret" not in caplog.text


async def test_a_stream_that_lost_an_event_while_redis_was_down_is_refused_not_replayed_with_a_hole(
    sandbox, redis_server, tmp_path, tokens, monkeypatch
):
    """Replica A's side is the store itself (what A's SDK calls, in A's session scope), so the failed
    write falls exactly between two events (Redis refuses it: an ACL, data kept, unlike a restart);
    replica B is a real server answering the resume over HTTP."""
    tokens_file, tok = tokens
    monkeypatch.setattr(event_store, "RETRY_AFTER_S", 0.0)  # try Redis again at once after the outage
    settings = replica_settings(sandbox, tmp_path, tokens_file, redis_server.url)
    writer = event_store.RedisEventStore(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url)
    session_id = "a-session-of-replica-a"
    scope = event_store.StreamScope(
        principal=event_store.principal_hash("token:bot"), session=event_store.session_hash(session_id)
    )
    progress = JSONRPCNotification(jsonrpc="2.0", method="notifications/progress", params={"progressToken": "p", "progress": 1})
    with http_server(settings) as b, anyio.fail_after(BOUND_S):
        await writer.open()
        token = event_store.CURRENT_SCOPE.set(scope)
        try:
            primed = await writer.store_event("9", None)
            first = await writer.store_event("9", progress)
            admin.acl_setuser("default", enabled=True, reset=False, commands=["-xadd"])  # Redis refuses A's next write
            assert await writer.store_event("9", progress) == ""  # lost: no id for the client to resume from
            admin.acl_setuser("default", enabled=True, reset=False, commands=["+xadd"])
            done = await writer.store_event("9", JSONRPCResponse(jsonrpc="2.0", id=9, result={}))
        finally:
            event_store.CURRENT_SCOPE.reset(token)
            await writer.aclose()
        assert primed and first and done
        async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
            for before_the_gap in (primed, first):
                r = await http.get(b.url, headers={**headers(tok["bot"], session_id), "Last-Event-ID": before_the_gap})
                assert r.status_code == 410 and "could not be stored" in r.json()["error"]["message"]
            # after the gap the stream is whole again: from the response on there is nothing more to send
            r = await http.get(b.url, headers={**headers(tok["bot"], session_id), "Last-Event-ID": done})
            assert r.status_code == 200 and "data:" not in r.text


async def test_oauth_people_resume_only_their_own_streams(sandbox, redis_server, tmp_path):
    """Two people with the same scopes share one capability server (and its session manager): only the
    principal binding (client, issuer, subject) keeps one from resuming the other's stream."""
    from tests.http.oauth_issuer import running_issuer

    audience = "https://mcp.example.test/mcp"
    with running_issuer() as issuer:
        settings = make_settings(
            sandbox, oauth_issuer=issuer.url, oauth_audience=audience, redis_url=redis_server.url,
            audit_log=tmp_path / "a.jsonl",
        )  # fmt: skip
        alice, bob = issuer.mint(audience), issuer.mint(audience, sub="user-5678", email="bob@example.com")
        call = {"jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": {"name": "list_customers", "arguments": {"limit": 2}}}
        with http_server(settings) as a, http_server(settings) as b, anyio.fail_after(BOUND_S):
            async with loopback.AsyncClient(timeout=httpx.Timeout(30, read=BOUND_S)) as http:
                session_id = await open_session(http, a.url, alice)
                async with http.stream("POST", a.url, json=call, headers=headers(alice, session_id)) as r:
                    events = [e async for e in sse_events(r)]
                primed = events[0]["id"]
                assert primed and json.loads(events[-1]["data"])["id"] == 11
                for replica in (b, a):
                    stranger = await http.get(replica.url, headers={**headers(bob, session_id), "Last-Event-ID": primed})
                    assert stranger.status_code == 404 and "data:" not in stranger.text
                async with http.stream("GET", b.url, headers={**headers(alice, session_id), "Last-Event-ID": primed}) as r:
                    assert r.status_code == 200
                    assert [e["data"] for e in [e async for e in sse_events(r)]] == [events[-1]["data"]]
