"""Every page checks permissions: the backend reads them in one query, and grants exactly
what Django's own ModelBackend grants."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission, User

from maintenance import roles
from maintenance.permissions import ModelBackendOneQuery


def _fresh(user: User) -> User:
    return User.objects.get(pk=user.pk)  # no permission cache


@pytest.mark.parametrize("role", [roles.REQUESTER, roles.APPROVER, roles.AUDITOR, roles.ADMIN])
def test_same_permissions_as_djangos_backend_in_one_query(role, db, django_assert_num_queries):
    from tests.conftest import _user

    user = _user(f"someone-{role}", role)
    user.user_permissions.add(Permission.objects.get(codename="delete_calendarfeed"))
    expected = ModelBackend().get_all_permissions(_fresh(user))
    assert "maintenance.delete_calendarfeed" in expected
    assert f"maintenance.{roles.ROLE_PERMISSIONS[role][-1]}" in expected
    fresh = _fresh(user)
    with django_assert_num_queries(1):
        assert ModelBackendOneQuery().get_all_permissions(fresh) == expected
        assert fresh.has_perm("maintenance.view_vpnconnection")  # cached: no second query


def test_inactive_anonymous_and_object_checks_get_nothing(db):
    from django.contrib.auth.models import AnonymousUser

    from tests.conftest import _user

    user = _user("gone", roles.ADMIN)
    user.is_active = False
    backend = ModelBackendOneQuery()
    assert backend.get_all_permissions(user) == set()
    assert backend.get_all_permissions(AnonymousUser()) == set()
    assert backend.get_all_permissions(_user("obj", roles.ADMIN), obj=object()) == set()


def test_superusers_hold_every_permission(db):
    boss = User.objects.create_superuser("boss", "boss@example.com", "x" * 20)
    assert ModelBackendOneQuery().get_all_permissions(
        _fresh(boss)
    ) == ModelBackend().get_all_permissions(_fresh(boss))


def test_a_signed_in_user_comes_with_their_profile(db, django_assert_num_queries):
    from maintenance.models import UserProfile
    from maintenance.times import zone_of
    from tests.conftest import _user

    user = _user("tz", roles.REQUESTER)
    UserProfile.objects.create(user=user, time_zone="Asia/Tokyo")
    with django_assert_num_queries(1):
        loaded = ModelBackendOneQuery().get_user(user.pk)
        assert str(zone_of(loaded)) == "Asia/Tokyo"
    bare = _user("no-profile", roles.REQUESTER)
    with django_assert_num_queries(1):
        assert str(zone_of(ModelBackendOneQuery().get_user(bare.pk))) == settings.DISPLAY_TIME_ZONE
    assert ModelBackendOneQuery().get_user(10**9) is None
    bare.is_active = False
    bare.save()
    assert ModelBackendOneQuery().get_user(bare.pk) is None
