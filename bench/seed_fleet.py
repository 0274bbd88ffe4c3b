"""A realistic vpnctl estate, written fast through the ORM: for bench/pages.py and tests.

    from seed_fleet import seed, samples      # after django.setup(), on a migrated database
    fleet = seed(connections=5000)           # about 30 s on SQLite
    picked = samples()                       # the rows the benchmark's pages show

Everything scales with ``connections`` (C), so C=500 gives a tenth of the default estate:

- C/50 AWS accounts (at least one) with 3 regions each; C connections spread over them, 2C
  tunnels: ~30 % with pending maintenance and AWS deadlines over the next 60 days, some
  DOWN, lifecycle control on, off or on one tunnel only; ~2 % of connections gone from AWS;
- 0.4C change requests in every status (one of each at least), with the approvals,
  executions and steps that status implies; C/250 batches among them; the open ones keep
  the rules a submission checks (a replacement only with pending maintenance, a window
  ending before AWS's deadline, one open request per connection but a batch's two);
- C/25 sync runs, every 15 minutes back from now, each with a result per account and region;
- 20C audit events over the last year, across accounts and actions, chained exactly as
  ``AuditEvent.record`` chains them (each hash computed by the model's own
  ``compute_hash``), so the audit pages and the exports see a valid chain;
- users in every role; ``bench-lead`` holds all four roles and is staff (it sees every
  page and the admin), has a profile in Asia/Tokyo and a calendar feed.

Every row is a ``bulk_create`` (no model ``save``), in a fixed random order (``rng_seed``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission, User
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from maintenance import roles
from maintenance.choices import (
    ActorKind,
    AuditAction,
    ChangeKind,
    ChangeStatus,
    ConnectionState,
    Decision,
    ExecutionOutcome,
    PendingMaintenance,
    StepLevel,
    SyncStatus,
    SyncTrigger,
    TunnelStatus,
)
from maintenance.models import (
    GENESIS_HASH,
    Approval,
    AuditChainHead,
    AuditEvent,
    AwsAccount,
    BlackoutPeriod,
    CalendarFeed,
    ChangeBatch,
    ChangeRequest,
    Execution,
    ExecutionStep,
    HealthEvent,
    MaintenancePolicy,
    PolicyApproval,
    SyncResult,
    SyncRun,
    Tunnel,
    UserProfile,
    VpnConnection,
    WorkerHeartbeat,
    canonical_json,
)
from maintenance.texts import N_, Text, english

LEAD = "bench-lead"
REGION_SETS = [
    ["ap-northeast-1", "ap-northeast-3", "ap-southeast-1"],
    ["us-east-1", "us-west-2", "eu-west-1"],
    ["eu-central-1", "eu-west-2", "ap-south-1"],
]
SITES = ["tokyo-dc", "osaka-dc", "branch", "factory", "store", "warehouse", "lab", "partner"]
TEAMS = ["network", "payments", "retail", "logistics", "research", "corp-it"]
BATCH_SIZE = 2000

# Share of the single (non-batch) requests in each status.
STATUS_SHARES = [
    (ChangeStatus.PENDING_APPROVAL, 0.12),
    (ChangeStatus.APPROVED, 0.07),
    (ChangeStatus.RUNNING, 0.01),
    (ChangeStatus.SUCCEEDED, 0.45),
    (ChangeStatus.FAILED, 0.05),
    (ChangeStatus.TIMED_OUT, 0.02),
    (ChangeStatus.BLOCKED, 0.03),
    (ChangeStatus.REJECTED, 0.06),
    (ChangeStatus.CANCELLED, 0.07),
    (ChangeStatus.EXPIRED, 0.08),
    (ChangeStatus.SUPERSEDED, 0.04),
]
APPROVED_ONCE = {
    ChangeStatus.APPROVED,
    ChangeStatus.RUNNING,
    ChangeStatus.SUCCEEDED,
    ChangeStatus.FAILED,
    ChangeStatus.TIMED_OUT,
    ChangeStatus.BLOCKED,
    ChangeStatus.SUPERSEDED,
}
EXECUTED = APPROVED_ONCE - {ChangeStatus.APPROVED}


@dataclass(frozen=True)
class Sizes:
    connections: int
    accounts: int
    requests: int
    batches: int
    sync_runs: int
    audit_events: int

    @property
    def tunnels(self) -> int:
        return 2 * self.connections

    @classmethod
    def scaled(cls, connections: int) -> Sizes:
        return cls(
            connections=connections,
            accounts=max(1, round(connections / 50)),
            requests=round(connections * 0.4),
            batches=max(1, round(connections / 250)),
            sync_runs=max(3, round(connections / 25)),
            audit_events=20 * connections,
        )


@dataclass
class Fleet:
    """What seed() wrote: the sizes and the row counts, and who to sign in as."""

    sizes: Sizes
    counts: dict[str, int]
    lead: User


# --------------------------------------------------------------------------------------
# The audit chain, in memory until the end
# --------------------------------------------------------------------------------------


class _Chain:
    """Events collected in any order, then sorted by time, numbered and hashed."""

    def __init__(self, parents: dict[str, dict[int, int]]) -> None:
        self.rows: list[dict[str, Any]] = []
        self.parents = parents  # "tunnel" -> {tunnel: connection}, "connection" -> {...: account}

    def add(
        self,
        at: datetime,
        action: str,
        message: Any,
        *,
        user: User | None = None,
        kind: str = ActorKind.SYSTEM,
        account: int | None = None,
        connection: int | None = None,
        tunnel: int | None = None,
        request: ChangeRequest | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        # What AuditEvent.record does with its arguments, without the queries.
        details = dict(details or {})
        if isinstance(message, Text):
            details["text"] = message.as_data()
        if request is not None and tunnel is None:
            tunnel = request.tunnel_id
        if tunnel is not None and connection is None:
            connection = self.parents["tunnel"][tunnel]
        if connection is not None and account is None:
            account = self.parents["connection"][connection]
        self.rows.append(
            {
                "at": at,
                "actor_id": user.pk if user else None,
                "actor_name": user.username if user else str(kind),
                "actor_kind": ActorKind.USER if user else kind,
                "action": str(action),
                "account_id": account,
                "connection_id": connection,
                "tunnel_id": tunnel,
                "change_request_id": request.pk if request else None,
                "message": english(message),
                "details": json.loads(canonical_json(details)),
            }
        )

    def write(self) -> int:
        """Number, hash and insert every event after the chain's current head."""
        head, _ = AuditChainHead.objects.get_or_create(pk=1)
        seq, prev = head.count, head.last_hash or GENESIS_HASH
        self.rows.sort(key=lambda row: row["at"])
        batch: list[AuditEvent] = []
        for row in self.rows:
            seq += 1
            event = AuditEvent(seq=seq, prev_hash=prev, **row)
            # The model's own hashing: the chain verifies exactly as a recorded one does.
            event.hash = prev = event.compute_hash()
            batch.append(event)
            if len(batch) == BATCH_SIZE:
                AuditEvent.objects.bulk_create(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
        AuditChainHead.objects.filter(pk=1).update(last_hash=prev, count=seq)
        return len(self.rows)


# --------------------------------------------------------------------------------------
# Seeding
# --------------------------------------------------------------------------------------


def _users(now: datetime) -> dict[str, Any]:
    """The lead (every role, staff), 20 requesters, 8 approvers, 2 admins, 3 auditors."""
    if Group.objects.filter(name__in=roles.ROLE_PERMISSIONS).count() < len(roles.ROLE_PERMISSIONS):
        roles.sync_roles(Group, Permission)  # a flushed test database has lost them
    groups = {g.name: g for g in Group.objects.filter(name__in=roles.ROLE_PERMISSIONS)}
    unusable = make_password(None)
    people = [(LEAD, list(roles.ROLE_PERMISSIONS), True)]
    people += [(f"req-{i:02d}", [roles.REQUESTER], False) for i in range(1, 21)]
    people += [(f"appr-{i:02d}", [roles.APPROVER], False) for i in range(1, 9)]
    people += [(f"admin-{i}", [roles.ADMIN], True) for i in range(1, 3)]
    people += [(f"audit-{i}", [roles.AUDITOR], False) for i in range(1, 4)]
    users = User.objects.bulk_create(
        User(
            username=name,
            email=f"{name}@example.com",
            password=unusable,
            is_staff=staff,
            date_joined=now - timedelta(days=400),
        )
        for name, _, staff in people
    )
    User.groups.through.objects.bulk_create(
        User.groups.through(user_id=user.pk, group_id=groups[role].pk)
        for user, (_, role_names, _) in zip(users, people, strict=True)
        for role in role_names
    )
    by_name = {u.username: u for u in users}
    lead = by_name[LEAD]
    UserProfile.objects.create(user=lead, time_zone="Asia/Tokyo")
    return {
        "lead": lead,
        "requesters": [u for u in users if u.username.startswith("req-")],
        "approvers": [u for u in users if u.username.startswith("appr-")],
        "admins": [u for u in users if u.username.startswith("admin-")],
        "all": users,
    }


def _inventory(rng: random.Random, sizes: Sizes, now: datetime) -> dict[str, Any]:
    accounts = AwsAccount.objects.bulk_create(
        AwsAccount(
            name="default" if k == 0 else f"team-{k:03d}",
            account_id=f"{210000000000 + k * 7919:012d}",
            role_arn="" if k == 0 else f"arn:aws:iam::{210000000000 + k * 7919:012d}:role/vpnctl",
            regions=REGION_SETS[k % len(REGION_SETS)],
        )
        for k in range(sizes.accounts)
    )
    scopes = [(a, r) for a in accounts for r in a.regions]
    connections = []
    base_ip = int(ipaddress.IPv4Address("13.112.0.0"))
    for i in range(sizes.connections):
        account, region = scopes[i % len(scopes)]
        site = SITES[i % len(SITES)]
        name = f"{site}-{i:05d}"
        first_seen = now - timedelta(days=rng.uniform(30, 720))
        gone = rng.random() < 0.02
        state = ConnectionState.AVAILABLE
        if gone:
            state = ConnectionState.DELETED
        elif rng.random() < 0.03:
            state = rng.choice([ConnectionState.MODIFYING, ConnectionState.PENDING])
        n = rng.getrandbits(68)
        connections.append(
            VpnConnection(
                account=account,
                region=region,
                vpn_connection_id=f"vpn-{n:017x}",
                name=name,
                tags={
                    "Name": name,
                    "env": "prod" if i % 5 else "staging",
                    "team": TEAMS[i % len(TEAMS)],
                    "site": site,
                },
                state=state,
                type="ipsec.1",
                category="VPN",
                customer_gateway_id=f"cgw-{n ^ 0x5A5A:017x}",
                vpn_gateway_id=f"vgw-{n ^ 0xA5A5:017x}" if i % 3 else "",
                transit_gateway_id="" if i % 3 else f"tgw-{n ^ 0x3C3C:017x}",
                first_seen=first_seen,
                last_seen=now - timedelta(minutes=rng.uniform(0, 15)),
                gone_at=now - timedelta(days=rng.uniform(1, 60)) if gone else None,
            )
        )
    VpnConnection.objects.bulk_create(connections, batch_size=BATCH_SIZE)

    tunnels = []
    for i, conn in enumerate(connections):
        lifecycle = rng.choices(["both", "none", "half"], weights=[55, 30, 15])[0]
        down = rng.choices(["none", "one", "both", "unknown"], weights=[94, 3, 1, 2])[0]
        for j in range(2):
            status = TunnelStatus.UP
            if down == "both" or (down == "one" and j == 1):
                status = TunnelStatus.DOWN
            elif down == "unknown" and j == 0:
                status = TunnelStatus.UNKNOWN
            pending = rng.random() < 0.30
            tunnel = Tunnel(
                connection=conn,
                outside_ip=str(ipaddress.IPv4Address(base_ip + 2 * i + j)),
                lifecycle_control=lifecycle == "both" or (lifecycle == "half" and j == 0),
                status=status,
                status_message="" if status == TunnelStatus.UP else "IPSEC IS DOWN",
                last_status_change=now - timedelta(hours=rng.uniform(1, 2000)),
                accepted_route_count=rng.randint(1, 20) if status == TunnelStatus.UP else 0,
                pending_maintenance=PendingMaintenance.AVAILABLE
                if pending
                else PendingMaintenance.NONE,
                maintenance_auto_applied_after=now + timedelta(hours=rng.uniform(2, 60 * 24))
                if pending
                else None,
                last_maintenance_applied=now - timedelta(days=rng.uniform(1, 365))
                if rng.random() < 0.4
                else None,
                synced_at=None if conn.gone_at else now - timedelta(minutes=rng.uniform(0, 15)),
            )
            tunnels.append(tunnel)
    Tunnel.objects.bulk_create(tunnels, batch_size=BATCH_SIZE)
    return {"accounts": accounts, "scopes": scopes, "connections": connections, "tunnels": tunnels}


def _status_list(rng: random.Random, n: int) -> list[str]:
    """n statuses in STATUS_SHARES's proportions, every status at least once if n allows."""
    counts = {s: int(n * share) for s, share in STATUS_SHARES}
    if n >= len(STATUS_SHARES):
        for s in counts:
            counts[s] = max(1, counts[s])
    by_share = sorted(STATUS_SHARES, key=lambda item: -item[1])
    i = 0
    while sum(counts.values()) < n:
        counts[by_share[i % len(by_share)][0]] += 1
        i += 1
    while sum(counts.values()) > n:
        top = max(counts, key=counts.get)
        counts[top] -= 1
    statuses = [s for s, k in counts.items() for _ in range(k)]
    rng.shuffle(statuses)
    return statuses


class _Requests:
    """Builds requests with what their status implies, and their audit events."""

    def __init__(self, rng: random.Random, now: datetime, users: dict, inv: dict, chain: _Chain):
        self.rng, self.now, self.users, self.chain = rng, now, users, chain
        self.tunnels = inv["tunnels"]
        self.pairs: dict[int, list[Tunnel]] = {}  # connection -> its two tunnels
        for tunnel in self.tunnels:
            self.pairs.setdefault(tunnel.connection_id, []).append(tunnel)
        self.busy_connections: set[int] = set()  # connections with an open request
        self.requests: list[ChangeRequest] = []
        self.later: list[tuple[ChangeRequest, dict[str, Any]]] = []  # (request, plan)

    # -- choosing a tunnel ----------------------------------------------------------

    def _live(self, tunnel: Tunnel) -> bool:
        return tunnel.connection.gone_at is None

    def open_tunnel(self, kind: str, window_end_after: timedelta) -> Tunnel | None:
        """A tunnel a new request of this kind may target now, on a connection with none."""
        for _ in range(200):
            t = self.rng.choice(self.tunnels)
            if not self._live(t) or t.connection_id in self.busy_connections:
                continue
            if kind == ChangeKind.REPLACE and not t.has_pending_maintenance:
                continue
            if kind == ChangeKind.ENABLE_LIFECYCLE and t.lifecycle_control:
                continue
            if not self.ends_in_time(t, self.now + window_end_after):
                continue
            self.busy_connections.add(t.connection_id)
            return t
        return None

    def ends_in_time(self, tunnel: Tunnel, end: datetime) -> bool:
        """The deadline rule (rules.ends_after_deadline): the window ends before AWS acts."""
        deadline = tunnel.maintenance_auto_applied_after
        return not tunnel.has_pending_maintenance or (deadline is not None and end < deadline)

    def requester(self) -> User:
        if self.rng.random() < 0.05:
            return self.users["lead"]
        return self.rng.choice(self.users["requesters"])

    def approver(self, besides: User) -> User:
        pool = [*self.users["approvers"], self.users["lead"]]
        while True:
            # The lead decides about one in ten, as one approver among nine.
            user = self.rng.choice(pool)
            if user.pk != besides.pk:
                return user

    # -- one request ----------------------------------------------------------------

    def add(self, status: str, kind: str, *, batch: ChangeBatch | None = None, **fixed) -> bool:
        """Plan one request in `status`; False if no tunnel fits an open one."""
        rng, now = self.rng, self.now
        h = timedelta(hours=1)
        if status in ChangeStatus.OPEN:
            if status == ChangeStatus.RUNNING:
                start = now - timedelta(minutes=rng.uniform(5, 30))
                end = start + timedelta(hours=rng.uniform(1, 3))
                created = start - timedelta(days=rng.uniform(0.5, 4))
            else:
                created = now - timedelta(days=rng.uniform(0.05, 4))
                start = fixed.get("window_start") or now + timedelta(hours=rng.uniform(2, 14 * 24))
                end = fixed.get("window_end") or start + timedelta(hours=rng.uniform(1, 4))
            tunnel = fixed.get("tunnel") or self.open_tunnel(kind, end - now + h)
            if tunnel is None:
                return False
        else:
            # Ended: asked for 7 to 360 days ago, its window (within 5 days of that) over.
            tunnel = fixed.get("tunnel") or rng.choice(self.tunnels)
            created = fixed.get("created") or now - timedelta(days=rng.uniform(7, 360))
            start = fixed.get("window_start") or created + timedelta(hours=rng.uniform(2, 5 * 24))
            end = fixed.get("window_end") or start + timedelta(hours=rng.uniform(1, 4))
        requester = fixed.get("requester") or self.requester()
        start_when_approved = (
            batch is None and status == ChangeStatus.PENDING_APPROVAL and rng.random() < 0.1
        )
        request = ChangeRequest(
            kind=kind,
            tunnel=tunnel,
            skip_tunnel_replacement=kind == ChangeKind.ENABLE_LIFECYCLE and rng.random() < 0.2,
            requester=requester,
            reason=rng.choice(
                [
                    "Apply AWS's endpoint maintenance in our window, not theirs.",
                    "Quarterly maintenance window agreed with the site team.",
                    "Turn lifecycle control on so AWS waits for us.",
                    f"Ticket NET-{rng.randint(1000, 9999)}: planned change.",
                ]
            ),
            window_start=created if start_when_approved else start,
            window_end=end,
            start_when_approved=start_when_approved,
            required_approvals=2 if rng.random() < 0.1 else 1,
            status=status,
            created_at=created,
            updated_at=created,
            batch=batch,
        )
        request.fingerprint = request.compute_fingerprint()
        self.requests.append(request)
        self.later.append((request, {"start": start, "end": end}))
        return True

    # -- after the requests have their keys ---------------------------------------------

    def write(self) -> dict[str, int]:
        ChangeRequest.objects.bulk_create(self.requests, batch_size=BATCH_SIZE)
        approvals: list[Approval] = []
        executions: list[tuple[Execution, list[tuple[datetime, str, Text, dict]]]] = []
        for request, plan in self.later:
            self._story(request, plan, approvals, executions)
        ChangeRequest.objects.bulk_update(
            self.requests,
            ["window_start", "status_reason", "status_reason_text", "updated_at"]
            + ["approved_at", "finished_at", "execution_queued_at"],
            batch_size=BATCH_SIZE,
        )
        Approval.objects.bulk_create(approvals, batch_size=BATCH_SIZE)
        Execution.objects.bulk_create([e for e, _ in executions], batch_size=BATCH_SIZE)
        steps = [
            ExecutionStep(
                execution=execution,
                at=at,
                level=level,
                message=english(text),
                text=text.as_data(),
                data=json.loads(canonical_json(data)),
            )
            for execution, lines in executions
            for at, level, text, data in lines
        ]
        ExecutionStep.objects.bulk_create(steps, batch_size=BATCH_SIZE)
        return {
            "change requests": len(self.requests),
            "approvals": len(approvals),
            "executions": len(executions),
            "execution steps": len(steps),
        }

    def _story(self, request: ChangeRequest, plan: dict, approvals: list, executions: list):
        """Approvals, execution, steps and audit events, as the status implies them."""
        rng, chain = self.rng, self.chain
        status, created = request.status, request.created_at
        tunnel = request.tunnel
        ip = tunnel.outside_ip
        kind_label = ChangeKind(request.kind).label
        snapshot = {
            "kind": request.kind,
            "tunnel": ip,
            "connection": tunnel.connection.vpn_connection_id,
            "window_start": request.window_start,
            "window_end": request.window_end,
            "start_when_approved": request.start_when_approved,
            "skip_tunnel_replacement": request.skip_tunnel_replacement,
            "required_approvals": request.required_approvals,
            "fingerprint": request.fingerprint,
        }
        details = {**snapshot, "reason": request.reason}
        if request.batch_id:
            details["batch"] = request.batch_id
        chain.add(
            created,
            AuditAction.REQUEST_SUBMITTED,
            Text(
                N_("%(user)s requested: %(kind)s on %(tunnel)s"),
                user=request.requester.username,
                kind=kind_label,
                tunnel=str(tunnel),
            ),
            user=request.requester,
            request=request,
            details=details,
        )
        start, end = plan["start"], plan["end"]
        decided = created + (min(start, self.now) - created) * rng.uniform(0.05, 0.6)
        if status == ChangeStatus.RUNNING:
            decided = start - timedelta(minutes=rng.uniform(10, 600))
        needed = request.required_approvals
        if status in APPROVED_ONCE:
            givers: list[User] = []
            for k in range(needed):
                user = self.approver(request.requester)
                while any(g.pk == user.pk for g in givers):
                    user = self.approver(request.requester)
                givers.append(user)
                at = decided + timedelta(minutes=7 * k)
                approvals.append(self._approval(request, user, Decision.APPROVE, at))
            request.approved_at = decided + timedelta(minutes=7 * (needed - 1))
            if request.start_when_approved:
                request.window_start = request.approved_at
                start = request.approved_at
            chain.add(
                request.approved_at,
                AuditAction.REQUEST_APPROVED,
                Text(
                    N_("Approved by %(n)d of %(needed)d; it runs in its window."),
                    n=needed,
                    needed=needed,
                ),
                request=request,
                details={"window_start": request.window_start, "window_end": request.window_end},
            )
            request.updated_at = request.approved_at
        elif status == ChangeStatus.PENDING_APPROVAL:
            if needed == 2 or rng.random() < 0.05:
                # One approval given; or one given before the window changed, which no longer
                # counts (the request was rescheduled since).
                user = self.approver(request.requester)
                approval = self._approval(request, user, Decision.APPROVE, decided)
                if needed == 1:
                    old = hashlib.sha256(b"before " + approval.fingerprint.encode())
                    approval.fingerprint = old.hexdigest()
                    chain.add(
                        decided + (self.now - decided) / 2,
                        AuditAction.REQUEST_RESCHEDULED,
                        Text(N_("Window changed; %(n)d earlier approval(s) no longer count."), n=1),
                        user=request.requester,
                        request=request,
                        details={"before": snapshot, "after": snapshot},
                    )
                approvals.append(approval)
        elif status == ChangeStatus.REJECTED:
            user = self.approver(request.requester)
            comment = rng.choice(["Not during quarter end.", "Overlaps the DC move; later."])
            approvals.append(self._approval(request, user, Decision.REJECT, decided, comment))
            self._end(request, decided, comment)
        elif status == ChangeStatus.CANCELLED:
            reason = rng.choice(["Site asked to postpone.", "", "Wrong tunnel."])
            self._end(request, decided, reason)
            chain.add(
                decided,
                AuditAction.REQUEST_CANCELLED,
                Text(N_("%(user)s cancelled the request"), user=request.requester.username),
                user=request.requester,
                request=request,
                details={"reason": reason},
            )
        elif status == ChangeStatus.EXPIRED:
            closed = Text(N_("The window closed before the change could run."))
            self._end(request, end, closed)
            chain.add(
                end,
                AuditAction.REQUEST_EXPIRED,
                Text(N_("The window closed before the change ran.")),
                request=request,
            )
        if status not in EXECUTED:
            return
        request.execution_queued_at = start
        claimed = start + timedelta(seconds=rng.uniform(1, 60))
        execution = Execution(
            change_request=request,
            task_id=f"{rng.getrandbits(128):032x}",
            worker=f"worker-{rng.randint(1, 4)}:{rng.randint(100, 9999)}",
            claimed_at=claimed,
            heartbeat_at=claimed,
        )
        lines: list[tuple[datetime, str, Text, dict]] = []

        def step(at: datetime, text: Text, level: str = StepLevel.INFO, data=None) -> None:
            lines.append((at, level, text, data or {}))
            execution.heartbeat_at = max(execution.heartbeat_at, at)

        step(claimed, Text(N_("Execution started by worker %(w)s."), w=execution.worker))
        chain.add(
            claimed,
            AuditAction.EXECUTION_CLAIMED,
            Text(N_("The window is open; execution started.")),
            request=request,
            details={"task_id": execution.task_id, "worker": execution.worker},
        )
        executions.append((execution, lines))
        before = {
            "connection_state": "available",
            "status": "UP",
            "status_message": "",
            "lifecycle_control": request.kind == ChangeKind.REPLACE,
            "pending_maintenance": "Available",
            "maintenance_auto_applied_after": (start + timedelta(days=9)).isoformat(),
            "last_maintenance_applied": None,
            "ike": {
                "provisioning_status": "available",
                "provisioning_status_reason": "",
                "ike_version": "ikev2",
                "phase1_encryption": "AES256",
                "phase1_integrity": "SHA2-256",
                "phase1_dh_group": 20,
                "phase2_encryption": "AES256",
                "phase2_integrity": "SHA2-256",
                "phase2_dh_group": 20,
            },
        }
        t = claimed + timedelta(seconds=2)
        if status in (ChangeStatus.BLOCKED, ChangeStatus.SUPERSEDED):
            if status == ChangeStatus.BLOCKED:
                reason = Text(N_("The request no longer has the approvals it needs."))
                message = Text(N_("Blocked: %(reason)s Nothing was sent to AWS."), reason=reason)
                outcome, action = ExecutionOutcome.BLOCKED, AuditAction.EXECUTION_BLOCKED
                level = StepLevel.ERROR
            else:
                reason = Text(N_("Lifecycle control is already on for this tunnel."))
                message = Text(
                    N_("No longer needed: %(reason)s Nothing was sent to AWS."), reason=reason
                )
                outcome, action = ExecutionOutcome.SUPERSEDED, AuditAction.EXECUTION_SUPERSEDED
                level = StepLevel.INFO
            self._finish(request, execution, step, t, outcome, action, message, reason, level)
            return
        call = request.aws_call_name
        execution.calling_aws_at = t
        execution.before = before
        execution.watch_until = t + timedelta(minutes=30)
        step(t, Text(N_("Preflight checks passed. Calling AWS now.")), data=before)
        chain.add(
            t,
            AuditAction.EXECUTION_CALLING_AWS,
            Text(N_("About to call AWS: %(call)s"), call=call),
            request=request,
            details={"before": before},
        )
        t += timedelta(seconds=rng.uniform(0.3, 2))
        if status == ChangeStatus.FAILED and rng.random() < 0.6:
            code, msg = "IncorrectState", "The VPN connection is in the modifying state."
            execution.aws_error_code, execution.aws_error_message = code, msg
            reason = Text(N_("AWS refused the change."))
            message = Text(N_("Failed: AWS answered %(code)s: %(msg)s"), code=code, msg=msg)
            chain.add(
                t,
                AuditAction.EXECUTION_AWS_ERROR,
                Text(N_("AWS refused the change.")),
                kind=ActorKind.AWS,
                request=request,
                details={"aws_error_code": code, "aws_error_message": msg},
            )
            self._finish(
                request,
                execution,
                step,
                t,
                ExecutionOutcome.FAILED,
                AuditAction.EXECUTION_FAILED,
                message,
                reason,
                StepLevel.ERROR,
            )
            return
        execution.aws_answered_at = t
        execution.aws_request_id = f"{rng.getrandbits(128):032x}"
        step(
            t,
            Text(
                N_("AWS accepted the call (request id %(id)s). Watching the tunnel."),
                id=execution.aws_request_id,
            ),
        )
        chain.add(
            t,
            AuditAction.EXECUTION_AWS_ANSWERED,
            Text(N_("AWS accepted %(call)s"), call=call),
            kind=ActorKind.AWS,
            request=request,
            details={"request_id": execution.aws_request_id},
        )
        observed = {"tunnel": ip, "status": "DOWN", "status_message": "", "pending_maintenance": ""}
        t += timedelta(seconds=rng.uniform(30, 90))
        execution.down_seen_at = t
        seen = Text(N_("Tunnel %(ip)s is DOWN: AWS is working on it."), ip=ip)
        step(t, seen, StepLevel.WARNING, {**observed, "pending_maintenance": "Available"})
        chain.add(
            t,
            AuditAction.TUNNEL_SEEN_DOWN,
            seen,
            kind=ActorKind.AWS,
            request=request,
            details={**observed, "pending_maintenance": "Available"},
        )
        if status == ChangeStatus.RUNNING:
            execution.heartbeat_at = self.now - timedelta(seconds=20)
            execution.next_look_at = self.now + timedelta(seconds=10)
            return
        if status == ChangeStatus.TIMED_OUT:
            t = execution.watch_until
            reason = Text(N_("the tunnel is still %(status)s."), status="DOWN")
            message = Text(N_("Timed out: %(reason)s"), reason=reason)
            execution.after = {**before, "status": "DOWN"}
            self._finish(
                request,
                execution,
                step,
                t,
                ExecutionOutcome.TIMED_OUT,
                AuditAction.EXECUTION_TIMED_OUT,
                message,
                reason,
                StepLevel.ERROR,
            )
            return
        t += timedelta(seconds=rng.uniform(120, 600))
        execution.up_seen_at = t
        up = Text(N_("Tunnel %(ip)s is UP again."), ip=ip)
        observed = {**observed, "status": "UP", "pending_maintenance": "None"}
        step(t, up, data=observed)
        chain.add(
            t, AuditAction.TUNNEL_SEEN_UP, up, kind=ActorKind.AWS, request=request, details=observed
        )
        execution.cleared_seen_at = t
        cleared = Text(N_("AWS no longer shows maintenance pending on tunnel %(ip)s."), ip=ip)
        step(t, cleared, data=observed)
        chain.add(
            t,
            AuditAction.MAINTENANCE_CLEARED,
            cleared,
            kind=ActorKind.AWS,
            request=request,
            details=observed,
        )
        after = {
            **before,
            "pending_maintenance": "None",
            "maintenance_auto_applied_after": None,
            "last_maintenance_applied": t.isoformat(),
            "lifecycle_control": True,
        }
        t += timedelta(seconds=30)
        if status == ChangeStatus.FAILED:
            reason = Text(N_("AWS could not be read before the time limit."))
            message = Text(N_("Failed: %(reason)s"), reason=reason)
            self._finish(
                request,
                execution,
                step,
                t,
                ExecutionOutcome.FAILED,
                AuditAction.EXECUTION_FAILED,
                message,
                reason,
                StepLevel.ERROR,
            )
            return
        execution.after = after
        self._finish(
            request,
            execution,
            step,
            t,
            ExecutionOutcome.SUCCEEDED,
            AuditAction.EXECUTION_SUCCEEDED,
            Text(N_("Succeeded: the tunnel is UP and the change is done.")),
            "",
            StepLevel.INFO,
        )

    def _approval(self, request, user, decision, at, comment: str = "") -> Approval:
        self.chain.add(
            at,
            AuditAction.REQUEST_APPROVED_BY
            if decision == Decision.APPROVE
            else AuditAction.REQUEST_REJECTED,
            Text(
                N_("%(user)s approved")
                if decision == Decision.APPROVE
                else N_("%(user)s rejected"),
                user=user.username,
            ),
            user=user,
            request=request,
            details={"comment": comment, "fingerprint": request.fingerprint},
        )
        return Approval(
            change_request=request,
            approver=user,
            decision=decision,
            comment=comment,
            at=at,
            fingerprint=request.fingerprint,
        )

    def _end(self, request: ChangeRequest, at: datetime, reason: Any) -> None:
        request.finished_at = request.updated_at = at
        request.status_reason = english(reason)
        request.status_reason_text = reason.as_data() if isinstance(reason, Text) else {}

    def _finish(self, request, execution, step, at, outcome, action, message, reason, level):
        execution.finished_at, execution.outcome = at, outcome
        step(at, message, level)
        self._end(request, at, reason)
        self.chain.add(
            at,
            action,
            message,
            request=request,
            details={
                "outcome": outcome,
                "reason": reason.as_data() if isinstance(reason, Text) else reason,
                "aws_error_code": execution.aws_error_code,
                "aws_error_message": execution.aws_error_message,
                "after": execution.after or {},
            },
        )


def _batches(rng: random.Random, sizes: Sizes, now: datetime, users: dict, builder: _Requests):
    """C/250 batches of lifecycle control: the newest waits for approval, the next one is
    approved for a window ahead, the rest ran (mostly well) over the last months."""
    rows = ChangeBatch.objects.bulk_create(
        ChangeBatch(
            requester=builder.requester(),
            reason="Lifecycle control for every tunnel of a site group.",
            created_at=now - timedelta(days=0.2 + 12 * k),
        )
        for k in range(sizes.batches)
    )
    count = 0
    for k, batch in enumerate(rows):
        open_batch = k < 2
        status = [ChangeStatus.PENDING_APPROVAL, ChangeStatus.APPROVED][k] if open_batch else None
        start = now + timedelta(days=2 + k) if open_batch else batch.created_at + timedelta(days=2)
        end = start + timedelta(hours=3)
        wanted = rng.randint(3, 8)
        picked = 0
        for _ in range(400):
            if picked >= wanted:
                break
            conn = rng.choice(builder.tunnels).connection
            if conn.gone_at or conn.pk in builder.busy_connections:
                continue
            tunnels = builder.pairs[conn.pk]
            # Open: only tunnels still lacking it; ended: both had it asked for back then.
            off = tunnels
            if open_batch:
                off = [
                    t
                    for t in tunnels
                    if not t.lifecycle_control and builder.ends_in_time(t, end + timedelta(hours=1))
                ]
            if not off:
                continue
            builder.busy_connections.add(conn.pk)
            picked += 1
            for t in off:
                this = status
                if this is None:
                    this = ChangeStatus.SUCCEEDED
                    if k % 5 == 3:
                        this = ChangeStatus.REJECTED
                    elif k % 5 == 4 and t is off[-1]:
                        this = ChangeStatus.FAILED
                builder.add(
                    this,
                    ChangeKind.ENABLE_LIFECYCLE,
                    batch=batch,
                    tunnel=t,
                    requester=batch.requester,
                    created=batch.created_at,
                    window_start=start,
                    window_end=end,
                )
                count += 1
    return rows, count


def _sync_runs(rng: random.Random, sizes: Sizes, now: datetime, users: dict, inv: dict, chain):
    """Runs every 15 minutes back from now, each with a result per account and region."""
    per_scope: dict[tuple[int, str], int] = {}
    for conn in inv["connections"]:
        if conn.gone_at is None:
            key = (conn.account_id, conn.region)
            per_scope[key] = per_scope.get(key, 0) + 1
    runs = []
    for k in range(sizes.sync_runs):
        started = now - timedelta(minutes=5 + 15 * k, seconds=rng.uniform(0, 20))
        trigger = SyncTrigger.SCHEDULE
        requested_by = None
        if k % 17 == 5:
            trigger, requested_by = SyncTrigger.MANUAL, rng.choice(users["admins"])
        elif k % 29 == 11:
            trigger = SyncTrigger.COMMAND
        runs.append(
            SyncRun(
                started_at=started,
                finished_at=started + timedelta(seconds=rng.uniform(40, 160)),
                status=SyncStatus.OK,
                trigger=trigger,
                requested_by=requested_by,
            )
        )
    SyncRun.objects.bulk_create(runs, batch_size=BATCH_SIZE)
    results = []
    for k, run in enumerate(runs):
        oldest = k == len(runs) - 1
        for account, region in inv["scopes"]:
            n = per_scope.get((account.pk, region), 0)
            failed = rng.random() < 0.004
            errors = []
            if failed:
                run.status = SyncStatus.PARTIAL
                errors = [
                    {
                        "item": "",
                        "message": "You are not authorized to perform this operation.",
                        "code": "UnauthorizedOperation",
                        "request_id": f"{rng.getrandbits(64):016x}",
                    }
                ]
                chain.add(
                    run.started_at + timedelta(seconds=5),
                    AuditAction.SYNC_FAILED,
                    Text(
                        N_("Sync of %(account)s %(region)s failed: %(code)s: %(message)s"),
                        account=account.name,
                        region=region,
                        code=errors[0]["code"],
                        message=errors[0]["message"],
                    ),
                    account=account.pk,
                    details={"region": region, "errors": errors},
                )
            results.append(
                SyncResult(
                    run=run,
                    account=account,
                    region=region,
                    started_at=run.started_at,
                    finished_at=run.finished_at,
                    connections=0 if failed else n,
                    tunnels=0 if failed else 2 * n,
                    created=n if oldest and not failed else 0,
                    changed=0 if failed else rng.choice([0, 0, 0, 1, 2]),
                    api_calls=1 if failed else 1 + 2 * n,
                    errors=errors,
                    failed=failed,
                )
            )
    SyncResult.objects.bulk_create(results, batch_size=BATCH_SIZE)
    SyncRun.objects.bulk_update(runs, ["status"], batch_size=BATCH_SIZE)
    return {"sync runs": len(runs), "sync results": len(results)}


def _background_events(rng, sizes: Sizes, now: datetime, users: dict, inv: dict, chain) -> None:
    """Inventory, sign-in and administration events, then AWS's own maintenance to fill
    the log up to 20C events, spread over the year."""
    year = timedelta(days=365)
    for conn in inv["connections"]:
        at = max(conn.first_seen, now - year)
        chain.add(
            at,
            AuditAction.CONNECTION_DISCOVERED,
            Text(
                N_("%(connection)s found in %(account)s %(region)s."),
                connection=conn.vpn_connection_id,
                account=conn.account.name,
                region=conn.region,
            ),
            connection=conn.pk,
        )
        if conn.gone_at:
            chain.add(
                conn.gone_at,
                AuditAction.CONNECTION_GONE,
                Text(
                    N_("%(connection)s is no longer listed by AWS."),
                    connection=conn.vpn_connection_id,
                ),
                connection=conn.pk,
            )
    for account in inv["accounts"]:
        chain.add(
            now - timedelta(days=rng.uniform(200, 365)),
            AuditAction.ACCOUNT_CHANGED,
            Text(N_("Account %(name)s changed."), name=account.name),
            user=rng.choice(users["admins"]),
            account=account.pk,
            details={"before": {"enabled": False}, "after": {"enabled": True}},
        )
    for _ in range(max(5, sizes.connections // 5)):
        ip = f"198.51.100.{rng.randint(1, 254)}"
        name = rng.choice(["root", "admin", LEAD, "req-03", "jdoe"])
        chain.add(
            now - timedelta(seconds=rng.uniform(60, year.total_seconds())),
            AuditAction.LOGIN_FAILED,
            f"Sign-in as {name!r} from {ip} failed: wrong username or password.",
            details={"username": name, "ip": ip, "failure_limit": 5},
        )
    tunnels = inv["tunnels"]
    while len(chain.rows) < sizes.audit_events:
        t = rng.choice(tunnels)
        at = now - timedelta(seconds=rng.uniform(120, year.total_seconds()))
        applied = at - timedelta(minutes=rng.uniform(1, 15))
        chain.add(
            at,
            AuditAction.MAINTENANCE_APPLIED_BY_AWS,
            Text(
                N_(
                    "AWS applied maintenance to %(connection)s %(ip)s at %(at)s without a "
                    "vpnctl change."
                ),
                connection=t.connection.vpn_connection_id,
                ip=t.outside_ip,
                at=applied,
            ),
            kind=ActorKind.AWS,
            tunnel=t.pk,
            details={
                "previous": (applied - timedelta(days=rng.uniform(60, 200))).isoformat(),
                "applied": applied.isoformat(),
            },
        )


def seed(connections: int = 5000, *, rng_seed: int = 7, log=None) -> Fleet:
    """Write the whole estate into an empty, migrated database (see the module docstring)."""
    if VpnConnection.objects.exists() or User.objects.filter(username=LEAD).exists():
        raise RuntimeError("seed() needs an empty database: it found connections or the lead")
    rng = random.Random(rng_seed)
    sizes = Sizes.scaled(connections)
    now = timezone.now()
    say = log or (lambda _text: None)
    counts: dict[str, int] = {}
    if db_connection.vendor == "sqlite" and not db_connection.in_atomic_block:
        with db_connection.cursor() as cursor:
            # A scratch file: no fsync per batch, and room for the hash indexes' pages
            # (not inside a test's transaction, where SQLite refuses the first).
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("PRAGMA cache_size = -262144")
    with transaction.atomic():
        users = _users(now)
        inv = _inventory(rng, sizes, now)
        counts.update(
            {
                "accounts": len(inv["accounts"]),
                "connections": len(inv["connections"]),
                "tunnels": len(inv["tunnels"]),
            }
        )
        say(f"inventory: {counts}")
        parents = {
            "tunnel": {t.pk: t.connection_id for t in inv["tunnels"]},
            "connection": {c.pk: c.account_id for c in inv["connections"]},
        }
        chain = _Chain(parents)
        builder = _Requests(rng, now, users, inv, chain)
        batches, in_batches = _batches(rng, sizes, now, users, builder)
        counts["batches"] = len(batches)
        # At least one request in every status, however small the estate.
        single = max(len(STATUS_SHARES), sizes.requests - in_batches)
        for status in _status_list(rng, single):
            kind = ChangeKind.REPLACE if rng.random() < 0.6 else ChangeKind.ENABLE_LIFECYCLE
            if not builder.add(status, kind):
                builder.add(ChangeStatus.EXPIRED, kind)  # no tunnel left for an open one
        counts.update(builder.write())
        say(f"requests: {counts['change requests']}")
        counts.update(_sync_runs(rng, sizes, now, users, inv, chain))
        BlackoutPeriod.objects.bulk_create(
            BlackoutPeriod(
                name=name,
                starts_at=now + timedelta(days=days),
                ends_at=now + timedelta(days=days, hours=hours),
                account=account,
                reason="Change freeze.",
                created_by=users["admins"][0],
            )
            for name, days, hours, account in [
                ("Quarter-end freeze", 20, 72, None),
                ("Year-end freeze", 45, 96, None),
                ("Payments peak", 9, 12, inv["accounts"][-1]),
            ]
        )
        counts.update(_fleet_automation(rng, sizes, now, users, inv))
        _background_events(rng, sizes, now, users, inv, chain)
        counts["audit events"] = chain.write()
        say(f"audit events: {counts['audit events']}")
        WorkerHeartbeat.beat(now, "bench:seed")
    # After the bulk chain, through the model: its own event continues the chain.
    CalendarFeed.issue(users["lead"])
    return Fleet(sizes=sizes, counts=counts, lead=users["lead"])


def _fleet_automation(rng: random.Random, sizes: Sizes, now: datetime, users: dict, inv: dict):
    """Three maintenance policies (one approved as a standard change) and a Health event
    for every tenth connection, a few naming connections vpnctl does not know."""
    specs = [
        ("prod-weekend", {"env": "prod"}, "Asia/Tokyo", [(6, 2, 4), (5, 2, 4)]),
        ("staging-weeknights", {"env": "staging"}, "Europe/Berlin", [(1, 22, 2), (3, 22, 2)]),
        ("tokyo-offices", {"site": SITES[0]}, "Asia/Tokyo", [(2, 1, 3)]),
    ]
    policies = []
    for name, tags, zone, windows in specs:
        policy = MaintenancePolicy.objects.create(
            name=name,
            tags=tags,
            time_zone=zone,
            windows=[[d, f"{a:02d}:00", f"{b:02d}:00"] for d, a, b in windows],
            kinds=[ChangeKind.REPLACE],
            standard_from=now - timedelta(days=7),
            standard_until=now + timedelta(days=90),
        )
        policies.append(policy)
    for approver in users["approvers"][:2]:
        PolicyApproval.objects.create(
            policy=policies[0], approver=approver, fingerprint=policies[0].fingerprint()
        )
    connections = inv["connections"][::10]
    events = HealthEvent.objects.bulk_create(
        HealthEvent(
            event_arn=f"arn:aws:health:{c.region}::event/VPN/AWS_VPN_REDUNDANCY_LOSS/{i:08d}",
            communication_id=f"{i:08d}-1",
            type_code="AWS_VPN_REDUNDANCY_LOSS" if i % 7 else "AWS_VPN_SOMETHING_NEW",
            meaning="redundancy_loss" if i % 7 else "unknown",
            aws_account_id=c.account.account_id,
            region=c.region,
            account=c.account,
            started_at=now - timedelta(hours=i),
            description="Your VPN connection lost redundancy.",
            unknown_connection_ids=[] if i % 13 else [f"vpn-{i:017x}"],
            received_at=now - timedelta(hours=i),
        )
        for i, c in enumerate(connections)
    )
    links = HealthEvent.connections.through
    links.objects.bulk_create(
        links(healthevent_id=e.pk, vpnconnection_id=c.pk)
        for e, c in zip(events, connections, strict=True)
    )
    return {"policies": len(policies), "health events": len(events)}


# --------------------------------------------------------------------------------------
# What the pages show
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """Rows of an existing estate for the benchmark's URLs (works on a reused database)."""

    lead: User
    account: int  # the account with the most connections
    connection: int  # a live connection with an open request on a pending tunnel
    busy_connection: int  # the connection with the longest history
    busy_tunnel: int  # the tunnel with the longest history
    pending_tunnel: int  # a tunnel with pending maintenance and no open request
    request_done: int  # a succeeded request, its execution and steps
    request_waiting: int  # waiting for the lead's decision
    batch: int  # the batch with the most requests
    feed_token: str
    connections: int
    audit_events: int
    sync_run: int  # the newest sync run
    policy: int = 0  # the policy approved as a standard change


def samples() -> Samples:
    lead = User.objects.get(username=LEAD)
    account = (
        VpnConnection.objects.values("account").annotate(n=Count("pk")).order_by("-n", "account")
    )[0]["account"]
    open_request = (
        ChangeRequest.objects.open()
        .filter(tunnel__pending_maintenance=PendingMaintenance.AVAILABLE)
        .order_by("pk")
        .first()
    ) or ChangeRequest.objects.order_by("pk").first()
    history = (
        ChangeRequest.objects.values("tunnel", "tunnel__connection")
        .annotate(n=Count("pk"))
        .order_by("-n", "tunnel")
    )[0]
    open_tunnels = ChangeRequest.objects.open().values("tunnel")
    pending_tunnel = (
        Tunnel.objects.live().pending().exclude(pk__in=open_tunnels).order_by("pk").first()
        or Tunnel.objects.order_by("pk").first()
    )
    done = (
        ChangeRequest.objects.filter(status=ChangeStatus.SUCCEEDED)
        .annotate(steps=Count("execution__steps"))
        .order_by("-steps", "pk")
        .first()
    )
    waiting = ChangeRequest.objects.awaiting_decision_of(lead).order_by("pk").first()
    batch = ChangeBatch.objects.annotate(n=Count("requests")).order_by("-n", "pk").first()
    feed = CalendarFeed.objects.filter(user=lead, revoked_at__isnull=True).first()
    return Samples(
        lead=lead,
        account=account,
        connection=open_request.tunnel.connection_id,
        busy_connection=history["tunnel__connection"],
        busy_tunnel=history["tunnel"],
        pending_tunnel=pending_tunnel.pk,
        request_done=(done or open_request).pk,
        request_waiting=(waiting or open_request).pk,
        batch=batch.pk if batch else 0,
        feed_token=feed.token if feed else "",
        connections=VpnConnection.objects.count(),
        audit_events=AuditEvent.objects.aggregate(n=Max("seq"))["n"] or 0,
        sync_run=SyncRun.objects.aggregate(n=Max("pk"))["n"] or 0,
        policy=MaintenancePolicy.objects.filter(approvals__isnull=False)
        .values_list("pk", flat=True)
        .first()
        or 0,
    )
