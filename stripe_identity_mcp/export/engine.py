"""Export engine: every customer of a `created` range, paged concurrently in disjoint time windows.

How it works
------------
Stripe lists customers newest first, 100 a page, one `starting_after` cursor at a time: a plain loop
is bound by latency (one page per round trip), far below the key's rate limit. So the range
`[created_gte, created_lt)` is split into disjoint half-open windows (`created[gte]`/`created[lt]`),
each paged with its own cursor by a pool of workers. Every request goes through
`StripeClient.call`, i.e. the client's token bucket (the key's rate) and its retry policy (429 with
backoff and bucket penalty, 5xx, connection resets), so the export runs at the ceiling and backs off
when Stripe pushes back.

Windows are split adaptively, never blindly: the range starts as geometric windows back from the
cut-off (1, 8, 64, 512 days, then the rest down to the lower bound — by default Stripe's launch,
2010-01-01), paged at once within the client's burst. An idle worker then splits the window with the
largest *estimated* remaining count (its density so far × remaining span, at least three pages) at
the time midpoint of what is left. Windows without a first page are never split, so an empty region
costs one request (the years between 2010 and the account's first customer are found empty in
about log2(years / data span) requests). A window whose page is in flight can be split too: the part
of the returned page below the new lower bound belongs to the new window and is dropped, and the old
window is finished. Windows are disjoint and each is paged exactly once in Stripe's stable order, so
no record is seen twice and none is skipped; nothing needs de-duplicating in memory.

Worker count: `rate × latency × 1.2 + 1` (latency = fastest observed list call), 2 … 32, unless given.

Semantics (documented for users)
--------------------------------
* The cut-off `created_lt` is fixed when the export starts (default: the start second, local clock)
  and stored in the checkpoint; customers created after the start (created ≥ the cut-off) are never
  in the file, including on resume. Pass `created_lt` explicitly for an exact cut when your clock may
  be ahead of Stripe's.
* A customer deleted while the export runs is in the file if its page was read before the deletion,
  absent otherwise (Stripe lists never return deleted customers). If a window's cursor customer is
  deleted, the window continues from the previous record of that page.
* Records stream to the output as each page arrives (memory stays flat). Record order across windows
  is not defined; the set is. The sha256 is over the file's bytes.
* Checkpoint `<out>.checkpoint.json` (see checkpoint.py) is written at least every 0.5 s, on
  cancellation and on errors; it is removed when the export completes.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from stripe_identity_mcp.clients.errors import ApiStatusError
from stripe_identity_mcp.clients.stripe import StripeClient
from stripe_identity_mcp.export import checkpoint as ckpt
from stripe_identity_mcp.export.paths import checkpoint_path
from stripe_identity_mcp.export.writers import Encoder, Format

PAGE = 100
STRIPE_EPOCH = 1262304000  # 2010-01-01T00:00:00Z: no Stripe object is older
MIN_SPLIT = 300  # only split a window expected to hold at least three more pages
CONCURRENCY_FACTOR = 1.2  # workers = rate × latency × this + 1: just enough requests in flight
MAX_WORKERS = 32
CHECKPOINT_EVERY_S = 0.5


class ExportError(Exception):
    """An export that cannot start or continue; the message says what to do."""


@dataclass
class Window:
    """Half-open `[gte, lt)` range of `created`, paged newest first from `cursor`."""

    gte: int
    lt: int
    cursor: str | None = None
    cursor_created: int | None = None
    fallback: list[str] = field(default_factory=list)  # earlier ids of the last page (deleted-cursor recovery)
    fetched: int = 0
    busy: bool = False
    done: bool = False

    @property
    def top(self) -> int:
        """Inclusive upper bound of what is left."""
        return self.cursor_created if self.cursor_created is not None else self.lt - 1

    def density(self) -> float | None:
        if not self.fetched or self.cursor_created is None:
            return None
        return self.fetched / max(1, self.lt - self.cursor_created)

    def estimate(self) -> float | None:
        rho = self.density()
        if rho is None:
            return None
        left = rho * max(0, self.top - self.gte + 1)
        return left - PAGE if self.busy else left

    def state(self) -> ckpt.WindowState:
        return ckpt.WindowState(self.gte, self.lt, self.cursor, self.cursor_created, list(self.fallback), self.fetched)

    @classmethod
    def from_state(cls, s: ckpt.WindowState) -> Window:
        return cls(s.gte, s.lt, s.cursor, s.cursor_created, list(s.fallback), s.fetched)


INITIAL_SPANS_DAYS = (1, 8, 64, 512)


def initial_windows(gte: int, lt: int) -> list[Window]:
    """Geometric windows back from `lt` (1, 8, 64, 512 days, then the rest down to `gte`).

    They are paged at once (the client's burst allows a few requests immediately), and most accounts
    grow over time, so the recent ones tend to hold data; an empty one costs a single request.
    """
    bounds = [lt] + [lt - d * 86400 for d in INITIAL_SPANS_DAYS if lt - d * 86400 > gte] + [gte]
    return [Window(gte=lo, lt=hi) for hi, lo in zip(bounds, bounds[1:], strict=False)]


@dataclass
class Progress:
    count: int  # records delivered so far (including earlier runs when resuming)
    requests: int
    retries: int
    rate_limited: int
    seconds: float
    windows: int  # unfinished windows


Sink = Callable[[list[dict[str, Any]]], None]
OnPage = Callable[[], Awaitable[None]]


class Scanner:
    """Pages every customer of a set of disjoint windows into `sink` (synchronous, called per page)."""

    def __init__(
        self,
        stripe: StripeClient,
        windows: list[Window],
        sink: Sink,
        *,
        extra_params: dict[str, Any] | None = None,
        concurrency: int | None = None,
        on_page: OnPage | None = None,
    ) -> None:
        self.stripe = stripe
        self.windows = [w for w in windows if not w.done]
        self.sink = sink
        self.extra = extra_params or {}
        self.fixed = concurrency
        # Before any latency is known: one request per unknown window, within the client's burst.
        self.target = concurrency or max(1, min(len(self.windows), int(stripe.bucket.burst)))
        self.on_page = on_page
        self.latency: float | None = None
        self.records = 0
        self.pages = 0
        self.splits = 0
        self._event = anyio.Event()

    # scheduling ---------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    def _pick(self) -> Window | None:
        idle = [w for w in self.windows if not w.busy and not w.done]
        if not idle:
            return None
        # Unknown windows first (their first page tells where data is), then the biggest.
        return max(idle, key=lambda w: (w.cursor is None, w.estimate() or 0.0))

    def _split(self) -> Window | None:
        best: tuple[float, Window, int] | None = None
        for w in self.windows:
            est, rho = w.estimate(), w.density()
            if w.done or est is None or rho is None or est < MIN_SPLIT:
                continue
            top = w.top - (int(PAGE / rho) if w.busy else 0)  # leave the in-flight page to its window
            if top - w.gte < 1:
                continue
            if best is None or est > best[0]:
                best = (est, w, (w.gte + top + 1) // 2)
        if best is None:
            return None
        _, w, mid = best
        new = Window(gte=w.gte, lt=mid)
        w.gte = mid
        self.windows.append(new)
        self.splits += 1
        return new

    def _retarget(self, seconds: float) -> None:
        self.latency = seconds if self.latency is None else min(self.latency, seconds)
        if self.fixed is None:
            rate = self.stripe.bucket.rate
            self.target = max(2, min(MAX_WORKERS, math.ceil(rate * self.latency * CONCURRENCY_FACTOR) + 1))

    # paging -------------------------------------------------------------------------------------
    async def _fetch(self, w: Window) -> dict[str, Any]:
        while True:
            params: dict[str, Any] = {"limit": PAGE, "created": {"gte": w.gte, "lt": w.lt}, **self.extra}
            if w.cursor:
                params["starting_after"] = w.cursor
            try:
                return await self.stripe.call("GET", "/v1/customers", params)  # type: ignore[no-any-return]
            except ApiStatusError as exc:
                cursor_gone = exc.status in (400, 404) and (
                    exc.param == "starting_after" or exc.code == "resource_missing"
                )
                if not (cursor_gone and w.cursor and w.fallback):
                    raise
                w.cursor = w.fallback.pop()  # the cursor customer was deleted: continue after the one before

    def _apply(self, w: Window, body: dict[str, Any]) -> None:
        data = body.get("data") or []
        kept: list[dict[str, Any]] = []
        cut = False
        for customer in data:
            if customer.get("created", 0) < w.gte:  # split while in flight: the rest is another window's
                cut = True
                break
            kept.append(customer)
        if kept:
            self.sink(kept)
            w.fetched += len(kept)
            w.cursor = kept[-1]["id"]
            w.cursor_created = kept[-1]["created"]
            w.fallback = [c["id"] for c in kept[-4:-1]]
            self.records += len(kept)
        self.pages += 1
        if cut or not data or not body.get("has_more"):
            w.done = True
            self.windows.remove(w)

    async def _worker(self, index: int) -> None:
        while self.windows:
            event = self._event
            w = self._pick() if index < self.target else None
            if w is None and index < self.target:
                w = self._split()
            if w is None:
                await event.wait()
                continue
            w.busy = True
            started = time.monotonic()
            try:
                body = await self._fetch(w)
            finally:
                w.busy = False
            self._retarget(time.monotonic() - started)
            self._apply(w, body)
            self._changed()
            if self.on_page is not None:
                await self.on_page()
        self._changed()

    async def run(self) -> None:
        workers = self.fixed or MAX_WORKERS
        try:
            async with anyio.create_task_group() as tg:
                for index in range(workers):
                    tg.start_soon(self._worker, index)
        except BaseExceptionGroup as group:
            raise _first_cause(group) from None


def _first_cause(group: BaseExceptionGroup) -> BaseException:
    """The error that stopped the scan (not the cancellations it caused in the other workers)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            exc = _first_cause(exc)
        if not isinstance(exc, anyio.get_cancelled_exc_class()):
            return exc
    return group.exceptions[0]


@dataclass
class ExportResult:
    path: str
    format: str
    count: int
    seconds: float
    requests: int
    retries: int
    rate_limited: int
    sha256: str
    created_gte: int
    created_lt: int
    resumed: bool
    pages: int
    windows: int


ProgressFn = Callable[[Progress], Awaitable[None]]


def _hash_prefix(path: Path, offset: int) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = offset
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest


async def run_export(
    stripe: StripeClient,
    out: Path,
    fmt: Format,
    *,
    created_gte: int | None = None,
    created_lt: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
    concurrency: int | None = None,
    mode: str = "",
) -> ExportResult:
    """Export every customer with created in [created_gte, created_lt) to `out`; see the module doc.

    Raises:
        ExportError: bad parameters, nothing to resume, an existing file without resume/overwrite,
            or a checkpoint that does not match. Stripe failures propagate as StripeIdentityError
            after a checkpoint was written (the export can be resumed).
    """
    out = Path(out)
    cpath = checkpoint_path(out)
    encoder = Encoder(fmt)
    if resume:
        if not cpath.exists():
            raise ExportError(
                f"nothing to resume: no checkpoint {cpath.name} next to {out.name} "
                "(a finished export removes its checkpoint)"
            )
        try:
            state = ckpt.load(cpath)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        for name, given, saved in (
            ("format", fmt, state.format),
            ("created_gte", created_gte, state.created_gte),
            ("created_lt", created_lt, state.created_lt),
        ):
            if given is not None and given != saved:
                raise ExportError(f"resume: {name}={given!r} differs from the interrupted export's {saved!r}")
        if mode and state.mode and mode != state.mode:
            raise ExportError(f"resume: the interrupted export ran in {state.mode} mode, this key is {mode}")
        if not out.exists() or out.stat().st_size < state.offset:
            raise ExportError(f"resume: {out} is missing or shorter than the checkpoint says; start again")
        with open(out, "r+b") as f:
            f.truncate(state.offset)  # drop a half-written tail
        digest = _hash_prefix(out, state.offset)
        windows = [Window.from_state(w) for w in state.windows]
        count, gte, lt = state.count, state.created_gte, state.created_lt
    else:
        if (out.exists() or cpath.exists()) and not overwrite:
            hint = " or continue it (resume=true / --resume)" if cpath.exists() else ""
            raise ExportError(f"{out} already exists: replace it (overwrite=true / --overwrite){hint}")
        lt = created_lt if created_lt is not None else int(time.time())
        gte = created_gte if created_gte is not None else STRIPE_EPOCH
        if gte >= lt:
            raise ExportError(f"empty range: created_gte ({gte}) must be before created_lt ({lt})")
        header = encoder.header()
        with open(out, "wb") as f:
            f.write(header)
        digest = hashlib.sha256(header)
        windows = initial_windows(gte, lt)
        count = 0
        state = ckpt.Checkpoint(fmt, gte, lt, len(header), 0, [w.state() for w in windows], mode=mode)
        ckpt.save(cpath, state)

    stats = stripe.stats
    base_requests, base_retries, base_429 = stats.requests, stats.retries, stats.rate_limited
    started = time.monotonic()
    f = open(out, "ab")  # noqa: SIM115 - closed in finally
    written = count

    def sink(records: list[dict[str, Any]]) -> None:
        nonlocal written
        data = encoder.encode(records)
        f.write(data)
        digest.update(data)
        written += len(records)

    scanner = Scanner(stripe, windows, sink, concurrency=concurrency)
    last_save = time.monotonic()

    def save() -> None:
        f.flush()
        os.fsync(f.fileno())
        ckpt.save(
            cpath,
            ckpt.Checkpoint(
                fmt,
                gte,
                lt,
                f.tell(),
                written,
                [w.state() for w in scanner.windows],
                mode=mode,
                requests=(state.requests if resume else 0) + stats.requests - base_requests,
            ),
        )

    def progress() -> Progress:
        return Progress(
            count=written,
            requests=stats.requests - base_requests,
            retries=stats.retries - base_retries,
            rate_limited=stats.rate_limited - base_429,
            seconds=time.monotonic() - started,
            windows=len(scanner.windows),
        )

    async def on_page() -> None:
        nonlocal last_save
        now = time.monotonic()
        if now - last_save >= CHECKPOINT_EVERY_S:
            save()
            last_save = now
        if on_progress is not None:
            await on_progress(progress())

    scanner.on_page = on_page
    completed = False
    try:
        await scanner.run()
        completed = True
    finally:
        if completed:
            f.flush()
            os.fsync(f.fileno())
            f.close()
            cpath.unlink(missing_ok=True)
        else:
            save()  # synchronous: a cancellation cannot interrupt it
            f.close()
    p = progress()
    return ExportResult(
        path=str(out),
        format=fmt,
        count=written,
        seconds=round(p.seconds, 3),
        requests=p.requests,
        retries=p.retries,
        rate_limited=p.rate_limited,
        sha256=digest.hexdigest(),
        created_gte=gte,
        created_lt=lt,
        resumed=resume,
        pages=scanner.pages,
        windows=scanner.splits + len(windows),
    )
