"""/admin/catalog: sync prices with a diff shown before it is applied, publish or hide models, price history."""
from __future__ import annotations

from flask import abort, current_app, flash
from flask_login import current_user
from htmx_flask import request
from itsdangerous import BadData, URLSafeTimedSerializer

from app.admin import bp
from app.admin.catalog_forms import ApplyForm, SyncForm
from app.admin.user_forms import ActionForm
from app.catalog.models import PROVIDERS
from app.catalog.queries import VISIBILITY, get_model, price_history, search_models
from app.catalog.sync import (MAX_SOURCE_BYTES, SHIPPED_NAME, SHIPPED_SNAPSHOT, CatalogDiff, apply_previewed,
                              diff_of_bytes, diff_of_source, set_published)
from app.errors import ServiceError
from app.rendering import render
from app.routing.planner import forget_cached_routes

# A preview is applied soon after it is shown; an old one is previewed again, against today's catalog.
PREVIEW_MAX_AGE_S = 3600


def _signer() -> URLSafeTimedSerializer:
    """Signs the previewed diff into the apply form, so the server applies exactly what it showed, on any worker."""
    return URLSafeTimedSerializer(current_app.secret_key, salt="waybill-catalog-diff")


def _filters() -> dict:
    """The model list's filters from the query string, only those set."""
    args = request.args
    found = {"q": args.get("q", "").strip()[:100], "provider": args.get("provider", ""),
             "visibility": args.get("visibility", "")}
    found["provider"] = found["provider"] if found["provider"] in PROVIDERS else ""
    found["visibility"] = found["visibility"] if found["visibility"] in VISIBILITY else ""
    return {key: value for key, value in found.items() if value}


def _page(fragment: str | None = None, status: int = 200, form: SyncForm | None = None,
          diff: CatalogDiff | None = None, report=None):
    filters = _filters()
    return render("admin/catalog.html", fragment, status=status, form=form or SyncForm(formdata=None),
                  apply=ApplyForm(formdata=None, diff=_signer().dumps(diff.to_payload())) if diff else None,
                  diff=diff, report=report, filters=filters, providers=PROVIDERS, action=ActionForm(formdata=None),
                  models=search_models(filters.get("q", ""), filters.get("provider", ""), filters.get("visibility", ""),
                                        request.args.get("page", 1, type=int)))


@bp.route("/catalog")
def catalog():
    return _page("admin/_catalog_models.html")


@bp.route("/catalog/preview", methods=["POST"])
def catalog_preview():
    form = SyncForm()
    if not form.validate_on_submit():
        return _page("admin/_catalog_sync.html", 422, form)
    try:
        diff = _read_source(form)
    except ServiceError as refused:
        form.form_errors.append(str(refused))
        return _page("admin/_catalog_sync.html", 422, form)
    return _page("admin/_catalog_sync.html", form=form, diff=diff)


def _read_source(form: SyncForm) -> CatalogDiff:
    """The diff of the chosen source against the catalog."""
    if form.source.data == "upload":
        raw = form.file.data.stream.read(MAX_SOURCE_BYTES + 1)
        return diff_of_bytes(f"upload {form.file.data.filename or 'file'}"[:300], raw)
    if form.source.data == "url":
        if not form.url.data.startswith(("http://", "https://")):
            raise ServiceError("the URL must start with http:// or https://")
        return diff_of_source(form.url.data)
    diff = diff_of_source(str(SHIPPED_SNAPSHOT))
    diff.source = SHIPPED_NAME
    return diff


@bp.route("/catalog/apply", methods=["POST"])
def catalog_apply():
    payload = _previewed(ApplyForm())
    if payload is None:
        flash("That preview expired or was not sent whole: preview the sync again.", "error")
        return _page("admin/_catalog_sync.html", 400)
    try:
        report = apply_previewed(payload, current_user.id)
    except ServiceError as refused:
        flash(str(refused), "error")
        return _page("admin/_catalog_sync.html", 409)
    forget_cached_routes()
    flash(f"Catalog synced from {payload['source']}: {report.lines()[-1]}.", "success")
    response = _page("admin/_catalog_sync.html", report=report)
    response.headers["HX-Trigger"] = "catalog-changed"
    return response


def _previewed(form: ApplyForm) -> dict | None:
    """The diff the preview signed, or None when it is missing, altered or too old."""
    if not form.validate_on_submit():
        return None
    try:
        return _signer().loads(form.diff.data, max_age=PREVIEW_MAX_AGE_S)
    except BadData:
        return None


@bp.route("/catalog/models/<path:model_id>")
def catalog_model(model_id: str):
    model = get_model(model_id) or abort(404)
    return render("admin/catalog_model.html", model=model, history=price_history(model.id),
                  action=ActionForm(formdata=None))


@bp.route("/catalog/models/<path:model_id>/<any(publish, hide):change>", methods=["POST"])
def catalog_visibility(model_id: str, change: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        model = set_published(current_user.id, model_id, published=change == "publish")
    except ServiceError:
        abort(404)
    forget_cached_routes()
    flash(f"{model.id} is {'published: keys may use it' if model.published else 'hidden: no key may use it'}.", "success")
    return render("admin/catalog_model.html", "admin/_catalog_row.html", model=model, action=ActionForm(formdata=None),
                  history=price_history(model.id))


