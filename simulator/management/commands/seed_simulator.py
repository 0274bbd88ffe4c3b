"""Fill a running simulated AWS with a realistic estate of Site-to-Site VPN connections.

The connections are created through the real EC2 API (customer gateways, virtual private or
transit gateways, ``CreateVpnConnection`` with tags and tunnel options), in two accounts (the
default one with plain ``testing`` credentials, the second through ``sts:AssumeRole``) and
three regions. What AWS has no "create" call for (a tunnel's status, pending maintenance and
its deadline, when maintenance was last applied) is then set through the simulator's own
control channel, ``POST /moto-api/vpnctl/set-tunnels`` (see simulator/control.py).

The estate is a pure function of ``--seed`` and the connection's number, and connections are
recognised by their Name tag: running it again adds only what is missing and changes nothing
that exists. It refuses any endpoint that does not answer as the vpnctl simulator, so it can
never create resources in a real AWS account.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from simulator import CONTROL_PATH, DEFAULT_ACCOUNT_ID, SECOND_ACCOUNT_ID, SECOND_ACCOUNT_ROLE_ARN

SEED_REGIONS = ("ap-northeast-1", "us-east-1", "eu-west-1")
SITES = {
    "ap-northeast-1": ("tokyo-hq", "osaka-dc", "nagoya-plant", "fukuoka-branch", "sapporo-lab"),
    "us-east-1": ("ashburn-dc", "nyc-office", "boston-lab", "atlanta-branch", "toronto-partner"),
    "eu-west-1": ("dublin-dc", "london-office", "paris-partner", "frankfurt-branch", "madrid-lab"),
}
TEAMS = ("network-team", "payments", "data-platform", "retail-it", "partner-integrations")
ENVIRONMENTS = (("production", 0.6), ("staging", 0.25), ("development", 0.15))
VGWS_PER_REGION = 3
CUSTOMER_FIRST_OCTETS = (49, 61, 81, 89, 109, 121, 150, 185, 193, 212, 217)


@dataclass
class TunnelPlan:
    lifecycle_control: bool
    status: str
    status_since: datetime
    ike_version: str
    pending_until: datetime | None = None  # MaintenanceAutoAppliedAfter, if pending
    last_applied: datetime | None = None


@dataclass
class ConnectionPlan:
    name: str
    account_id: str
    region: str
    tags: dict[str, str]
    customer_ip: str
    bgp_asn: int
    transit_gateway: bool
    vpn_gateway_name: str
    static_routes_only: bool
    tunnels: list[TunnelPlan] = field(default_factory=list)


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def plan_connection(
    seed: int, index: int, now: datetime, accounts: tuple[str, ...]
) -> ConnectionPlan:
    """Connection number ``index`` of the estate; the same for the same seed, whatever N."""
    rng = random.Random(f"vpnctl-seed:{seed}:{index}")
    places = [(account, region) for region in SEED_REGIONS for account in accounts]
    account_id, region = places[index % len(places)]
    site = SITES[region][(index // len(places)) % len(SITES[region])]
    name = f"{site}-{index + 1:03d}"
    static = rng.random() < 0.2

    # Most have lifecycle control on both tunnels; some forgot the second tunnel.
    roll = rng.random()
    lifecycle = [True, True] if roll < 0.6 else [False, False] if roll >= 0.88 else None
    if lifecycle is None:
        lifecycle = [True, True]
        lifecycle[rng.randrange(2)] = False
    roll = rng.random()
    statuses = ["UP", "UP"] if roll < 0.8 else ["DOWN", "DOWN"] if roll >= 0.96 else None
    if statuses is None:
        statuses = ["UP", "UP"]
        statuses[rng.randrange(2)] = "DOWN"
    ike = "ikev1" if rng.random() < 0.15 else "ikev2"

    tunnels = []
    for number in range(2):
        if statuses[number] == "UP":
            since = now - timedelta(hours=rng.uniform(2, 24 * 60))
        else:
            since = now - timedelta(minutes=rng.uniform(5, 60 * 72))
        last_applied = None
        if rng.random() < 0.4:
            last_applied = now - timedelta(days=rng.uniform(20, 300))
        tunnels.append(
            TunnelPlan(
                lifecycle_control=lifecycle[number],
                status=statuses[number],
                status_since=since.replace(microsecond=0),
                ike_version=ike,
                last_applied=last_applied.replace(microsecond=0) if last_applied else None,
            )
        )
    # Pending maintenance on one connection in each run of three (so a third of any
    # estate, whatever its size), deadlines 1 to 30 days away. AWS updates one tunnel at a
    # time, but sometimes both have something pending.
    chosen = random.Random(f"vpnctl-seed:{seed}:block:{index // 3}").randrange(3)
    if index % 3 == chosen:
        first = rng.randrange(2)
        targets = [first, 1 - first] if rng.random() < 0.2 else [first]
        for number in targets:
            deadline = now + timedelta(days=rng.uniform(1, 30))
            tunnels[number].pending_until = deadline.replace(second=0, microsecond=0)

    return ConnectionPlan(
        name=name,
        account_id=account_id,
        region=region,
        tags={
            "Name": name,
            "Environment": _weighted(rng, ENVIRONMENTS),
            "Owner": rng.choice(TEAMS),
            "CostCenter": f"CC-{rng.randint(1000, 9999)}",
            "ManagedBy": "vpnctl-demo",
        },
        customer_ip=(
            f"{rng.choice(CUSTOMER_FIRST_OCTETS)}.{rng.randrange(256)}."
            f"{rng.randrange(256)}.{rng.randrange(1, 255)}"
        ),
        bgp_asn=65000 + rng.randrange(500),
        transit_gateway=rng.random() < 0.25,
        vpn_gateway_name=f"demo-vgw-{region}-{rng.randrange(VGWS_PER_REGION) + 1}",
        static_routes_only=static,
        tunnels=tunnels,
    )


def _tag_spec(resource_type: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"ResourceType": resource_type, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
    ]


def _name(resource: dict[str, Any]) -> str | None:
    return next((t["Value"] for t in resource.get("Tags") or [] if t["Key"] == "Name"), None)


class Command(BaseCommand):
    help = gettext_lazy(
        "Create a realistic set of VPN connections in a running simulated AWS "
        "(manage.py run_simulator). Idempotent by Name tag."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--endpoint",
            required=True,
            help=gettext_lazy("the simulator's URL, e.g. http://127.0.0.1:5055"),
        )
        parser.add_argument(
            "--connections", type=int, default=60, help=gettext_lazy("how many connections")
        )
        parser.add_argument(
            "--seed", type=int, default=42, help=gettext_lazy("the same seed, the same estate")
        )

    def handle(self, *args, **options) -> None:
        if settings.MODE == "production":
            raise CommandError(_("seed_simulator only runs with VPNCTL_MODE=demo (or in tests)."))
        endpoint = options["endpoint"].rstrip("/")
        count = options["connections"]
        if count < 0:
            raise CommandError(_("--connections cannot be negative."))
        if urlsplit(endpoint).scheme not in ("http", "https"):
            raise CommandError(_("--endpoint must be an http:// or https:// URL."))
        self._check_simulator(endpoint)

        started = time.monotonic()
        now = datetime.now(UTC)
        accounts = (DEFAULT_ACCOUNT_ID, SECOND_ACCOUNT_ID)
        plans = [plan_connection(options["seed"], i, now, accounts) for i in range(count)]
        by_place: dict[tuple[str, str], list[ConnectionPlan]] = defaultdict(list)
        for plan in plans:
            by_place[(plan.account_id, plan.region)].append(plan)

        clients = self._ec2_clients(endpoint, sorted(by_place))
        updates: list[dict[str, Any]] = []
        created = 0
        for place, place_plans in sorted(by_place.items()):
            ec2 = clients[place]
            created += self._seed_place(ec2, place_plans, updates)
        if updates:
            self._post(endpoint, "set-tunnels", {"tunnels": updates})

        pending = sum(1 for p in plans if any(t.pending_until for t in p.tunnels))
        down = sum(1 for p in plans for t in p.tunnels if t.status == "DOWN")
        self.stdout.write(
            _(
                "Seeded %(endpoint)s in %(seconds).1f s: %(created)d connections created, "
                "%(existing)d already there (%(accounts)d accounts, %(regions)d regions). "
                "Of all %(total)d: %(pending)d with pending maintenance, %(down)d tunnels DOWN."
            )
            % {
                "endpoint": endpoint,
                "seconds": time.monotonic() - started,
                "created": created,
                "existing": count - created,
                "accounts": len({p.account_id for p in plans}),
                "regions": len({p.region for p in plans}),
                "total": count,
                "pending": pending,
                "down": down,
            }
        )

    # -- AWS ---------------------------------------------------------------------------

    @staticmethod
    def _config() -> Any:
        from botocore.config import Config

        return Config(retries={"mode": "standard", "max_attempts": 8})

    def _ec2_clients(
        self, endpoint: str, places: list[tuple[str, str]]
    ) -> dict[tuple[str, str], Any]:
        """An EC2 client per (account, region): plain keys, or the assumed role's."""
        import boto3

        # The simulator's fake credentials, never whatever the environment holds. One
        # session for all clients: each new session parses EC2's large model again.
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        keys: dict[str, dict[str, str]] = {DEFAULT_ACCOUNT_ID: {}}
        if any(account_id != DEFAULT_ACCOUNT_ID for account_id, _ in places):
            sts = session.client("sts", endpoint_url=endpoint, config=self._config())
            credentials = sts.assume_role(
                RoleArn=SECOND_ACCOUNT_ROLE_ARN, RoleSessionName="vpnctl-seed"
            )["Credentials"]
            keys[SECOND_ACCOUNT_ID] = {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
        return {
            (account_id, region): session.client(
                "ec2",
                region_name=region,
                endpoint_url=endpoint,
                config=self._config(),
                **keys[account_id],
            )
            for account_id, region in places
        }

    def _seed_place(
        self, ec2: Any, plans: list[ConnectionPlan], updates: list[dict[str, Any]]
    ) -> int:
        """Create the missing connections of one account and region; queue their tunnels."""
        existing = {
            _name(c)
            for c in ec2.describe_vpn_connections()["VpnConnections"]
            if c["State"] != "deleted"
        }
        vgws = {
            _name(g): g["VpnGatewayId"]
            for g in ec2.describe_vpn_gateways()["VpnGateways"]
            if g["State"] != "deleted"
        }
        tgws = {
            _name(g): g["TransitGatewayId"]
            for g in ec2.describe_transit_gateways()["TransitGateways"]
            if g["State"] != "deleted"
        }
        created = 0
        for plan in plans:
            if plan.name in existing:
                continue
            cgw = ec2.create_customer_gateway(
                BgpAsn=plan.bgp_asn,
                PublicIp=plan.customer_ip,
                Type="ipsec.1",
                TagSpecifications=_tag_spec("customer-gateway", {"Name": f"{plan.name}-cgw"}),
            )["CustomerGateway"]
            gateway: dict[str, str]
            if plan.transit_gateway:
                tgw_name = f"demo-tgw-{plan.region}"
                if tgw_name not in tgws:
                    tgws[tgw_name] = ec2.create_transit_gateway(
                        Description="vpnctl demo",
                        TagSpecifications=_tag_spec("transit-gateway", {"Name": tgw_name}),
                    )["TransitGateway"]["TransitGatewayId"]
                gateway = {"TransitGatewayId": tgws[tgw_name]}
            else:
                if plan.vpn_gateway_name not in vgws:
                    vgws[plan.vpn_gateway_name] = ec2.create_vpn_gateway(
                        Type="ipsec.1",
                        TagSpecifications=_tag_spec("vpn-gateway", {"Name": plan.vpn_gateway_name}),
                    )["VpnGateway"]["VpnGatewayId"]
                gateway = {"VpnGatewayId": vgws[plan.vpn_gateway_name]}
            connection = ec2.create_vpn_connection(
                Type="ipsec.1",
                CustomerGatewayId=cgw["CustomerGatewayId"],
                Options={
                    "StaticRoutesOnly": plan.static_routes_only,
                    # Lifecycle control is a real creation option.
                    "TunnelOptions": [
                        {
                            "EnableTunnelLifecycleControl": t.lifecycle_control,
                            "IKEVersions": [{"Value": t.ike_version}],
                        }
                        for t in plan.tunnels
                    ],
                },
                TagSpecifications=_tag_spec("vpn-connection", plan.tags),
                **gateway,
            )["VpnConnection"]
            ips = [t["OutsideIpAddress"] for t in connection["Options"]["TunnelOptions"]]
            for ip, tunnel in zip(ips, plan.tunnels, strict=True):
                updates.append(
                    {
                        "connection_id": connection["VpnConnectionId"],
                        "outside_ip": ip,
                        "status": tunnel.status,
                        "last_status_change": tunnel.status_since.isoformat(),
                        "pending_maintenance": "Available" if tunnel.pending_until else "None",
                        "auto_apply_after": (
                            tunnel.pending_until.isoformat() if tunnel.pending_until else None
                        ),
                        "last_applied": (
                            tunnel.last_applied.isoformat() if tunnel.last_applied else None
                        ),
                    }
                )
            existing.add(plan.name)
            created += 1
        return created

    # -- the simulator's control channel ---------------------------------------------------

    def _check_simulator(self, endpoint: str) -> None:
        try:
            with urllib.request.urlopen(  # noqa: S310 - scheme checked in handle()
                f"{endpoint}{CONTROL_PATH}/ping", timeout=5
            ) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise CommandError(
                _(
                    "%(endpoint)s does not answer as the vpnctl simulator (%(error)s); "
                    "refusing to create anything there. Start it with manage.py run_simulator."
                )
                % {"endpoint": endpoint, "error": exc}
            ) from exc
        if answer.get("simulator") != "vpnctl":
            raise CommandError(
                _("%(endpoint)s is not the vpnctl simulator; refusing to seed it.")
                % {"endpoint": endpoint}
            )

    def _post(self, endpoint: str, what: str, payload: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - scheme checked in handle()
            f"{endpoint}{CONTROL_PATH}/{what}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            raise CommandError(
                _("The simulator refused %(what)s: %(error)s")
                % {"what": what, "error": exc.read().decode(errors="replace")}
            ) from exc
