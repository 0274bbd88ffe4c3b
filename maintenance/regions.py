"""The EC2 regions an account may name, as botocore knows them (no network call)."""

from __future__ import annotations

from functools import cache

import botocore.session


@cache
def _ec2_regions() -> frozenset[str]:
    session = botocore.session.get_session()
    regions: set[str] = set()
    for partition in session.get_available_partitions():
        regions.update(session.get_available_regions("ec2", partition_name=partition))
    return frozenset(regions)


class _Regions:
    def __contains__(self, region: object) -> bool:
        return isinstance(region, str) and region in _ec2_regions()

    def __iter__(self):
        return iter(sorted(_ec2_regions()))


EC2_REGIONS = _Regions()
