"""Auctions of a disposed asset: open (reserve from the latest valuation),
bid (ascending or sealed commitments), close and settle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..errors import InvalidTransitionError
from . import lifecycle as lc
from .envelope import Entry
from .log import LedgerLog
from .note import NoteSigner

__all__ = ["AuctionLedger"]


class AuctionLedger(LedgerLog):
    """The auction helpers of :class:`~autolien.ledger.assets.AssetLedger`."""

    def open_auction(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        closes_at: datetime,
        kind: str = "ascending",
        reserve_ratio_ppm: int = 1_000_000,
        min_increment_minor: int = 0,
        auction_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Opens an auction; the reserve is the latest valuation x reserve_ratio_ppm / 1e6."""
        if done := self._retried(idempotency_key, actor, "auction_opened", code):
            return done
        a = self.asset(code)
        if a.valuation_minor is None:
            raise InvalidTransitionError(f"asset {a.code} has no valuation to set a reserve from")
        data = {
            "auction_id": auction_id or f"{a.code}-A{len(a.auctions) + 1}",
            "kind": kind,
            "reserve_ratio_ppm": reserve_ratio_ppm,
            "reserve_minor": a.valuation_minor * reserve_ratio_ppm // 1_000_000,
            "min_increment_minor": min_increment_minor,
            "closes_at": lc.format_time(closes_at),
        }
        return self.record(
            "auction_opened", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def place_bid(
        self,
        code: str,
        bidder: str,
        *,
        actor: NoteSigner,
        time: datetime,
        amount_minor: int | None = None,
        commitment: str | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """A bid: an amount (ascending) or a commitment (sealed, see lifecycle.bid_commitment)."""
        au = self.asset(code).auction
        data: dict[str, Any] = {"auction_id": au.auction_id if au else "", "bidder": bidder}
        if commitment is not None:
            data["commitment"] = commitment
        if amount_minor is not None:
            data["amount_minor"] = amount_minor
        return self.record(
            "bid_placed", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def close_auction(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        reveals: Sequence[Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
    ) -> Entry:
        """Closes the auction; for sealed bids, ``reveals`` opens the commitments."""
        if done := self._retried(idempotency_key, actor, "auction_closed", code):
            return done
        a = self.asset(code)
        au = a.auction
        if au is None or a.state is not lc.State.AUCTION_OPEN:
            raise InvalidTransitionError(
                f"cannot record auction_closed for asset {a.code}: no auction is open"
            )
        data: dict[str, Any] = {"auction_id": au.auction_id}
        if au.kind == "sealed":
            data["reveals"] = [dict(r) for r in reveals]
        winner, price = lc.auction_result(a, au, data)
        data["winner"] = winner
        data["price_minor"] = price
        return self.record(
            "auction_closed", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )

    def settle(
        self,
        code: str,
        *,
        actor: NoteSigner,
        time: datetime,
        idempotency_key: str | None = None,
    ) -> Entry:
        if done := self._retried(idempotency_key, actor, "settled", code):
            return done
        au = self.asset(code).auction
        data = {"buyer": au.winner if au else None, "amount_minor": au.price_minor if au else None}
        return self.record(
            "settled", code, data, actor=actor, time=time, idempotency_key=idempotency_key
        )
