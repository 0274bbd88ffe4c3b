"""Every page of the product, in a number of queries that does not grow with the estate.

The pages are bench/pages.py's own list (one spelling of "every page"), over the estate
its seeding writes (bench/seed_fleet.py) at two sizes; each page must answer in at most
PAGE_MAX_QUERIES queries, and in the same number at both sizes.
"""

from __future__ import annotations

from tests.test_bench_pages import pages, seed_fleet

PAGE_MAX_QUERIES = 10
SIZES = (50, 150)


def _counts(connections: int) -> dict[str, int]:
    seed_fleet.seed(connections=connections)
    estate = seed_fleet.samples()
    from maintenance.models import ChangeRequest

    # Every list has rows at both sizes (an empty list reads less, whatever the size).
    assert ChangeRequest.objects.filter(requester=estate.lead).exists()
    counted = pages.count_queries(pages.page_list(estate), estate.lead)
    assert {c.name: c.status for c in counted} == {c.name: 200 for c in counted}
    return {_same_name(c.name): c.queries for c in counted}


def _same_name(name: str) -> str:
    # "connections ?page=1" / "?page=2", "audit last page (17)": the same page at both sizes.
    return name.split(" ?page=")[0].split(" (")[0] if "page" in name else name


def test_every_page_within_the_budget_at_both_sizes(db):
    from django.db import transaction

    counts = {}
    for size in SIZES:
        with transaction.atomic():  # each size on an empty estate
            counts[size] = _counts(size)
            transaction.set_rollback(True)
    small, large = (counts[size] for size in SIZES)
    assert small.keys() == large.keys()
    over = {name: n for name, n in large.items() if n > PAGE_MAX_QUERIES}
    assert not over, f"over {PAGE_MAX_QUERIES} queries: {over}"
    grew = {name: (small[name], large[name]) for name in small if small[name] != large[name]}
    assert not grew, f"queries at {SIZES[0]} and {SIZES[1]} connections differ: {grew}"
