"""Export engine: every customer of a `created` range, paged concurrently in disjoint time windows.

How it works
------------
Stripe lists customers newest first, 100 a page, one `starting_after` cursor at a time: a plain loop
is bound by latency (one page per round trip), far below the key's rate limit. So the range
`[created_gte, created_lt)` is split into disjoint half-open windows (`created[gte]`/`created[lt]`),
each paged with its own cursor by a pool of workers. Every request goes through
`StripeClient.call`, i.e. the client's buckets (`GET /v1/customers` and the key's global one;
`max_rate` adds the export's own share) and its retry policy (429 with
backoff and bucket penalty, 5xx, connection resets), so the export runs at the ceiling and backs off
when Stripe pushes back.

Windows are split adaptively, never blindly: the range starts as geometric windows back from the
cut-off (64 and 512 days, then the rest down to the lower bound — by default Stripe's launch,
2010-01-01), paged at once within the client's burst. An idle worker then splits the window with the
largest *estimated* remaining count (its density so far × remaining span, at least three pages) at
the time midpoint of what is left. Windows without a first page are never split, so an empty region
costs one request (the years between 2010 and the account's first customer are found empty in
about log2(years / data span) requests). A window whose page is in flight can be split too: the part
of the returned page below the new lower bound belongs to the new window and is dropped, and the old
window is finished. Windows are disjoint and each is paged exactly once in Stripe's stable order, so
no record is seen twice and none is skipped; nothing needs de-duplicating in memory.

Bursty data (imports of thousands of customers into one `created` second, long empty stretches)
breaks the density estimate, and every split into emptiness costs a request. So a window has at
most one split-off whose first page is still unknown; if that page is empty, the window is not
split by density again. A window inside a second holding a page or more (an import: one cursor
only) peels the range below that second off at once, and its requests go first at the scan's own
gate (`gate.py`), because that chain sets the export's length.

Two ends
--------
A window can also be paged from its oldest end: `ending_before=<a customer older than the window>`
with the window's `created` filter returns the window's oldest 100 customers (newest first, like every
list page; `ending_before` counts positions in the whole list, so any older customer works — the newest
one seen is used), and each next page starts `ending_before` its newest record. A window opens its
oldest end once its first page showed data and such a customer is known (any page may show one), so a
window needs no density guess to get two cursors, and an import anywhere in it is paged from both
sides. The ends meet exactly: a record already written from the other end — older than its
cursor's second, or of that second and among its ids (`at_top` / `at_low`, the ids of the cursor's
second, as for deleted-cursor recovery) — stops the page and finishes the window; a page from the
other end still in flight is then dropped. When the ends are probably less than a page apart (by the
density both have seen, or each end's last full page where that is higher), or both are inside one
second (an import: the gap is unknown), only one of them asks. A two-ended window is split between
its ends: the part below takes the oldest end (a page of it in flight follows it, see
`low_ticket`), the part above keeps the newest end. If the oldest end's cursor and fallbacks are
deleted, it stops and the newest end pages the rest, stopping where the oldest one did.

New windows are split off only when fewer cursors are left than requests must be in flight to keep
the pace (rate × round trip), or when a two-ended window holds so much between its ends that its two
cursors would outlast everything else (that span hides the next import on bursty data: found late,
an import is a chain of seconds): every window ends in a partial page, so each split costs about
half a request. A part of such a split with one end in an import and the other in another cluster
is not split again unless nothing else can be: the import is paged one cursor at a time anyway, and
the other end joins it from above once its own cluster is done (bursty data: a window per two
clusters, not per cluster). Ends inside imports, and the oldest data while it can be neither split
nor paged from below, go first at the gate: those chains set the export's length (the gate ranks
ends, not windows: the other end of an import's window waits its turn). The gate starts full, like
the client's buckets: the first requests leave at once.

Worker count: `rate × round trip × 1.2 + 1` (round trip = moving average of the list calls, from
the gate to the answer), 2 … 32, unless given.

Semantics (documented for users)
--------------------------------
* The cut-off `created_lt` is fixed when the export starts (default: the start second, local clock)
  and stored in the checkpoint; customers created after the start (created ≥ the cut-off) are never
  in the file, including on resume. Pass `created_lt` explicitly for an exact cut when your clock may
  be ahead of Stripe's.
* A customer deleted while the export runs is in the file if its page was read before the deletion,
  absent otherwise (Stripe lists never return deleted customers). If a window's cursor customer is
  deleted, the window continues after the previous record of that page; if those were deleted too
  (e.g. while an interrupted export waited for its resume), the window restarts at the cursor's
  `created` second and skips the ids of that second it already wrote (`at_top`), so it still ends
  exact: every customer of the range that was live when its part of the range was read, once.
* Records stream to the output as each page arrives (memory stays flat). Record order across windows
  is not defined; the set is. The sha256 is over the file's bytes.
* Checkpoint `<out>.checkpoint.json` (see checkpoint.py) is written at least every 0.5 s, on
  cancellation and on errors; it is removed when the export completes.
* One export per file: `<out>.lock` (lock.py) is held from before the output or its checkpoint is
  touched until the end; a second export of the same file (tool or CLI, overwrite or resume) is
  refused with the running one's pid and start time. A killed export's lock does not block.
* The reported sha256 is the file's: the finished file is re-read and its hash must equal the hash of
  the bytes this export wrote (and, on resume, of the prefix it kept); otherwise the export fails.
* The output, its checkpoint and their temp/lock files are never opened through a symlink.
"""

from __future__ import annotations

import errno
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
from stripe_identity_mcp.export.gate import PriorityGate
from stripe_identity_mcp.export.lock import ExportBusy, ExportLock
from stripe_identity_mcp.export.paths import checkpoint_path
from stripe_identity_mcp.export.writers import Encoder, Format

PAGE = 100
LIST_ENDPOINT = "GET /v1/customers"
STRIPE_EPOCH = 1262304000  # 2010-01-01T00:00:00Z: no Stripe object is older
MIN_SPLIT = 300  # only split a window expected to hold at least three more pages
CONCURRENCY_FACTOR = 1.2  # workers = rate × latency × this + 1: just enough requests in flight
MAX_WORKERS = 32
RTT_SMOOTHING = 0.2  # weight of each new round trip in the scan's moving average
# Split a two-ended window early only if it holds this many pages per cursor or more (`_outlasts`).
OUTLAST_PAGES = 8
GAP_MARGIN = 1.3  # "the ends are less than a page apart" below this many pages by the estimate
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
    # ids already written whose created == cursor_created (None: unknown, from a version-1 checkpoint);
    # a restart at that second skips exactly these.
    at_top: list[str] | None = field(default_factory=list)
    busy: bool = False
    done: bool = False
    # In memory only (a resumed export re-learns them). A split is a guess from this window's density;
    # the guess is checked by the first page of the window split off (`child_pending` until then),
    # when that page is empty the density lied (data ends, or comes in bursts), and a split of it would
    # likely cost another empty request: it is not split by density again.
    parent: Window | None = field(default=None, repr=False, compare=False)
    child_pending: bool = False
    no_split: bool = False
    # The second cursor, paging up from the oldest end (see "Two ends" in the module doc). Its first
    # cursor is `anchor`, a customer older than `gte` (in memory only: any page may show one).
    low_cursor: str | None = None
    low_created: int | None = None  # None: nothing written from this end yet
    low_fallback: list[str] = field(default_factory=list)
    at_low: list[str] = field(default_factory=list)  # ids written from this end whose created == low_created
    low_stopped: bool = False  # its cursor and fallbacks were deleted: the newest-first cursor ends alone
    low_busy: bool = False
    low_fetched: int = field(default=0, repr=False, compare=False)
    # `created` of the first record each end wrote (in memory): the span each end's data covers.
    top_first: int | None = field(default=None, repr=False, compare=False)
    low_first: int | None = field(default=None, repr=False, compare=False)
    # Customers per second of each end's last full page (in memory): the density where that end is now.
    top_rho: float | None = field(default=None, repr=False, compare=False)
    low_rho: float | None = field(default=None, repr=False, compare=False)
    anchor: str | None = field(default=None, repr=False, compare=False)
    # While a page of the oldest end is in flight: [the window that page belongs to] (a split moves it).
    low_ticket: list[Window] | None = field(default=None, repr=False, compare=False)
    anchor_created: int | None = field(default=None, repr=False, compare=False)
    # Made by a split between two ends (in memory): see `Scanner._import_paired`.
    halved: bool = field(default=False, repr=False, compare=False)

    # An end inside a bulk import: a page or more of one `created` second, paged one cursor at a time.
    @property
    def top_in_import(self) -> bool:
        return len(self.at_top or ()) >= PAGE

    @property
    def low_in_import(self) -> bool:
        return len(self.at_low) >= PAGE

    @property
    def two_ended(self) -> bool:
        """Paged from both ends (or was): split only between its ends (`Scanner._between_ends`)."""
        return self.low_cursor is not None or self.low_created is not None or self.low_stopped

    def by_top(self, c: dict[str, Any], top_ids: set[str]) -> bool:
        """Already written from the newest end (everything above the cursor, and `at_top` of its second)."""
        t = self.cursor_created
        return t is not None and (c["created"] > t or (c["created"] == t and c["id"] in top_ids))

    def by_low(self, c: dict[str, Any], low_ids: set[str]) -> bool:
        """Already written from the oldest end."""
        b = self.low_created
        return b is not None and (c["created"] < b or (c["created"] == b and c["id"] in low_ids))

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
        at_top = None if self.at_top is None else list(self.at_top)
        return ckpt.WindowState(
            self.gte, self.lt, self.cursor, self.cursor_created, list(self.fallback), self.fetched, at_top,
            self.low_cursor, self.low_created, list(self.low_fallback), list(self.at_low), self.low_stopped,
        )  # fmt: skip

    @classmethod
    def from_state(cls, s: ckpt.WindowState) -> Window:
        at_top = None if s.at_top is None else list(s.at_top)
        return cls(
            s.gte, s.lt, s.cursor, s.cursor_created, list(s.fallback), s.fetched, at_top=at_top,
            low_cursor=s.low_cursor, low_created=s.low_created, low_fallback=list(s.low_fallback),
            at_low=list(s.at_low), low_stopped=s.low_stopped,
        )  # fmt: skip


# No shorter spans: a window costs at least one request, and every window ends in a partial page, so
# a day or a week of a small account (or a quiet month of any) was a request for a few records or
# none. Two ends and splits give the concurrency; the windows only need to be where data is likely.
INITIAL_SPANS_DAYS = (64, 512)


def initial_windows(gte: int, lt: int) -> list[Window]:
    """Geometric windows back from `lt` (64, 512 days, then the rest down to `gte`).

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
        max_rate: float | None = None,
    ) -> None:
        self.stripe = stripe
        # The export's own share of the key (requests/s), on top of the client's endpoint and global
        # buckets: those keep the key within Stripe's limits, this leaves the merchant's traffic room.
        self.max_rate = max_rate
        # The scan's own pace (its budget, or the list endpoint's): longest chains first (gate.py). Its
        # burst is at most half a second of that pace, so a limiter that holds one second's worth (the
        # sandbox's; Stripe publishes rates, not bursts) never sees it arrive full: jitter bunches them.
        # (With two ends, enough windows are ready at once to use any burst the client's bucket allows.)
        self.gate = PriorityGate(self.rate, burst=min(stripe.pacer.burst_for(LIST_ENDPOINT), max(1.0, self.rate / 2)))
        self.windows = [w for w in windows if not w.done]
        self.sink = sink
        self.extra = extra_params or {}
        self.fixed = concurrency
        # Before any latency is known: one request per unknown window, within the client's burst.
        self.target = concurrency or max(1, min(len(self.windows), int(stripe.pacer.burst_for(LIST_ENDPOINT))))
        self.on_page = on_page
        self.latency: float | None = None
        self.records = 0
        self.pages = 0
        self.splits = 0
        self.dropped = 0  # pages answered after the other end had finished their window
        self._event = anyio.Event()

    # scheduling ---------------------------------------------------------------------------------
    def _changed(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    def _pick(self) -> tuple[Window, bool] | None:
        """An idle cursor: (window, from the oldest end). Unknown windows first (their first page tells
        where data is), then bulk imports (the longest chains), then the biggest."""
        best: tuple[tuple[bool, float, float], Window, bool] | None = None
        for w in self.windows:
            if w.done:
                continue
            est = w.estimate() or 0.0
            if (w.busy or w.low_busy) and self._gap_within_page(w):
                continue  # the page in flight from the other end most likely closes the gap: wait for it
            if not w.busy:
                key = (w.cursor is None, self._priority(w, False), est)
                if best is None or key > best[0]:
                    best = (key, w, False)
            if not w.low_busy and self._low_ready(w):
                key = (False, self._priority(w, True), est)
                if best is None or key > best[0]:
                    best = (key, w, True)
        if best is None:
            return None
        _, w, low = best
        if low and w.low_cursor is None:  # start this end at the newest customer known to be older
            w.low_cursor = w.anchor
        return w, low

    @staticmethod
    def _low_ready(w: Window) -> bool:
        """Page `w` from its oldest end too? Yes once its first page showed data and a customer older
        than it is known to start from (not for a version-1 checkpoint's window: `at_top` unknown)."""
        if w.low_cursor is not None:
            return True
        if w.low_created is not None or w.low_stopped or w.anchor is None or w.at_top is None:
            return False
        return w.cursor is not None

    def _may_split(self) -> bool:
        """A new window only when the pipe would run short, or one window would outlast the rest.

        Short: fewer cursors (each end that can ask counts) than requests must be in flight to keep
        the pace (rate × round trip) — so the last windows are split before they page alone. More
        windows than that only add partial last pages (and empty first ones) without adding speed:
        every window ends in a partial page, so each split costs about half a request."""
        cursors = sum(1 + self._low_ready(w) for w in self.windows if not w.done)
        need = max(2, math.ceil(self.rate * self.latency)) if self.latency else max(2, self.target - 1)
        return cursors < need or self._outlasts()

    def _outlasts(self) -> bool:
        """Would a two-ended window outlast the rest? Its estimated pages per cursor, a round trip
        each, against the time all that is left takes at the scan's rate. On bursty data the span
        between two ends paging two clusters hides whatever lies between (the next import), and
        found late, that is a chain only its cursors can page: split it early, while its estimate is
        still a gross overestimate (the ends' density spans clusters). Short chains (under
        `OUTLAST_PAGES` per cursor) are left alone: near the end everything is a short chain, and a
        split there costs a request and saves less than a round trip."""
        if self.latency is None:
            return False
        total = worst = 0.0
        for w in self.windows:
            if w.done:
                continue
            if w.two_ended:
                cand = self._between_ends(w)
                est = None if cand is None else cand[0]
            else:
                est = None if w.no_split else w.estimate()
            pages = max(1.0, (est or 0.0) / PAGE)
            total += pages
            if est is not None and w.two_ended and not w.child_pending and not self._import_paired(w):
                worst = max(worst, pages / 2)
        return worst >= OUTLAST_PAGES and worst * self.latency > total / self.rate

    def _split(self) -> Window | None:
        best: tuple[float, Window, int] | None = None
        last_resort: tuple[float, Window, int] | None = None
        for w in self.windows:
            if w.child_pending or w.done:
                continue
            if w.two_ended:
                cand = self._between_ends(w)
                if cand is not None and self._import_paired(w):
                    if last_resort is None or cand[0] > last_resort[0]:
                        last_resort = (cand[0], w, cand[1])
                elif cand is not None and (best is None or cand[0] > best[0]):
                    best = (cand[0], w, cand[1])
                continue
            if w.cursor_created is not None and w.gte < w.cursor_created and w.top_in_import:
                # A bulk import: a page or more in one `created` second, which cannot be split. Peel off
                # the range below that second, so what lies below is paged alongside the import.
                best = (math.inf, w, w.cursor_created)
                break
            if w.no_split:
                continue
            est, rho = w.estimate(), w.density()
            if w.done or est is None or rho is None or est < MIN_SPLIT:
                continue
            top = w.top - (int(PAGE / rho) if w.busy else 0)  # leave the in-flight page to its window
            if top - w.gte < 1:
                continue
            mid = (w.gte + top + 1) // 2
            if self._oldest_unanchored(w):
                # Its span reaches back to 2010, so its average density says "more" across years that
                # are likely empty, and a split there is a request for nothing. Split it only when no
                # other window can be.
                last_resort = last_resort or (est, w, mid)
                continue
            if best is None or est > best[0]:
                best = (est, w, mid)
        best = best or last_resort
        if best is None:
            return None
        _, w, mid = best
        new = Window(gte=w.gte, lt=mid, parent=w)
        w.halved = new.halved = w.two_ended
        if w.two_ended:
            # The oldest end moves to the part below `mid` (a page of it in flight follows it there, see
            # low_ticket); the part above keeps the newest end and may open a new oldest end later,
            # starting from the moved cursor's customer (older than `mid`).
            new.low_cursor, new.low_created, new.low_fallback, new.at_low = (
                w.low_cursor, w.low_created, w.low_fallback, w.at_low
            )
            new.low_stopped, new.low_busy = w.low_stopped, w.low_busy
            if w.low_ticket is not None:
                w.low_ticket[0], new.low_ticket, w.low_ticket = new, w.low_ticket, None
            if w.low_created is not None and w.low_cursor is not None:
                w.anchor, w.anchor_created = w.low_cursor, w.low_created
            w.low_cursor, w.low_created, w.low_fallback, w.at_low = None, None, [], []
            new.low_fetched, new.low_first, w.low_fetched, w.low_first = w.low_fetched, w.low_first, 0, None
            new.low_rho, w.low_rho = w.low_rho, None
            w.low_stopped = w.low_busy = False
        w.child_pending = True
        w.gte = mid
        self.windows.append(new)
        self.splits += 1
        return new

    @staticmethod
    def _both_density(w: Window) -> float | None:
        """Customers per second over the seconds the data of both ends covered (from each end's first
        record): an overestimate across an empty stretch between them. None when not known (an end
        has no record yet, or after a resume)."""
        t, b, tf, bf = w.cursor_created, w.low_created, w.top_first, w.low_first
        if t is None or b is None or tf is None or bf is None or not w.fetched or not w.low_fetched:
            return None
        return (w.fetched + w.low_fetched) / max(1, (tf - t + 1) + (b - bf + 1))

    @classmethod
    def _gap_within_page(cls, w: Window) -> bool:
        """Are the two ends probably less than a page apart? Then only one of them asks: with a page
        of each in flight at the meet, one page is dropped whole.

        The density is the higher of the window's average and each end's last page: in clustered data
        the average spans the empty stretches and says "a page apart" where a cluster still holds
        fifteen, and the end that then waits leaves the cluster to one cursor (bursty exports ended
        on such a chain). Local densities still vary by a third from page to page (uniform data has
        its dense days), hence `GAP_MARGIN`: a gap guessed a little over a page is most likely the
        page the other end has in flight.

        Inside one second (both ends in an import) the gap is unknown, and the ends would meet with a
        page of each in flight: a page dropped per import. So one end asks at a time and the import is
        paged by one cursor, as a one-second window is anyway; imports are found early (`_outlasts`),
        so that chain fits in the scan."""
        t, b = w.cursor_created, w.low_created
        if t is not None and t == b:
            return True
        rhos = [r for r in (cls._both_density(w), w.top_rho, w.low_rho) if r is not None]
        if not rhos:
            # One end has no record yet (a window just split: the part below got the oldest end, the
            # part above opens a new one): the other end's density, from its bound.
            if t is not None and w.fetched and w.top_first is not None:
                rhos.append(w.fetched / max(1, w.top_first - t + 1))
            if b is not None and w.low_fetched and w.low_first is not None:
                rhos.append(w.low_fetched / max(1, b - w.low_first + 1))
        if not rhos:
            return False
        t = w.lt - 1 if t is None else t
        b = w.gte if b is None else b
        return max(rhos) * (t - b) < PAGE * GAP_MARGIN

    @classmethod
    def _between_ends(cls, w: Window) -> tuple[float, int] | None:
        """(estimated count, split second) for a window paged from both ends, or None: split at the
        middle of what lies between the two cursors, clear of the pages in flight. The overestimate
        across an empty stretch is wanted: the part below then pages the next cluster (an import above
        the oldest end, say) from its newest end while the oldest end pages it from below, and the part
        above opens its own oldest end at the bottom of the cluster its newest end is in."""
        if w.low_created is None or w.cursor_created is None or w.low_stopped:
            return None
        rho = cls._both_density(w)
        if rho is None:
            return None
        hi = w.cursor_created - (int(PAGE / rho) if w.busy else 0)
        lo = w.low_created + (int(PAGE / rho) if w.low_busy else 0)
        est = rho * max(0, hi - lo)
        if est < MIN_SPLIT or hi - lo < 2:
            return None
        return est, (lo + hi + 1) // 2


    @property
    def rate(self) -> float:
        """Requests/s this scan may send: the list endpoint's pace, capped by the export's budget."""
        rate = self.stripe.pacer.rate_for(LIST_ENDPOINT)
        return min(rate, self.max_rate) if self.max_rate else rate

    @staticmethod
    def _import_paired(w: Window) -> bool:
        """Is `w` a part of a split between ends with one end in a bulk import and the other not? Such a
        window is split again only when nothing else can be (`_split`), and never to keep it from
        outlasting the rest (`_outlasts`): the import is a chain one cursor pages at a time (its ends
        take turns inside one second), so a split gives it nothing; the other end pages its own
        cluster, then the gap, then joins the import from above. A split there costs a partial page
        (bursty data: a window per cluster instead of one per two, about a request per pair). The
        first split between ends still finds the clusters between them, and a window with both ends
        in imports is split as before: neither end would reach what lies between in time."""
        return w.halved and w.top_in_import != w.low_in_import

    def _oldest_unanchored(self, w: Window) -> bool:
        """`w` holds the oldest data left and no end can page it from below (no older customer known)."""
        return w.anchor is None and w.gte == min(v.gte for v in self.windows)

    def _priority(self, w: Window, low: bool) -> float:
        """An end inside a bulk import (a page or more in one second) is a chain only it can page (the
        other end of its window may be in another cluster): it goes first; so does the oldest data
        while no end can page it from below (no older customer known), and a window that can be
        neither split (its split-off was empty) nor paged from below. Then windows not paged yet (their
        first page shows where data is)."""
        if w.low_in_import if low else w.top_in_import:
            return 2.0
        if not w.two_ended and w.cursor is not None and (
            self._oldest_unanchored(w) or (w.no_split and w.anchor is None)
        ):
            return 2.0
        return 1.0 if w.cursor is None else 0.0

    def _observe(self, seconds: float) -> None:
        """A list call's round trip (from leaving the gate to its answer): a moving average (the pace
        needs as many requests in flight as the typical round trip, not the fastest: under load the
        fastest one undercounts them), which sets the workers and the cursors wanted."""
        rt = self.latency
        self.latency = seconds if rt is None else rt + RTT_SMOOTHING * (seconds - rt)
        if self.fixed is None:
            rate = self.rate
            self.target = max(2, min(MAX_WORKERS, math.ceil(rate * self.latency * CONCURRENCY_FACTOR) + 1))

    # paging -------------------------------------------------------------------------------------
    async def _list(self, w: Window, params: dict[str, Any], low: bool = False) -> dict[str, Any]:
        """One list call for `w`, after its turn at the gate; its round trip is observed."""
        await self.gate.acquire(self._priority(w, low))
        sent = time.monotonic()
        body: dict[str, Any] = await self.stripe.call("GET", "/v1/customers", params)
        self._observe(time.monotonic() - sent)
        return body

    async def _fetch(self, w: Window) -> dict[str, Any]:
        while True:
            params: dict[str, Any] = {"limit": PAGE, "created": {"gte": w.gte, "lt": w.lt}, **self.extra}
            if w.cursor:
                params["starting_after"] = w.cursor
            elif w.cursor_created is not None:
                # Restart at the cursor's second (no usable cursor left); _apply skips w.at_top.
                params["created"] = {"gte": w.gte, "lt": w.cursor_created + 1}
            try:
                return await self._list(w, params)
            except ApiStatusError as exc:
                cursor_gone = exc.status in (400, 404) and (
                    exc.param == "starting_after" or exc.code == "resource_missing"
                )
                if not (cursor_gone and w.cursor):
                    raise
                if w.fallback:
                    w.cursor = w.fallback.pop()  # the cursor customer was deleted: continue after the one before
                elif w.at_top is not None:
                    w.cursor = None  # it and its fallbacks were deleted: restart at its second
                else:
                    raise ExportError(
                        "resume: a cursor customer of this export was deleted and its checkpoint (written "
                        "by an older version) cannot tell which customers of that second were written; "
                        "start again (overwrite=true / --overwrite)"
                    ) from None

    async def _fetch_low(self, ticket: list[Window]) -> dict[str, Any] | None:
        """The next page from the oldest end of `ticket[0]` (a split may move that end to the window
        below meanwhile: the ticket follows it); None when that end cannot go on (its cursor is gone)."""
        while (w := ticket[0]).low_cursor is not None:
            params: dict[str, Any] = {
                "limit": PAGE, "created": {"gte": w.gte, "lt": w.lt}, "ending_before": w.low_cursor, **self.extra
            }  # fmt: skip
            try:
                return await self._list(w, params, low=True)
            except ApiStatusError as exc:
                if not (exc.status in (400, 404) and (exc.param == "ending_before" or exc.code == "resource_missing")):
                    raise
                w = ticket[0]
                if w.low_fallback:
                    w.low_cursor = w.low_fallback.pop()  # deleted: go on after the one before
                elif w.low_created is None:
                    w.low_cursor = w.anchor = w.anchor_created = None  # the anchor was deleted: wait for another
                else:
                    # Nothing left to go on from; what this end wrote stays known (low_created, at_low), so
                    # the newest-first cursor pages the rest and stops where this end stopped.
                    w.low_cursor, w.low_stopped = None, True
        return None

    def _note_anchors(self, data: list[dict[str, Any]]) -> None:
        """Remember, per window, the newest customer seen that is older than it: where its oldest end
        can start (`ending_before` returns the customers just after the cursor in the list)."""
        for v in self.windows:
            if v.two_ended or v.done:
                continue
            for c in data:  # newest first
                if c["created"] < v.gte:
                    if v.anchor_created is None or c["created"] > v.anchor_created:
                        v.anchor, v.anchor_created = c["id"], c["created"]
                    break

    def _apply(self, w: Window, body: dict[str, Any]) -> None:
        data = body.get("data") or []
        if w.parent is not None:  # this window's first page: the parent's split guess is checked
            w.parent.child_pending = False
            w.parent.no_split = w.parent.no_split or not data
            w.parent = None
        kept: list[dict[str, Any]] = []
        cut = met = False
        low_ids = set(w.at_low)
        for customer in data:
            if customer.get("created", 0) < w.gte:  # split while in flight: the rest is another window's
                cut = True
                break
            if w.by_low(customer, low_ids):  # the two ends met: the rest was written from below
                met = True
                break
            kept.append(customer)
        if kept:
            top = w.cursor_created
            written = set(w.at_top or ()) if top is not None else set()
            # Only a restart at `top` can return records already written, and only of that second.
            fresh = [c for c in kept if not (c["created"] == top and c["id"] in written)]
            if fresh:
                self.sink(fresh)
            w.fetched += len(fresh)
            self.records += len(fresh)
            if w.top_first is None and fresh:
                w.top_first = fresh[0]["created"]
            last = kept[-1]  # even when every record was skipped: the cursor must move on
            same = [c["id"] for c in kept if c["created"] == last["created"]]
            if last["created"] != top:
                w.at_top = same
            elif w.at_top is not None:
                w.at_top = w.at_top + [i for i in same if i not in written]
            w.cursor = last["id"]
            w.cursor_created = last["created"]
            w.fallback = [c["id"] for c in kept[-4:-1]]
            if len(kept) == PAGE:
                w.top_rho = PAGE / (kept[0]["created"] - last["created"] + 1)
        self.pages += 1
        self._note_anchors(data)
        if cut or met or not data or not body.get("has_more"):
            self._finish(w)

    def _finish(self, w: Window) -> None:
        w.done = True
        self.windows.remove(w)

    def _apply_low(self, w: Window, body: dict[str, Any]) -> None:
        """A page from the oldest end: newest first like every list page, so it is read backwards."""
        data = body.get("data") or []
        top_ids = set(w.at_top or ())
        kept: list[dict[str, Any]] = []
        met = False
        for customer in reversed(data):
            if customer["created"] >= w.lt:  # split while in flight: the rest is the window above's
                met = True
                break
            if w.by_top(customer, top_ids):  # the two ends met: the rest was written from above
                met = True
                break
            kept.append(customer)
        if kept:
            # Nothing here was written before: this end never restarts at a second (a fallback cursor is
            # the next older record, so the page after it starts right after the deleted one).
            self.sink(kept)
            self.records += len(kept)
            w.low_fetched += len(kept)
            if w.low_first is None:
                w.low_first = kept[0]["created"]
            last = kept[-1]
            same = [c["id"] for c in kept if c["created"] == last["created"]]
            w.at_low = same if last["created"] != w.low_created else w.at_low + same
            w.low_cursor, w.low_created = last["id"], last["created"]
            w.low_fallback = [c["id"] for c in kept[-4:-1]]
            if len(kept) == PAGE:
                w.low_rho = PAGE / (last["created"] - kept[0]["created"] + 1)
        self.pages += 1
        self._note_anchors(data)
        if met or not data or not body.get("has_more"):
            self._finish(w)

    async def _worker(self, index: int) -> None:
        while self.windows:
            event = self._event
            picked = self._pick() if index < self.target else None
            # A split when the pipe runs short, and also, with a cursor to pick, when a window would
            # outlast the rest (the new window's first page then goes first: it is unknown).
            if index < self.target and (self._may_split() if picked is None else self._outlasts()):
                split = self._split()
                picked = picked if split is None else (split, False)
            if picked is None:
                await event.wait()
                continue
            w, low = picked
            body: dict[str, Any] | None
            if low:
                ticket = w.low_ticket = [w]
                w.low_busy = True
                try:
                    body = await self._fetch_low(ticket)
                finally:
                    w = ticket[0]
                    w.low_busy, w.low_ticket = False, None
            else:
                w.busy = True
                try:
                    body = await self._fetch(w)
                finally:
                    w.busy = False
            if body is None or w.done:
                # That end could not go on, or the other end finished the window while this page was
                # in flight: the page repeats what was written (its request is counted all the same).
                self.dropped += body is not None
                self._changed()
                continue
            if low:
                self._apply_low(w, body)
            else:
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
    max_rate: float | None  # the export's budget (requests/s), None: the client's pacing alone
    requests_per_s: float  # effective: requests sent / seconds (retries included)
    sha256: str
    created_gte: int
    created_lt: int
    resumed: bool
    pages: int
    windows: int


ProgressFn = Callable[[Progress], Awaitable[None]]


def _open(path: Path, flags: int, mode: str) -> Any:
    """Open the output without following a symlink planted at its name."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ExportError(f"{path.name} is a symbolic link; refusing to write through it") from None
        raise
    return os.fdopen(fd, mode)


def _hash_prefix(path: Path, offset: int) -> Any:
    digest = hashlib.sha256()
    with _open(path, os.O_RDONLY, "rb") as f:
        left = offset
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest


def _file_sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with _open(path, os.O_RDONLY, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


async def run_export(
    stripe: StripeClient,
    out: Path,
    fmt: Format | None,
    *,
    created_gte: int | None = None,
    created_lt: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    on_progress: ProgressFn | None = None,
    concurrency: int | None = None,
    mode: str = "",
    max_rate: float | None = None,
) -> ExportResult:
    """Export every customer with created in [created_gte, created_lt) to `out`; see the module doc.

    `fmt` None is allowed on resume only (the checkpoint's format is used).

    Raises:
        ExportError: bad parameters, nothing to resume, an existing file without resume/overwrite,
            a checkpoint that does not match, another export of the same file running, or a file
            changed by someone else while exporting. Stripe failures propagate as StripeIdentityError
            after a checkpoint was written (the export can be resumed).
    """
    out = Path(out)
    lock = ExportLock(out)
    try:
        lock.acquire()  # before anything of `out` or its checkpoint is read, truncated or created
    except ExportBusy as exc:
        raise ExportError(str(exc)) from None
    try:
        return await _run_locked(
            stripe,
            out,
            fmt,
            created_gte=created_gte,
            created_lt=created_lt,
            resume=resume,
            overwrite=overwrite,
            on_progress=on_progress,
            concurrency=concurrency,
            mode=mode,
            max_rate=max_rate,
        )
    finally:
        lock.release()


async def _run_locked(
    stripe: StripeClient,
    out: Path,
    fmt: Format | None,
    *,
    created_gte: int | None,
    created_lt: int | None,
    resume: bool,
    overwrite: bool,
    on_progress: ProgressFn | None,
    concurrency: int | None,
    mode: str,
    max_rate: float | None,
) -> ExportResult:
    cpath = checkpoint_path(out)
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
        fmt = state.format  # type: ignore[assignment]
        encoder = Encoder(fmt)  # type: ignore[arg-type]
        with _open(out, os.O_RDWR, "r+b") as f:
            f.truncate(state.offset)  # drop a half-written tail
        digest = await anyio.to_thread.run_sync(_hash_prefix, out, state.offset)  # keep the loop serving
        windows = [Window.from_state(w) for w in state.windows]
        count, gte, lt = state.count, state.created_gte, state.created_lt
    else:
        if fmt is None:
            raise ExportError("give the format (jsonl or csv) or a file name ending in .jsonl or .csv")
        encoder = Encoder(fmt)
        if (out.exists() or cpath.exists()) and not overwrite:
            hint = " or continue it (resume=true / --resume)" if cpath.exists() else ""
            raise ExportError(f"{out} already exists: replace it (overwrite=true / --overwrite){hint}")
        lt = created_lt if created_lt is not None else int(time.time())
        gte = created_gte if created_gte is not None else STRIPE_EPOCH
        if gte >= lt:
            raise ExportError(f"empty range: created_gte ({gte}) must be before created_lt ({lt})")
        header = encoder.header()
        with _open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "wb") as f:
            f.write(header)
        digest = hashlib.sha256(header)
        windows = initial_windows(gte, lt)
        count = 0
        state = ckpt.Checkpoint(fmt, gte, lt, len(header), 0, [w.state() for w in windows], mode=mode)
        ckpt.save(cpath, state)
    assert fmt is not None

    await stripe.warm()  # before the clock: the export's seconds are the scan's
    stats = stripe.stats
    base_requests, base_retries, base_429 = stats.requests, stats.retries, stats.rate_limited
    started = time.monotonic()
    f = _open(out, os.O_WRONLY | os.O_APPEND, "ab")
    written = count

    def sink(records: list[dict[str, Any]]) -> None:
        nonlocal written
        data = encoder.encode(records)
        f.write(data)
        digest.update(data)
        written += len(records)

    scanner = Scanner(stripe, windows, sink, concurrency=concurrency, max_rate=max_rate)
    last_save = time.monotonic()

    def snapshot() -> tuple[int, ckpt.Checkpoint]:
        """The file's descriptor and a checkpoint of what is written so far (the bytes flushed to the OS)."""
        f.flush()
        return f.fileno(), ckpt.Checkpoint(
            fmt,  # type: ignore[arg-type]
            gte,
            lt,
            f.tell(),
            written,
            [w.state() for w in scanner.windows],
            mode=mode,
            requests=(state.requests if resume else 0) + stats.requests - base_requests,
        )

    def durable(fd: int, checkpoint: ckpt.Checkpoint) -> None:
        """The records first (fsync), then the checkpoint that points past them."""
        os.fsync(fd)
        ckpt.save(cpath, checkpoint)

    def save() -> None:
        durable(*snapshot())

    def progress() -> Progress:
        return Progress(
            count=written,
            requests=stats.requests - base_requests,
            retries=stats.retries - base_retries,
            rate_limited=stats.rate_limited - base_429,
            seconds=time.monotonic() - started,
            windows=len(scanner.windows),
        )

    saving = False

    async def on_page() -> None:
        nonlocal last_save, saving
        now = time.monotonic()
        if now - last_save >= CHECKPOINT_EVERY_S and not saving:
            # In a worker thread: an fsync can take most of a second on a busy disk (seen here: 0.2-0.8 s),
            # and on the event loop it held every request of the scan, and the pace with them. This
            # worker waits for it; the others go on writing (appends after the snapshot are not in it).
            # Cancellation waits for the thread, so the final checkpoint (`save`) is always the last.
            saving, last_save = True, now
            try:
                await anyio.to_thread.run_sync(durable, *snapshot())
            finally:
                saving = False
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
            size = f.tell()
            f.close()
            cpath.unlink(missing_ok=True)
        else:
            save()  # synchronous: a cancellation cannot interrupt it
            f.close()
    # Proof, not assumption: the answer's sha256 is the finished file's, and it must be what we wrote.
    on_disk, disk_size = await anyio.to_thread.run_sync(_file_sha256, out)  # big files: off the event loop
    if on_disk != digest.hexdigest() or disk_size != size:
        raise ExportError(
            f"{out.name} was changed by another writer during the export (its sha256 and size are not "
            "those of the records written), so its content is not a true export; start again "
            "(overwrite=true / --overwrite) and let nothing else write to it"
        )
    p = progress()
    return ExportResult(
        path=str(out),
        format=fmt,
        count=written,
        seconds=round(p.seconds, 3),
        requests=p.requests,
        retries=p.retries,
        rate_limited=p.rate_limited,
        max_rate=max_rate,
        requests_per_s=round(p.requests / max(p.seconds, 1e-9), 2),
        sha256=on_disk,
        created_gte=gte,
        created_lt=lt,
        resumed=resume,
        pages=scanner.pages,
        windows=scanner.splits + len(windows),
    )
