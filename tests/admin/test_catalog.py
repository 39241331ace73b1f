"""/admin/catalog: a sync's diff is previewed first and applied exactly; publish and hide; price history."""
from __future__ import annotations

import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.audit_trail.models import AuditEvent
from app.catalog.models import Model, PriceChange
from app.catalog.sync import SHIPPED_SNAPSHOT, sync_catalog
from app.extensions import db
from tests.conftest import csrf_from

HTMX = {"HX-Request": "true"}


@pytest.fixture
def admin(login_as):
    return login_as("admin@example.com", admin=True)


def changed_snapshot(**prices) -> bytes:
    """The shipped snapshot with some input prices (USD per token) changed and a new model added."""
    data = json.loads(SHIPPED_SNAPSHOT.read_text())
    for model_id, cost in prices.items():
        data[model_id.replace("_", "-")]["input_cost_per_token"] = cost
    data["brand-new-model"] = {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": 1e-06,
                               "output_cost_per_token": 2e-06, "max_input_tokens": 1000}
    data["broken-model"] = {"litellm_provider": "openai", "mode": "chat", "input_cost_per_token": -1}
    return json.dumps(data).encode()


def preview_upload(client, raw: bytes, name: str = "prices.json"):
    token = csrf_from(client.get("/admin/catalog").get_data(as_text=True))
    return client.post("/admin/catalog/preview", headers=HTMX, content_type="multipart/form-data",
                       data={"csrf_token": token, "source": "upload", "file": (io.BytesIO(raw), name)})


def signed_diff(html: str) -> str:
    return re.search(r'name="diff" type="hidden" value="([^"]+)"', html).group(1)


def apply(client, html: str):
    return client.post("/admin/catalog/apply", headers=HTMX,
                       data={"csrf_token": csrf_from(html), "diff": signed_diff(html)})


def price_changes() -> int:
    db.session.rollback()
    return db.session.scalar(db.select(db.func.count()).select_from(PriceChange))


def test_an_uploaded_file_is_previewed_without_writing_then_applied_exactly(admin):
    sync_catalog()
    preview = preview_upload(admin, changed_snapshot(gpt_4o_mini=1.2e-07))
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and html.lstrip().startswith('<section id="catalog-sync"')
    assert "1</strong> new, <strong>1</strong> changed" in html and "Nothing has been applied yet" in html
    assert "brand-new-model" in html and "$0.15" in html and "$0.12" in html
    assert "skipped &#39;broken-model&#39;" in html and "cannot be negative" in html
    db.session.rollback()
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 150_000  # a preview writes nothing
    assert db.session.get(Model, "brand-new-model") is None and price_changes() == 0

    applied = apply(admin, html)
    assert applied.status_code == 200 and applied.headers["HX-Trigger"] == "catalog-changed"
    assert "1 added, 1 changed" in applied.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 120_000
    assert not db.session.get(Model, "brand-new-model").published
    change = db.session.scalar(db.select(PriceChange))
    assert (change.model_id, change.old_per_mtok, change.new_per_mtok, change.source) == \
        ("gpt-4o-mini", 150_000, 120_000, "upload prices.json")
    cli, event = db.session.scalars(db.select(AuditEvent).where(AuditEvent.action == "catalog_synced")
                                    .order_by(AuditEvent.id)).all()
    assert cli.actor_id is None and cli.after["added"] == 20  # the command line's sync is in the trail too
    assert event.actor_id is not None
    assert event.after["added"] == 1 and event.after["changed"] == 1 and event.after["source"] == "upload prices.json"

    page = admin.get("/admin/catalog/models/gpt-4o-mini").get_data(as_text=True)
    assert "Price history" in page and "$0.15" in page and "$0.12" in page and "upload prices.json" in page


def test_a_preview_is_refused_when_the_catalog_changed_since(admin):
    sync_catalog()
    first = preview_upload(admin, changed_snapshot(gpt_4o_mini=1.2e-07)).get_data(as_text=True)
    assert apply(admin, preview_upload(admin, changed_snapshot(gpt_4o_mini=1.3e-07)).get_data(as_text=True)).status_code == 200
    stale = apply(admin, first)
    assert stale.status_code == 409 and "changed since this preview" in stale.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(Model, "gpt-4o-mini").input_per_mtok == 130_000 and price_changes() == 1


def test_an_altered_diff_is_refused(admin):
    html = preview_upload(admin, changed_snapshot()).get_data(as_text=True)
    token = signed_diff(html)
    forged = admin.post("/admin/catalog/apply", headers=HTMX,
                        data={"csrf_token": csrf_from(html), "diff": token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")})
    assert forged.status_code == 400
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(Model)) == 0


def test_the_shipped_snapshot_previews_twenty_new_models(admin):
    token = csrf_from(admin.get("/admin/catalog").get_data(as_text=True))
    html = admin.post("/admin/catalog/preview", headers=HTMX, data={"csrf_token": token, "source": "snapshot"}).get_data(as_text=True)
    assert "Preview: the shipped snapshot" in html and "20</strong> new" in html
    assert apply(admin, html).status_code == 200
    again = admin.post("/admin/catalog/preview", headers=HTMX, data={"csrf_token": token, "source": "snapshot"})
    assert "nothing to apply" in again.get_data(as_text=True) and 'name="diff"' not in again.get_data(as_text=True)


@pytest.mark.parametrize("raw,message", [(b"[1, 2]", "expected a JSON object"), (b"{not json", "cannot read catalog"),
                                         (b"", "cannot read catalog")])
def test_a_bad_upload_is_refused_with_a_reason(admin, raw, message):
    answer = preview_upload(admin, raw)
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)


def test_an_upload_without_a_file_is_refused(admin):
    token = csrf_from(admin.get("/admin/catalog").get_data(as_text=True))
    answer = admin.post("/admin/catalog/preview", headers=HTMX, data={"csrf_token": token, "source": "upload"})
    assert answer.status_code == 422 and "Choose a JSON file" in answer.get_data(as_text=True)


class _Files(BaseHTTPRequestHandler):
    """A tiny loopback server: /prices.json, a same-host redirect, a cross-host redirect, a huge body."""

    body = b"{}"

    def do_GET(self):  # noqa: N802
        if self.path == "/same":
            self.send_response(302)
            self.send_header("Location", "/prices.json")
            self.end_headers()
        elif self.path == "/elsewhere":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/prices.json")
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.end_headers()
            chunk = b" " * 1024 * 1024
            try:
                for _ in range(12):
                    self.wfile.write(chunk)
            except OSError:
                pass
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def files_server():
    _Files.body = changed_snapshot()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def preview_url(client, url: str):
    token = csrf_from(client.get("/admin/catalog").get_data(as_text=True))
    return client.post("/admin/catalog/preview", headers=HTMX, data={"csrf_token": token, "source": "url", "url": url})


def test_a_url_is_read_following_same_host_redirects_only(admin, files_server):
    html = preview_url(admin, f"{files_server}/same").get_data(as_text=True)
    assert "21</strong> new" in html and "brand-new-model" in html
    refused = preview_url(admin, f"{files_server}/elsewhere")
    assert refused.status_code == 422 and "redirects to another host" in refused.get_data(as_text=True)
    huge = preview_url(admin, f"{files_server}/huge")
    assert huge.status_code == 422 and "larger than 8 MB" in huge.get_data(as_text=True)


@pytest.mark.parametrize("url,message", [
    ("http://169.254.169.254/latest/meta-data", "metadata"),
    ("http://[fe80::1]/x.json", "link-local"),
    ("http://metadata.google.internal/x", "metadata"),
    ("file:///etc/passwd", "http:// or https://"),
    ("ftp://127.0.0.1/x.json", "http:// or https://"),
])
def test_a_url_pointing_somewhere_unsafe_is_refused(admin, url, message):
    answer = preview_url(admin, url)
    assert answer.status_code == 422 and message in answer.get_data(as_text=True)


def test_publish_and_hide_are_audited_and_reach_v1_models(admin, gateway, client):
    models = lambda: {m["id"] for m in client.get("/v1/models", headers={"Authorization": f"Bearer {gateway.key}"}).get_json()["data"]}  # noqa: E731
    assert "gpt-4o-mini" in models()
    page = admin.get("/admin/catalog?q=mini").get_data(as_text=True)
    assert 'id="model-gpt-4o-mini"' in page and "published" in page and "hx-confirm=\"Hide gpt-4o-mini?" in page
    hidden = admin.post("/admin/catalog/models/gpt-4o-mini/hide", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert hidden.status_code == 200 and hidden.get_data(as_text=True).lstrip().startswith('<tr id="model-gpt-4o-mini"')
    assert ">Publish</button>" in hidden.get_data(as_text=True)
    assert "gpt-4o-mini" not in models()
    admin.post("/admin/catalog/models/gpt-4o-mini/publish", headers=HTMX, data={"csrf_token": csrf_from(page)})
    assert "gpt-4o-mini" in models()
    db.session.rollback()
    events = [(e.action, e.subject, e.before, e.after) for e in db.session.scalars(
        db.select(AuditEvent).where(AuditEvent.action.in_(["model_hidden", "model_published"])).order_by(AuditEvent.id))]
    assert events == [("model_hidden", "model gpt-4o-mini", {"published": True}, {"published": False}),
                      ("model_published", "model gpt-4o-mini", {"published": False}, {"published": True})]
    assert admin.post("/admin/catalog/models/nope/hide", headers=HTMX, data={"csrf_token": csrf_from(page)}).status_code == 404


def test_the_model_list_searches_filters_and_pages(admin):
    sync_catalog()
    everything = admin.get("/admin/catalog").get_data(as_text=True)
    assert "Page 1 of" not in everything  # 20 models fit one page
    found = admin.get("/admin/catalog?q=claude&provider=anthropic", headers=HTMX).get_data(as_text=True)
    assert found.lstrip().startswith('<section id="catalog-models"')
    assert "claude" in found and "gpt-4o-mini" not in found
    assert "No model matches" in admin.get("/admin/catalog?q=zzz", headers=HTMX).get_data(as_text=True)
    assert "gpt-4o-mini" not in admin.get("/admin/catalog?visibility=published", headers=HTMX).get_data(as_text=True)
    for n in range(10):
        db.session.add(Model(id=f"extra-{n:02d}", name=f"extra-{n:02d}", provider="openai", input_per_mtok=1,
                             output_per_mtok=1))
    db.session.commit()
    first = admin.get("/admin/catalog").get_data(as_text=True)
    assert "Page 1 of 2 · 30 in all" in first
    assert "Page 2 of 2" in admin.get("/admin/catalog?page=2").get_data(as_text=True)


def test_an_empty_catalog_says_so(admin):
    assert "The catalog is empty" in admin.get("/admin/catalog").get_data(as_text=True)


def test_users_cannot_open_the_catalog(login_as):
    assert login_as("user@example.com").get("/admin/catalog").status_code == 403
