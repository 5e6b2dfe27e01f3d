"""Lifecycle events of a pledged vehicle and the per-asset state machine.

Pure logic, no I/O: :func:`apply` takes an asset's state and one event and
returns the new state, or raises InvalidTransitionError (or ValueError for a
malformed event) and changes nothing. The ledger runs it before writing, and
the audit replays it over the whole log.

States and the events that move between them::

    (none) --pledge_registered--> pledged
    pledged  --loan_overdue--> overdue --loan_cured--> pledged
    pledged | overdue --default_declared--> defaulted
    pledged | overdue --pledge_released--> released (final)
    defaulted --disposal_authorized (M of N)--> disposal_authorized
    disposal_authorized | auction_closed without a winner --auction_opened--> auction_open
    auction_open --bid_placed--> auction_open;  --auction_closed--> auction_closed
    auction_closed with a winner --settled--> settled (final)

``valuation_updated``, ``alert_raised`` and ``alert_closed`` are allowed in
every state that is not final. ``judicial_disposal_triggered`` is recorded by
the ledger, never by a member: exactly 7 days (``DISPOSAL_IDLE``) after the
last disposal action (default, authorisation, auction opened, bid, close)
while the asset is defaulted, authorised, or closed without a winner.

Money is in integer minor units (``*_minor``) of the loan's currency.
Event times are UTC and never go backwards for one asset.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from ..errors import InvalidTransitionError

__all__ = [
    "DISPOSAL_IDLE",
    "EVENT_TYPES",
    "MEMBER_EVENT_TYPES",
    "Asset",
    "Auction",
    "State",
    "apply",
    "auction_result",
    "bid_commitment",
    "format_time",
    "parse_time",
    "trigger_deadline",
]

DISPOSAL_IDLE = timedelta(days=7)


class State(StrEnum):
    PLEDGED = "pledged"
    OVERDUE = "overdue"
    DEFAULTED = "defaulted"
    DISPOSAL_AUTHORIZED = "disposal_authorized"
    AUCTION_OPEN = "auction_open"
    AUCTION_CLOSED = "auction_closed"
    SETTLED = "settled"
    RELEASED = "released"


FINAL = frozenset({State.SETTLED, State.RELEASED})
ACTIVE = frozenset(State) - FINAL

MEMBER_EVENT_TYPES = (
    "pledge_registered",
    "valuation_updated",
    "alert_raised",
    "alert_closed",
    "loan_overdue",
    "loan_cured",
    "default_declared",
    "disposal_authorized",
    "auction_opened",
    "bid_placed",
    "auction_closed",
    "settled",
    "pledge_released",
)
EVENT_TYPES = (*MEMBER_EVENT_TYPES, "judicial_disposal_triggered")

# Events that count as disposal action for the 7-day rule.
DISPOSAL_ACTIONS = frozenset(
    {
        "default_declared",
        "disposal_authorized",
        "auction_opened",
        "bid_placed",
        "auction_closed",
        "settled",
    }
)


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-28T08:00:00.000000Z``."""
    if t.tzinfo is None:
        msg = "time must be timezone-aware (UTC)"
        raise ValueError(msg)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(s: object) -> datetime:
    if not isinstance(s, str) or len(s) != 27 or s[-1] != "Z" or s[10] != "T" or s[19] != ".":
        msg = f"time must be RFC 3339 UTC with microseconds, got {s!r}"
        raise ValueError(msg)
    try:
        return datetime.fromisoformat(s)  # fast C parser; the shape was checked above
    except ValueError:
        msg = f"time must be RFC 3339 UTC with microseconds, got {s!r}"
        raise ValueError(msg) from None


def bid_commitment(auction_id: str, bidder: str, amount_minor: int, nonce: str) -> str:
    """The sealed-bid commitment: hex SHA-256 of ``auction|bidder|amount|nonce``."""
    return hashlib.sha256(f"{auction_id}|{bidder}|{amount_minor}|{nonce}".encode()).hexdigest()


@dataclass
class Auction:
    auction_id: str
    kind: str  # "ascending" or "sealed"
    reserve_minor: int
    min_increment_minor: int
    opened_at: datetime
    closes_at: datetime
    bids: list[dict[str, Any]] = field(default_factory=list)
    best_bidder: str | None = None
    best_minor: int | None = None
    commitments: dict[str, str] = field(default_factory=dict)
    winner: str | None = None
    price_minor: int | None = None
    closed_at: datetime | None = None


@dataclass
class Asset:
    code: str
    vin: str
    pledge_id: str
    state: State
    currency: str
    loan_amount_minor: int
    pledged_at: datetime
    last_time: datetime
    seqs: list[int] = field(default_factory=list)
    valuation_minor: int | None = None
    valuation_time: datetime | None = None
    open_alerts: dict[str, str] = field(default_factory=dict)  # alert id -> level
    default_seq: int | None = None
    default_time: datetime | None = None
    last_disposal_action: datetime | None = None
    triggered_for: datetime | None = None  # the idle period's start that already fired
    auctions: list[Auction] = field(default_factory=list)
    settled_time: datetime | None = None

    @property
    def auction(self) -> Auction | None:
        return self.auctions[-1] if self.auctions else None


def trigger_deadline(asset: Asset) -> datetime | None:
    """When the 7-day judicial-disposal trigger falls due, or None if it cannot."""
    if asset.last_disposal_action is None or asset.state not in (
        State.DEFAULTED,
        State.DISPOSAL_AUTHORIZED,
        State.AUCTION_CLOSED,
    ):
        return None
    if (
        asset.state is State.AUCTION_CLOSED
        and asset.auction is not None
        and asset.auction.winner is not None
    ):
        return None  # sold: settlement is next, not judicial disposal
    if asset.triggered_for == asset.last_disposal_action:
        return None
    return asset.last_disposal_action + DISPOSAL_IDLE


def _fail(asset: Asset | None, etype: str, why: str) -> InvalidTransitionError:
    where = f"asset {asset.code} in state {asset.state.value}" if asset else "an unregistered asset"
    return InvalidTransitionError(f"cannot record {etype} for {where}: {why}")


def _int(data: dict[str, Any], key: str, *, minimum: int = 0) -> int:
    v = data.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        msg = f"data.{key} must be an integer >= {minimum}, got {v!r}"
        raise ValueError(msg)
    return v


def _str(data: dict[str, Any], key: str) -> str:
    v = data.get(key)
    if not isinstance(v, str) or not v:
        msg = f"data.{key} must be a non-empty string, got {v!r}"
        raise ValueError(msg)
    return v


def apply(asset: Asset | None, event: dict[str, Any]) -> Asset:
    """Applies one event (envelope with ``seq``, ``type``, ``time``, ``data``).

    Returns the new state; the input is never modified. Authorisation
    (signatures, M of N) is the ledger's job; this checks the lifecycle.
    """
    etype = event["type"]
    t = parse_time(event["time"])
    data = event["data"]
    seq = event["seq"]
    if etype not in EVENT_TYPES:
        msg = f"unknown event type {etype!r}"
        raise ValueError(msg)

    if etype == "pledge_registered":
        if asset is not None:
            raise _fail(asset, etype, "the asset code is already registered")
        return Asset(
            code=event["asset"],
            vin=_str(data, "vin"),
            pledge_id=_str(data, "pledge_id"),
            state=State.PLEDGED,
            currency=_str(data, "currency"),
            loan_amount_minor=_int(data, "loan_amount_minor"),
            pledged_at=t,
            last_time=t,
            seqs=[seq],
        )
    if asset is None:
        raise _fail(None, etype, "register the pledge first")
    if t < asset.last_time:
        raise _fail(asset, etype, f"time {event['time']} is before the asset's last event")
    if asset.state in FINAL:
        raise _fail(asset, etype, "the asset's lifecycle has ended")
    deadline = trigger_deadline(asset)
    if etype != "judicial_disposal_triggered" and deadline is not None and t >= deadline:
        raise _fail(
            asset, etype, f"the 7-day judicial disposal trigger fell due at {format_time(deadline)}"
        )

    a = copy.copy(asset)
    a.seqs = [*asset.seqs, seq]
    a.last_time = t
    s = asset.state

    if etype == "valuation_updated":
        a.valuation_minor = _int(data, "value_minor")
        a.valuation_time = t
    elif etype == "alert_raised":
        aid = _str(data, "alert_id")
        if aid in asset.open_alerts:
            raise _fail(asset, etype, f"alert {aid} is already open")
        a.open_alerts = {**asset.open_alerts, aid: _str(data, "level")}
    elif etype == "alert_closed":
        aid = _str(data, "alert_id")
        if aid not in asset.open_alerts:
            raise _fail(asset, etype, f"alert {aid} is not open")
        a.open_alerts = {k: v for k, v in asset.open_alerts.items() if k != aid}
    elif etype == "loan_overdue":
        if s not in (State.PLEDGED, State.OVERDUE):
            raise _fail(asset, etype, "only a performing or overdue loan can be overdue")
        _int(data, "days_overdue", minimum=1)
        a.state = State.OVERDUE
    elif etype == "loan_cured":
        if s is not State.OVERDUE:
            raise _fail(asset, etype, "only an overdue loan can be cured")
        a.state = State.PLEDGED
    elif etype == "default_declared":
        if s not in (State.PLEDGED, State.OVERDUE):
            raise _fail(asset, etype, "default is declared on a pledged or overdue loan")
        _int(data, "outstanding_minor")
        a.state = State.DEFAULTED
        a.default_seq = seq
        a.default_time = t
    elif etype == "pledge_released":
        if s not in (State.PLEDGED, State.OVERDUE):
            raise _fail(asset, etype, "a pledge in default is disposed of, not released")
        a.state = State.RELEASED
    elif etype == "disposal_authorized":
        if s is not State.DEFAULTED:
            raise _fail(asset, etype, "disposal needs a declared default first")
        a.state = State.DISPOSAL_AUTHORIZED
    elif etype == "auction_opened":
        unsold = (
            s is State.AUCTION_CLOSED and asset.auction is not None and asset.auction.winner is None
        )
        if s is not State.DISPOSAL_AUTHORIZED and not unsold:
            raise _fail(
                asset,
                etype,
                "an auction needs an authorised disposal (or a previous auction without a sale)",
            )
        if asset.valuation_minor is None:
            raise _fail(asset, etype, "the reserve price comes from a valuation, and there is none")
        kind = _str(data, "kind")
        if kind not in ("ascending", "sealed"):
            msg = f"data.kind must be 'ascending' or 'sealed', got {kind!r}"
            raise ValueError(msg)
        ratio_ppm = _int(data, "reserve_ratio_ppm", minimum=1)
        reserve = _int(data, "reserve_minor")
        if reserve != asset.valuation_minor * ratio_ppm // 1_000_000:
            raise _fail(
                asset,
                etype,
                "reserve_minor must be the latest valuation times reserve_ratio_ppm / 1e6",
            )
        closes = parse_time(_str(data, "closes_at"))
        if closes <= t:
            msg = "data.closes_at must be after the opening time"
            raise ValueError(msg)
        a.auctions = [
            *asset.auctions,
            Auction(
                auction_id=_str(data, "auction_id"),
                kind=kind,
                reserve_minor=reserve,
                min_increment_minor=_int(data, "min_increment_minor"),
                opened_at=t,
                closes_at=closes,
            ),
        ]
        a.state = State.AUCTION_OPEN
    elif etype == "bid_placed":
        au = asset.auction
        if s is not State.AUCTION_OPEN or au is None:
            raise _fail(asset, etype, "no auction is open")
        if _str(data, "auction_id") != au.auction_id:
            raise _fail(asset, etype, f"the open auction is {au.auction_id}")
        if t >= au.closes_at:
            raise _fail(asset, etype, "bidding has closed")
        bidder = _str(data, "bidder")
        nau = copy.copy(au)
        if au.kind == "ascending":
            amount = _int(data, "amount_minor")
            floor = (
                au.reserve_minor
                if au.best_minor is None
                else au.best_minor + max(au.min_increment_minor, 1)
            )
            if amount < floor:
                raise _fail(asset, etype, f"a bid must be at least {floor}")
            nau.best_bidder, nau.best_minor = bidder, amount
        else:
            commitment = _str(data, "commitment")
            if len(commitment) != 64 or any(c not in "0123456789abcdef" for c in commitment):
                msg = "data.commitment must be 64 lowercase hex digits"
                raise ValueError(msg)
            if bidder in au.commitments:
                raise _fail(asset, etype, f"{bidder} has already bid in this sealed auction")
            nau.commitments = {**au.commitments, bidder: commitment}
        nau.bids = [*au.bids, {"seq": seq, "bidder": bidder}]
        a.auctions = [*asset.auctions[:-1], nau]
    elif etype == "auction_closed":
        au = asset.auction
        if s is not State.AUCTION_OPEN or au is None:
            raise _fail(asset, etype, "no auction is open")
        if t < au.closes_at:
            raise _fail(asset, etype, f"the auction runs until {format_time(au.closes_at)}")
        nau = copy.copy(au)
        winner, price = auction_result(asset, au, data)
        if data.get("winner") != winner or data.get("price_minor") != price:
            raise _fail(asset, etype, f"the result is winner={winner!r} price_minor={price!r}")
        nau.winner, nau.price_minor, nau.closed_at = winner, price, t
        a.auctions = [*asset.auctions[:-1], nau]
        a.state = State.AUCTION_CLOSED
    elif etype == "settled":
        au = asset.auction
        if s is not State.AUCTION_CLOSED or au is None or au.winner is None:
            raise _fail(asset, etype, "settlement follows an auction with a winner")
        if data.get("buyer") != au.winner or data.get("amount_minor") != au.price_minor:
            raise _fail(asset, etype, f"the winner {au.winner} pays {au.price_minor}")
        a.state = State.SETTLED
        a.settled_time = t
    elif etype == "judicial_disposal_triggered":
        if deadline is None:
            raise _fail(asset, etype, "no 7-day disposal deadline is pending")
        if t != deadline:
            raise _fail(asset, etype, f"the trigger time is the deadline {format_time(deadline)}")
        a.triggered_for = asset.last_disposal_action

    if etype in DISPOSAL_ACTIONS:
        a.last_disposal_action = t
    return a


def auction_result(
    asset: Asset, au: Auction, data: dict[str, Any]
) -> tuple[str | None, int | None]:
    if au.kind == "ascending":
        return au.best_bidder, au.best_minor
    reveals = data.get("reveals", [])
    if not isinstance(reveals, list):
        msg = "data.reveals must be a list"
        raise TypeError(msg)
    best: tuple[int, int, str] | None = None  # (amount, -order, bidder)
    order = {b["bidder"]: i for i, b in enumerate(au.bids)}
    seen = set()
    for r in reveals:
        bidder, amount, nonce = r.get("bidder"), r.get("amount_minor"), r.get("nonce")
        if bidder not in au.commitments or bidder in seen:
            raise _fail(
                asset, "auction_closed", f"reveal for {bidder!r} has no (or a repeated) sealed bid"
            )
        seen.add(bidder)
        if not isinstance(amount, int) or not isinstance(nonce, str):
            msg = "each reveal needs bidder, integer amount_minor and string nonce"
            raise TypeError(msg)
        if bid_commitment(au.auction_id, bidder, amount, nonce) != au.commitments[bidder]:
            raise _fail(
                asset, "auction_closed", f"the reveal of {bidder} does not match its commitment"
            )
        if amount >= au.reserve_minor:
            cand = (amount, -order[bidder], bidder)
            if best is None or cand > best:
                best = cand
    return (best[2], best[0]) if best else (None, None)
