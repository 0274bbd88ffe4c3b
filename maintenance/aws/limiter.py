"""Client-side rate limiting: a token bucket per AWS account, region and kind of call.

EC2 throttles each account and region with token buckets. A client-side bucket of the same
shape (``settings.AWS_READ_RATE`` / ``AWS_READ_BURST``, and the write pair) is shared by every
caller in the process and paces each HTTP attempt, retries included, so a large sync runs at
EC2's refill rate instead of bouncing off ``RequestLimitExceeded``.

EC2's read bucket is the whole account's, shared with Terraform, the console and every other
tool. vpnctl's reads (sync, preflight, watching) take only ``settings.AWS_READ_SHARE`` of it:
the read bucket is built here with the rate *and* the burst scaled by the share (0.5 of
20/s and 100: 10/s and 50), so the rest is always left to the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The two kinds of call: each has its own rate bucket and its own client configuration.
READ = "read"
WRITE = "write"


class TokenBucket:
    """A token bucket shared by every thread calling one account and region.

    Each caller reserves a token under the lock (the count may go negative: that is the
    queue of callers already waiting) and sleeps, outside the lock, until its token is due.
    Callers are therefore served in order, exactly at ``rate`` per second once ``burst`` is
    spent, which is how EC2 refills its own bucket. A rate of 0 or less disables it.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, float(burst))
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; return how many seconds the caller must wait before using it."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Take a token, sleeping until it is due. Returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait


# Guarded by ``clients._lock``, which also guards the client and session caches, and
# emptied by ``clients.reset_clients``.
_buckets: dict[tuple[str, ...], TokenBucket] = {}


def read_share() -> float:
    """``settings.AWS_READ_SHARE``, checked: above 0 and at most 1."""
    share = settings.AWS_READ_SHARE
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        raise ImproperlyConfigured(
            f"VPNCTL_AWS_READ_SHARE must be a number above 0 and at most 1 (the share of "
            f"EC2's read rate and burst that vpnctl uses), not {share!r}."
        )
    return float(share)


def _bucket(account: Any, region: str, kind: str) -> TokenBucket:
    """The rate bucket of an AWS account, region and kind of call (caller holds clients._lock).

    Keyed by the AWS account number, not the vpnctl row: EC2 counts per AWS account. The
    read bucket is vpnctl's share of EC2's: rate and burst both scaled by ``read_share()``.
    """
    key = (str(account.account_id), region, kind)
    bucket = _buckets.get(key)
    if bucket is None:
        if kind == READ:
            share = read_share()
            bucket = TokenBucket(settings.AWS_READ_RATE * share, settings.AWS_READ_BURST * share)
        else:
            bucket = TokenBucket(settings.AWS_WRITE_RATE, settings.AWS_WRITE_BURST)
        _buckets[key] = bucket
    return bucket
