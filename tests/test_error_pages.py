"""The 400, 403, 404, 500 and CSRF-failure pages: in the site's layout, in the reader's
language, saying what happened and where to go next (DEBUG is off in tests, as in production)."""

from __future__ import annotations

import re

import pytest
from django.template import loader
from django.test import Client
from django.urls import reverse

JA = {"HTTP_ACCEPT_LANGUAGE": "ja"}


def text(response) -> str:
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#x27;", "'")


def in_layout(response, lang: str = "en") -> bool:
    html = response.content.decode()
    return (
        f'<html lang="{lang}">' in html and 'class="site-header"' in html and "vpnctl.css" in html
    )


def test_404_for_a_signed_in_user(client, requester):
    client.force_login(requester)
    response = client.get("/connections/no-such-thing/")
    assert response.status_code == 404
    page = text(response)
    assert in_layout(response)
    assert "Page not found" in page
    assert "There is no page at /connections/no-such-thing/ ." in page
    # The menu, and where to go next.
    assert "Log out" in page
    assert "Where to go next" in page
    assert f'href="{reverse("maintenance:home")}"' in response.content.decode()
    assert f'href="{reverse("maintenance:connections")}"' in response.content.decode()


def test_404_for_a_visitor_offers_the_login(client, db):
    response = client.get("/nothing-here/")
    assert response.status_code == 404
    assert in_layout(response)
    assert f'href="{reverse("login")}"' in response.content.decode()


def test_404_in_japanese(client, requester):
    client.force_login(requester)
    response = client.get("/nothing-here/", **JA)
    assert response.status_code == 404
    assert in_layout(response, "ja")
    page = text(response)
    assert "ページが見つかりません" in page
    assert "次に開くページ" in page


def test_403_says_which_account_lacks_the_role(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("maintenance:timeline"))
    assert response.status_code == 403
    page = text(response)
    assert in_layout(response)
    assert "You may not open this page" in page
    assert "Your account, outsider , does not have the role this page or action needs." in page
    assert "ask a vpnctl admin to add you to the right group" in page
    assert "Where to go next" in page


def test_403_in_japanese(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("maintenance:timeline"), **JA)
    assert response.status_code == 403
    assert in_layout(response, "ja")
    assert "このページを開く権限がありません" in text(response)


def test_400_for_a_host_the_site_does_not_answer_to(client, db):
    response = client.get("/", HTTP_HOST="elsewhere.example")
    assert response.status_code == 400
    page = text(response)
    assert in_layout(response)
    assert "Bad request" in page
    assert "a host name this site does not answer to" in page
    assert "Where to go next" in page

    response = client.get("/", HTTP_HOST="elsewhere.example", **JA)
    assert response.status_code == 400
    assert in_layout(response, "ja")
    assert "不正なリクエスト" in text(response)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_csrf_failure(requester, lang):
    client = Client(enforce_csrf_checks=True)
    client.force_login(requester)
    response = client.post(reverse("logout"), HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 403
    assert in_layout(response, lang)
    page = text(response)
    if lang == "en":
        assert "Your form could not be sent" in page
        assert "nothing was changed" in page
        assert "Go back, reload the page and send the form again." in page
    else:
        assert "フォームを送信できませんでした" in page
    # Still signed in: the logout did not happen.
    assert client.get(reverse("maintenance:home")).status_code == 200


@pytest.mark.urls("tests.error_urls")
@pytest.mark.parametrize("lang", ["en", "ja"])
def test_500(db, lang):
    client = Client(raise_request_exception=False)
    response = client.get("/boom/", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 500
    html = response.content.decode()
    assert f'<html lang="{lang}">' in html and "vpnctl.css" in html
    page = text(response)
    if lang == "en":
        assert "Something went wrong" in page
        assert "It was not caused by anything you did." in page
        assert "check whether it was saved before you send it again" in page
    else:
        assert "エラーが発生しました" in page
    assert "something broke" not in page


def test_500_renders_from_an_empty_context_without_the_database():
    """As Django renders it when anything failed, the database included (this test has no
    database: pytest-django fails any query)."""
    html = loader.get_template("500.html").render()
    assert "Something went wrong" in html
    assert 'href="/"' in html
