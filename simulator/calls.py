"""What stands between a caller and the five simulated actions: throttling, faults, the log.

Calls and their outcomes
------------------------
Each call of the five actions (``SIMULATED_ACTIONS``), in this order: throttled
(``RequestLimitExceeded``, HTTP 503), or answered by an injected fault, or
``DryRunOperation`` (HTTP 412) if ``DryRun``, or handled. It is logged as a ``CallRecord``
whose outcome is ``"ok"`` only when AWS accepted it, so
``SIMULATOR.calls("ReplaceVpnTunnel", outcome="ok")`` counts the changes that reached AWS.
``inject_fault(..., applied=True)`` lets the call take effect and loses the answer (the
ambiguous failure). Every answer carries its own request id, in the body and in
``x-amzn-requestid``, as AWS's do. STS and the other EC2 calls go straight to moto.

Throttling follows EC2's token buckets, per account and region, reads and writes apart, and
refills on ``time.monotonic()`` so that travelling in time does not hand out tokens.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.responses import EC2Response

from simulator.constants import SIMULATED_ACTIONS, WRITE_ACTIONS
from simulator.tunnels import utc_now

# An HTTP answer as moto's handlers give it: status, headers, body.
Answer = tuple[int, dict, str]


@dataclass
class Throttling:
    """EC2's token buckets, per account and region: capacity and refill per second."""

    read_capacity: float = 100
    read_refill: float = 20
    write_capacity: float = 50
    write_refill: float = 5

    def scaled(self, factor: float) -> Throttling:
        return Throttling(
            read_capacity=self.read_capacity * factor,
            read_refill=self.read_refill * factor,
            write_capacity=self.write_capacity * factor,
            write_refill=self.write_refill * factor,
        )


@dataclass(frozen=True)
class CallRecord:
    """One call of a simulated action, as AWS saw it."""

    at: datetime
    action: str
    account_id: str
    region: str
    params: dict[str, Any]
    # "ok", "throttled", "fault" (refused by an injected fault), or the EC2 error code.
    outcome: str
    request_id: str = ""
    # The injected error code the caller saw instead of the real answer, if any. With
    # inject_fault(..., applied=True) the outcome is what AWS did ("ok") and this is set.
    fault: str | None = None


@dataclass
class _Fault:
    code: str
    message: str
    http_status: int
    remaining: int
    applied: bool


@dataclass
class _Bucket:
    tokens: float
    stamp: float


_THROTTLED = "Request limit exceeded."
_DRY_RUN = "Request would have succeeded, but DryRun flag is set."
_ERROR_CODE_RE = re.compile(r"<Code>([^<]+)</Code>")
_REQUEST_ID_RE = re.compile(r"<(requestId|RequestID)>[^<]*</\1>")


class CallGate:
    """Throttling, injected faults, DryRun and the call log; a base of ``Simulator``.

    ``Simulator`` provides ``_lock``: one lock for both, since a call holds it while moto
    runs the handlers, which take it again.
    """

    _lock: threading.RLock
    _LOG_LIMIT = 20_000  # a demo server runs for days; counts are kept apart, untrimmed

    def __init__(self) -> None:
        self.throttling: Throttling | None = None
        self.call_log: list[CallRecord] = []
        self._counts: Counter[tuple[str, str]] = Counter()
        self._faults: dict[str, deque[_Fault]] = {}
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}
        # Throttling's clock; tests may replace it to refill buckets deterministically.
        self._monotonic: Callable[[], float] = time.monotonic

    def _reset_calls(self) -> None:
        self.throttling = None
        self.call_log.clear()
        self._counts.clear()
        self._faults.clear()
        self._buckets.clear()

    def _set_throttling(self, throttling: Throttling | None) -> None:
        self.throttling = throttling
        self._buckets.clear()  # full buckets, as after a quiet while

    # The public, in-process API ------------------------------------------------------

    def inject_fault(
        self,
        action: str,
        code: str,
        message: str = "Injected fault",
        count: int = 1,
        http_status: int = 400,
        *,
        applied: bool = False,
    ) -> None:
        """Answer the next ``count`` calls of ``action`` with this EC2 error.

        With ``applied=True`` AWS acts on the call first and the answer is lost on the way
        back: the ambiguous failure that a mutating call must survive.
        """
        if action not in SIMULATED_ACTIONS:
            raise ValueError(f"{action} is not simulated; one of {sorted(SIMULATED_ACTIONS)}")
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.setdefault(action, deque()).append(
                _Fault(code, message, int(http_status), int(count), applied)
            )

    def calls(self, action: str | None = None, *, outcome: str | None = None) -> int:
        """How many calls of ``action`` (any, if None) ended with ``outcome`` (any)."""
        with self._lock:
            return sum(
                n
                for (a, o), n in self._counts.items()
                if (action is None or a == action) and (outcome is None or o == outcome)
            )

    def call_counts(self) -> dict[str, dict[str, int]]:
        """{action: {outcome: count}}."""
        with self._lock:
            counts: dict[str, dict[str, int]] = {}
            for (action, outcome), n in sorted(self._counts.items()):
                counts.setdefault(action, {})[outcome] = n
            return counts

    # One call ------------------------------------------------------------------------

    def _handle_call(
        self, response: EC2Response, action: str, moto_answer: Callable[[EC2Response], Answer]
    ) -> Answer:
        """Answer one call of a simulated action, and log it.

        ``moto_answer`` is moto's own ``call_action``, which runs the handler.
        """
        request_id = str(uuid.uuid4())
        account_id, region = response.current_account, response.region
        params = _plain_params(response)
        with self._lock:
            outcome, answer, fault = self._answer(
                response, action, account_id, region, params, moto_answer
            )
            self._record(action, account_id, region, params, outcome, request_id, fault)
        return _with_request_id(*answer, request_id)

    def _answer(
        self,
        response: EC2Response,
        action: str,
        account_id: str,
        region: str,
        params: dict[str, Any],
        moto_answer: Callable[[EC2Response], Answer],
    ) -> tuple[str, Answer, str | None]:
        """Throttling, then injected faults, then DryRun, then moto and our handlers.

        Returns the outcome for the log, the HTTP answer, and the injected fault's code.
        """
        if not self._take_token(account_id, region, action):
            # EC2 answers throttling with HTTP 503.
            return "throttled", _error(response, "RequestLimitExceeded", _THROTTLED, 503), None
        fault = self._next_fault(action)
        if fault is not None and not fault.applied:
            return (
                "fault",
                _error(response, fault.code, fault.message, fault.http_status),
                fault.code,
            )
        if params.get("DryRun"):
            return "DryRunOperation", _error(response, "DryRunOperation", _DRY_RUN, 412), None
        status, headers, body = moto_answer(response)
        outcome = "ok" if status < 400 else _error_code(body)
        if fault is not None:
            # AWS acted (or refused) and the answer was lost: the caller sees only the fault.
            return (
                outcome,
                _error(response, fault.code, fault.message, fault.http_status),
                fault.code,
            )
        return outcome, (status, headers, body), None

    def _take_token(self, account_id: str, region: str, action: str) -> bool:
        limits = self.throttling
        if limits is None:
            return True
        if action in WRITE_ACTIONS:
            kind, capacity, refill = "write", limits.write_capacity, limits.write_refill
        else:
            kind, capacity, refill = "read", limits.read_capacity, limits.read_refill
        now = self._monotonic()
        bucket = self._buckets.get((account_id, region, kind))
        if bucket is None:
            bucket = self._buckets[(account_id, region, kind)] = _Bucket(capacity, now)
        else:
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * refill)
            bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        return False  # a refused call takes no token, as in EC2

    def _next_fault(self, action: str) -> _Fault | None:
        queue = self._faults.get(action)
        if not queue:
            return None
        fault = queue[0]
        fault.remaining -= 1
        if fault.remaining <= 0:
            queue.popleft()
        return fault

    def _record(
        self,
        action: str,
        account_id: str,
        region: str,
        params: dict[str, Any],
        outcome: str,
        request_id: str,
        fault: str | None,
    ) -> None:
        self._counts[(action, outcome)] += 1
        self.call_log.append(
            CallRecord(utc_now(), action, account_id, region, params, outcome, request_id, fault)
        )
        if len(self.call_log) > self._LOG_LIMIT:
            del self.call_log[: len(self.call_log) - self._LOG_LIMIT]


def _plain_params(response: EC2Response) -> dict[str, Any]:
    params = getattr(response, "params", None) or {}
    original = getattr(params, "original_dict", None)
    if callable(original):
        params = original()
    # A plain, JSON-able copy: the log outlives the request.
    return json.loads(json.dumps(params, default=str))


def _error(response: EC2Response, code: str, message: str, status: int) -> Answer:
    """An EC2 error answer, serialised by moto like its own."""
    _, headers, body = response.serialized(ActionResult(EC2ClientError(code, message)))
    return status, dict(headers), body


def _error_code(body: str | bytes) -> str:
    text = body.decode() if isinstance(body, bytes) else body
    match = _ERROR_CODE_RE.search(text)
    return match.group(1) if match else "UnknownError"


def _with_request_id(status: int, headers: dict, body: str | bytes, request_id: str) -> Answer:
    # moto's EC2 answers all say "request-id"; AWS gives each call its own, and vpnctl
    # records it.
    text = body.decode() if isinstance(body, bytes) else body
    text = _REQUEST_ID_RE.sub(lambda m: f"<{m.group(1)}>{request_id}</{m.group(1)}>", text)
    headers = {k: v for k, v in headers.items() if k.lower() not in ("x-amzn-requestid", "status")}
    headers["x-amzn-requestid"] = request_id
    return status, headers, text
