"""M-of-N disposal: the request members sign, their approvals, the
``disposal_authorized`` event, and the disposal report. The replay's check of
an authorisation lives with the log (log.py), which every entry goes through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..errors import InvalidTransitionError
from . import lifecycle as lc
from .envelope import Entry, _b64, _data, disposal_signing_bytes
from .identity import validate_asset_code
from .log import LedgerLog
from .note import NoteSigner

__all__ = ["DISPOSAL_REQUEST_FIELDS", "DisposalLedger", "check_disposal_request"]

DISPOSAL_REQUEST_FIELDS = {
    "type": str,
    "asset": str,
    "default_seq": int,
    "reason": str,
    "requested_at": str,
}


def check_disposal_request(request: Any) -> None:
    """TypeError/ValueError unless ``request`` has the shape of a disposal request."""
    if not isinstance(request, Mapping):
        msg = f"a disposal request is a JSON object, got {type(request).__name__}"
        raise TypeError(msg)
    if set(request) != set(DISPOSAL_REQUEST_FIELDS):
        msg = f"a disposal request has the fields {sorted(DISPOSAL_REQUEST_FIELDS)}, got {sorted(request)}"
        raise ValueError(msg)
    for k, t in DISPOSAL_REQUEST_FIELDS.items():
        if not isinstance(request[k], t) or isinstance(request[k], bool):
            msg = f"disposal request field {k} must be a {t.__name__}"
            raise TypeError(msg)
    if request["type"] != "disposal_request":
        msg = f"not a disposal request (type {request['type']!r})"
        raise ValueError(msg)
    validate_asset_code(request["asset"])
    lc.parse_time(request["requested_at"])


class DisposalLedger(LedgerLog):
    """The disposal helpers of :class:`~autolien.ledger.assets.AssetLedger`."""

    def disposal_request(self, code: str, *, reason: str, time: datetime) -> dict[str, Any]:
        """The canonical request that members sign to authorise a disposal."""
        a = self.asset(code)
        if a.default_seq is None:
            raise InvalidTransitionError(f"asset {a.code} has no declared default to dispose of")
        return {
            "type": "disposal_request",
            "asset": a.code,
            "default_seq": a.default_seq,
            "reason": reason,
            "requested_at": lc.format_time(time),
        }

    @staticmethod
    def approve_disposal(request: Mapping[str, Any], member: NoteSigner) -> dict[str, str]:
        """One member's approval: its Ed25519 signature over the canonical request.

        Only a disposal request (as :meth:`disposal_request` makes it) is
        signed; anything else raises TypeError or ValueError.
        """
        check_disposal_request(request)
        return {"member": member.name, "sig": _b64(member.sign(disposal_signing_bytes(request)))}

    def authorize_disposal(
        self,
        code: str,
        request: Mapping[str, Any],
        approvals: Sequence[Mapping[str, str]],
        *,
        actor: NoteSigner,
        time: datetime,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Records ``disposal_authorized`` if M distinct members signed this request."""
        aps = [_data(a, f"approvals[{i}]") for i, a in enumerate(approvals)]
        data = {"request": _data(request, "request"), "approvals": aps}
        return self.record(
            "disposal_authorized",
            code,
            data,
            actor=actor,
            time=time,
            idempotency_key=idempotency_key,
        )

    def disposal_report(self, code: str) -> dict[str, Any]:
        """Reserve, price, premium over reserve and the disposal cycle time."""
        a = self.asset(code)
        au = a.auction
        out: dict[str, Any] = {"asset": a.code, "state": a.state.value}
        if au is not None:
            out.update(
                auction_id=au.auction_id,
                kind=au.kind,
                reserve_minor=au.reserve_minor,
                winner=au.winner,
                price_minor=au.price_minor,
            )
            if au.price_minor is not None and au.reserve_minor:
                out["premium_over_reserve"] = (au.price_minor - au.reserve_minor) / au.reserve_minor
        end = a.settled_time or (au.closed_at if au else None)
        if a.default_time is not None and end is not None:
            out["cycle_time_days"] = (end - a.default_time) / timedelta(days=1)
        return out
