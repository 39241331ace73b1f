"""The page-or-fragment helper, seen through the keys page."""
from __future__ import annotations

from app.accounts.models import ApiKey
from app.extensions import db


def test_full_page_without_htmx_and_fragment_with_it(login_as):
    client = login_as()
    page = client.get("/keys")
    assert "<html" in page.get_data(as_text=True) and "HX-Request" in page.headers["Vary"]
    fragment = client.get("/keys", headers={"HX-Request": "true"})
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith('<section id="api-keys">')
    assert "HX-Request" in fragment.headers["Vary"]
    restore = client.get("/keys", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.get_data(as_text=True)


def test_keys_are_created_and_revoked_with_htmx_posts_carrying_the_csrf_header(login_as):
    client = login_as()
    page = client.get("/keys").get_data(as_text=True)
    token = page.split('"X-CSRFToken": "')[1].split('"')[0]
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    created = client.post("/keys", data={"name": "laptop", "lanes": ["official"]}, headers=headers)
    body = created.get_data(as_text=True)
    assert created.status_code == 200 and 'id="new-key-secret"' in body
    assert "hx-swap-oob" not in body  # nothing to flash: the flash region is left as it is
    key = db.session.scalar(db.select(ApiKey))
    assert (key.name, key.lanes) == ("laptop", ["official"])
    secret = body.split('id="new-key-secret">')[1].split("<")[0]
    assert secret.startswith("wb-") and secret[:10] == key.prefix
    assert client.post(f"/keys/{key.id}/revoke", headers={"HX-Request": "true"}).status_code == 400  # no token
    revoked = client.post(f"/keys/{key.id}/revoke", headers=headers)
    body = revoked.get_data(as_text=True)
    assert revoked.status_code == 200 and body.lstrip().startswith('<section id="api-keys">')
    # The flash rides out of band in this same answer, not one page late.
    flashes = body.split('<div id="flashes" aria-live="polite" hx-swap-oob="innerHTML">')[1]
    assert "Key revoked" in flashes
    assert "Key revoked" not in client.get("/keys").get_data(as_text=True)
    db.session.refresh(key)
    assert key.revoked


def test_a_user_cannot_revoke_someone_elses_key(login_as, make_user):
    from app.accounts.service import issue_key
    other = make_user("other@example.com")
    other_key = issue_key(other, "theirs").key
    client = login_as()
    token = client.get("/keys").get_data(as_text=True).split('"X-CSRFToken": "')[1].split('"')[0]
    assert client.post(f"/keys/{other_key.id}/revoke", headers={"X-CSRFToken": token}).status_code == 404
    db.session.refresh(other_key)
    assert not other_key.revoked
