"""Shared fixtures: personas (one per role), accounts, and the simulated AWS."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.utils import translation

from maintenance import roles

pytest_plugins = ["tests.aws_fixtures", "tests.oidc_helpers"]


@pytest.fixture(autouse=True)
def site_language():
    """Each test starts in the site's language: a page fetched in Japanese by an earlier
    test leaves that language active in the thread (LocaleMiddleware never resets it)."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


def _ensure_roles() -> None:
    # Transactional tests flush the tables, and with them the groups the migration made.
    if Group.objects.filter(name__in=roles.ROLE_PERMISSIONS).count() < len(roles.ROLE_PERMISSIONS):
        roles.sync_roles(Group, Permission)


def _user(username: str, role: str | None, **extra) -> User:
    _ensure_roles()
    user = User.objects.create_user(
        username=username, email=f"{username}@example.com", password="pw-" + username, **extra
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def requester(db) -> User:
    return _user("rei", roles.REQUESTER)


@pytest.fixture
def other_requester(db) -> User:
    return _user("ken", roles.REQUESTER)


@pytest.fixture
def approver(db) -> User:
    return _user("aiko", roles.APPROVER)


@pytest.fixture
def second_approver(db) -> User:
    return _user("bunta", roles.APPROVER)


@pytest.fixture
def admin_user(db) -> User:
    return _user("admin", roles.ADMIN, is_staff=True)


@pytest.fixture
def auditor(db) -> User:
    return _user("odit", roles.AUDITOR)


@pytest.fixture
def outsider(db) -> User:
    return _user("outsider", None)
