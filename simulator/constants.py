"""Names and numbers of the simulated AWS that need no moto: accounts, actions, statuses.

The demo commands and the test fixtures read these without paying for moto's import.
"""

from __future__ import annotations

DEFAULT_ACCOUNT_ID = "123456789012"  # moto's default account (plain test credentials)
SECOND_ACCOUNT_ID = "210987654321"  # reached through sts:AssumeRole
SECOND_ACCOUNT_ROLE_ARN = f"arn:aws:iam::{SECOND_ACCOUNT_ID}:role/vpnctl-reader"

READ_ACTIONS = frozenset(
    {"DescribeVpnConnections", "GetVpnTunnelReplacementStatus", "GetActiveVpnTunnelStatus"}
)
WRITE_ACTIONS = frozenset({"ReplaceVpnTunnel", "ModifyVpnTunnelOptions"})
# The actions that go through throttling, fault injection and the call log.
SIMULATED_ACTIONS = READ_ACTIONS | WRITE_ACTIONS
# The actions moto 5.2.5 lacks: install() adds them, and refuses to shadow moto's own.
ADDED_ACTIONS = {
    "GetVpnTunnelReplacementStatus": "get_vpn_tunnel_replacement_status",
    "GetActiveVpnTunnelStatus": "get_active_vpn_tunnel_status",
    "ReplaceVpnTunnel": "replace_vpn_tunnel",
    "ModifyVpnTunnelOptions": "modify_vpn_tunnel_options",
}

# The simulator-only control channel, under moto's own /moto-api/ prefix (simulator/control.py).
CONTROL_PATH = "/moto-api/vpnctl"
CONTROL_PROTOCOL = 1

UP, DOWN = "UP", "DOWN"
AVAILABLE, NONE = "Available", "None"

# First octets of address blocks AWS really uses for VPN endpoints: the addresses look
# public without being anyone's real tunnel (the last three octets are random).
AWS_FIRST_OCTETS = (3, 13, 15, 18, 34, 35, 44, 52, 54, 99)
CUSTOMER_FIRST_OCTETS = (49, 61, 81, 89, 109, 121, 150, 185, 193, 203, 212, 217)

# What GetActiveVpnTunnelStatus reports as negotiated, by IKE version.
NEGOTIATED = {
    "ikev2": {
        "Phase1EncryptionAlgorithm": "AES256-GCM-16",
        "Phase2EncryptionAlgorithm": "AES256-GCM-16",
        "Phase1IntegrityAlgorithm": "SHA2-384",
        "Phase2IntegrityAlgorithm": "SHA2-384",
        "Phase1DHGroup": 20,
        "Phase2DHGroup": 20,
    },
    "ikev1": {
        "Phase1EncryptionAlgorithm": "AES128",
        "Phase2EncryptionAlgorithm": "AES128",
        "Phase1IntegrityAlgorithm": "SHA1",
        "Phase2IntegrityAlgorithm": "SHA1",
        "Phase1DHGroup": 2,
        "Phase2DHGroup": 2,
    },
}
