"""The Japanese locale: pages follow Accept-Language or the header's selector, and the
committed catalogue (locale/ja/LC_MESSAGES/django.po and its compiled .mo) is complete."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from maintenance.choices import ChangeKind
from maintenance.models import ChangeRequest
from tests.factories import make_connection, pending
from tests.test_views_requests import submit, text

LOCALE_DIR = Path(settings.BASE_DIR) / "locale" / "ja" / "LC_MESSAGES"
PO = LOCALE_DIR / "django.po"
MO = LOCALE_DIR / "django.mo"
JA = {"HTTP_ACCEPT_LANGUAGE": "ja"}

# ---------------------------------------------------------------------------------------
# Pages
# ---------------------------------------------------------------------------------------


@pytest.fixture
def tunnel(db):
    connection = make_connection(
        name="tokyo-office",
        tunnels=[{**pending(days=10), "accepted_route_count": 5}, {"accepted_route_count": 5}],
    )
    return connection.tunnels.order_by("outside_ip")[0]


@pytest.fixture
def change(requester, tunnel) -> ChangeRequest:
    return submit(requester, tunnel, reason="四半期パッチの適用")


def test_connection_list_in_japanese(client, requester, tunnel):
    client.force_login(requester)
    response = client.get(reverse("maintenance:connections"), **JA)
    assert response.status_code == 200
    html = response.content.decode()
    page = text(response)
    assert '<html lang="ja">' in html
    # Navigation.
    for words in ("VPN 接続", "申請一覧", "自分の承認待ち", "自分の申請", "同期履歴", "ログアウト"):
        assert words in page, words
    # The list: its heading, column headings and the pending-maintenance badge.
    assert "1 件の接続" in page
    for words in ("リージョン", "トンネル", "ライフサイクルコントロール", "保留中のメンテナンス"):
        assert words in page, words
    assert "AWS による自動適用の開始:" in page
    # Status codes stay as AWS writes them.
    assert "UP" in page
    # No English left in the chrome.
    for english in ("Connections", "Sync runs", "Log out", "Pending maintenance"):
        assert english not in page, english


def test_request_page_in_japanese(client, approver, change):
    client.force_login(approver)
    response = client.get(reverse("maintenance:request", args=[change.pk]), **JA)
    assert response.status_code == 200
    page = text(response)
    assert f"申請 #{change.pk}: 保留中のメンテナンスを適用" in page
    headings = ("承認待ち", "申請内容", "この変更の内容", "リスク", "タイムライン", "申請者")
    for words in headings:
        assert words in page, words
    assert "実行にはあと 1 件の承認が必要です。" in page
    assert "ReplaceVpnTunnel" in page  # AWS API names are not translated.
    for english in ("Waiting for approval", "Risks", "Timeline", "Requested by"):
        assert english not in page, english


def test_english_stays_the_default(client, requester, tunnel):
    client.force_login(requester)
    response = client.get(reverse("maintenance:connections"), HTTP_ACCEPT_LANGUAGE="en")
    page = text(response)
    assert '<html lang="en">' in response.content.decode()
    assert "Connections" in page and "Log out" in page
    assert "ログアウト" not in page


def test_the_header_has_a_labelled_language_selector(client, requester, tunnel):
    client.force_login(requester)
    html = client.get(reverse("maintenance:connections"), **JA).content.decode()
    assert f'action="{reverse("set_language")}"' in html
    assert re.search(r'<label for="lang-select">\s*言語\s*</label>', html)
    assert '<select id="lang-select" name="language">' in html
    # Each language is offered in its own name, and the current one is selected.
    assert '<option value="en" lang="en">English</option>' in html
    assert '<option value="ja" lang="ja" selected>日本語</option>' in html


def test_the_login_page_offers_the_selector_too(client, db):
    response = client.get(reverse("login"), **JA)
    page = text(response)
    assert "vpnctl にログイン" in page and "ユーザー名" in page and "パスワード" in page
    assert 'id="lang-select"' in response.content.decode()


def test_set_language_switches_and_sticks(client, requester, tunnel):
    client.force_login(requester)
    url = reverse("maintenance:connections")
    response = client.post(reverse("set_language"), {"language": "ja", "next": url})
    assert response.status_code == 302 and response["Location"] == url
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ja"
    # The cookie wins over the browser's Accept-Language.
    page = text(client.get(url, HTTP_ACCEPT_LANGUAGE="en"))
    assert "ログアウト" in page and "Log out" not in page

    client.post(reverse("set_language"), {"language": "en", "next": url})
    page = text(client.get(url, **JA))
    assert "Log out" in page and "ログアウト" not in page


def test_set_language_refuses_a_foreign_next(client, db):
    response = client.post(
        reverse("set_language"), {"language": "ja", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


# ---------------------------------------------------------------------------------------
# The catalogue
# ---------------------------------------------------------------------------------------


def read_po(path: Path) -> list[dict]:
    """Entries of a .po file: msgid, msgid_plural, msgstr (or msgstr[0]) and flags."""
    entries: list[dict] = []
    entry: dict = {"flags": set()}
    key = None

    def close() -> None:
        nonlocal entry
        if "msgid" in entry:
            entries.append(entry)
        entry = {"flags": set()}

    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        line = line.strip()
        if not line:
            close()
        elif line.startswith("#~"):
            entry["obsolete"] = True
        elif line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[key] += ast.literal_eval(line)
        else:
            key, _, value = line.partition(" ")
            if "msgid" in entry and key == "msgid":  # An entry without a blank line before.
                close()
            entry[key] = ast.literal_eval(value)
    return entries


def translation(entry: dict) -> str:
    return entry["msgstr[0]"] if "msgid_plural" in entry else entry["msgstr"]


PLACEHOLDER = re.compile(r"%\([a-z_]+\)[-#0 +]*\d*(?:\.\d+)?[sdf]|%%|<[^>]+>")


def test_every_entry_is_translated_and_none_is_fuzzy():
    entries = read_po(PO)
    header, messages = entries[0], entries[1:]
    assert header["msgid"] == ""
    assert "fuzzy" not in header["flags"]
    assert "Language: ja\n" in header["msgstr"]
    assert len(messages) > 500
    untranslated = [e["msgid"] for e in messages if not translation(e).strip()]
    fuzzy = [e["msgid"] for e in messages if "fuzzy" in e["flags"]]
    obsolete = [e["msgid"] for e in messages if e.get("obsolete")]
    assert untranslated == [] and fuzzy == [] and obsolete == []


def test_translations_keep_every_placeholder_and_tag():
    wrong = [
        (e["msgid"], translation(e))
        for e in read_po(PO)[1:]
        if sorted(PLACEHOLDER.findall(e["msgid"])) != sorted(PLACEHOLDER.findall(translation(e)))
    ]
    assert wrong == []


def test_the_compiled_mo_matches_the_po():
    """The .mo is committed (servers without gettext serve it as is): it must say exactly
    what the .po says. Read with the standard library; no msgfmt needed."""
    with MO.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    stale = []
    for entry in read_po(PO)[1:]:
        if "msgid_plural" in entry:
            got = catalog.ngettext(entry["msgid"], entry["msgid_plural"], 1)
        else:
            got = catalog.gettext(entry["msgid"])
        if got != translation(entry):
            stale.append(entry["msgid"])
    assert stale == [], "run: manage.py compilemessages --ignore=.venv"
    po_ids = {e["msgid"] for e in read_po(PO)[1:]}
    mo_ids = {k[0] if isinstance(k, tuple) else k for k in catalog._catalog} - {""}
    assert mo_ids == po_ids, "run: manage.py compilemessages --ignore=.venv"


def test_every_literal_template_string_is_in_the_catalogue():
    """A cheap check for the common case, {% translate "..." %} in a template; the full
    check is `manage.py makemessages -l ja` showing no new empty entry."""
    po_ids = {e["msgid"] for e in read_po(PO)[1:]}
    literal = re.compile(r"""\{%\s*translate\s+(?:"([^"]*)"|'([^']*)')\s*%\}""")
    missing = set()
    for template in (Path(settings.BASE_DIR) / "templates").rglob("*.*"):
        for match in literal.finditer(template.read_text(encoding="utf-8")):
            msgid = match.group(1) if match.group(1) is not None else match.group(2)
            if msgid not in po_ids:
                missing.add(f"{template.name}: {msgid}")
    assert sorted(missing) == []


def test_the_mo_is_not_ignored_by_git():
    gitignore = (Path(settings.BASE_DIR) / ".gitignore").read_text()
    assert not re.search(r"^\s*[^#\n]*\.mo\s*$", gitignore, flags=re.M)


def test_change_kinds_have_japanese_names():
    from django.utils import translation as django_translation

    with django_translation.override("ja"):
        assert str(ChangeKind.REPLACE.label) == "保留中のメンテナンスを適用"
        assert str(ChangeKind.ENABLE_LIFECYCLE.label) == "ライフサイクルコントロールを有効化"
