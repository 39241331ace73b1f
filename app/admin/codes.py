"""/admin/codes: mint a batch of redeem codes shown once, list codes by state with who used them, CSV."""
from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Iterator
from urllib.parse import quote

from flask import Response, flash, stream_with_context
from flask_login import current_user
from flask_wtf import FlaskForm
from htmx_flask import request
from wtforms import DateField, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange, Optional, ValidationError

from app.admin import bp
from app.admin.user_forms import AMOUNT_ATTRS, WALLET_CHOICES, _positive
from app.billing.codes import CODE_STATES, MAX_MINT_COUNT, codes_csv, list_codes, mint_batch
from app.database import utcnow
from app.errors import ServiceError
from app.form_fields import UsdField
from app.rendering import render, usd


class MintForm(FlaskForm):
    """A batch of codes: wallet, amount each, how many, and an optional expiry day."""

    wallet = SelectField("Wallet", choices=WALLET_CHOICES)
    amount = UsdField("Amount each (USD)", validators=[InputRequired("Enter an amount in USD, like 10 or 2.50."),
                                                       _positive], render_kw=AMOUNT_ATTRS)
    count = IntegerField("How many", default=10, validators=[
        InputRequired("Say how many codes to mint."),
        NumberRange(1, MAX_MINT_COUNT, f"Mint from 1 to {MAX_MINT_COUNT} codes at once.")],
        render_kw={"min": 1, "max": MAX_MINT_COUNT, "inputmode": "numeric"})
    # The command line's --expires: the code stops working at 00:00 UTC of that day.
    expires = DateField("Expires on (00:00 UTC, optional)", validators=[Optional()])

    def validate_expires(self, field) -> None:
        if field.data and field.data <= utcnow().date():
            raise ValidationError("Choose a day after today.")


def _state() -> str:
    state = request.args.get("state", "")
    return state if state in CODE_STATES else ""


def _page(fragment: str | None = None, status: int = 200, form: MintForm | None = None, minted=None):
    state = _state()
    found, rows = list_codes(state, request.args.get("page", 1, type=int))
    response = render("admin/codes.html", fragment, status=status, form=form or MintForm(formdata=None),
                      minted=minted, csv_href=_csv_data_uri(minted) if minted else None,
                      state=state, states=CODE_STATES, found=found, rows=rows)
    response.headers["Cache-Control"] = "no-store"  # a page holding fresh codes must not sit in any cache
    return response


@bp.route("/codes")
def codes():
    return _page("admin/_codes_list.html")


@bp.route("/codes", methods=["POST"])
def codes_mint():
    form = MintForm()
    if not form.validate_on_submit():
        return _page("admin/_codes_mint.html", 422, form)
    expires = datetime.combine(form.expires.data, datetime.min.time()) if form.expires.data else None
    try:
        minted = mint_batch(current_user.id, form.wallet.data, form.amount.data, form.count.data, expires)
    except ServiceError as refused:
        form.form_errors.append(str(refused))
        return _page("admin/_codes_mint.html", 422, form)
    flash(f"Minted {len(minted)} {form.wallet.data} code{'s' if len(minted) != 1 else ''} of "
          f"{usd(form.amount.data)}: copy or download them now, they are not shown again.", "success")
    response = _page("admin/_codes_mint.html", form=MintForm(formdata=None), minted=minted)
    response.headers["HX-Trigger"] = "codes-changed"
    return response


def _csv_data_uri(minted: list[str]) -> str:
    """The batch as a CSV inside the same response: the codes are never stored, so no later download could hold them."""
    return "data:text/csv;charset=utf-8," + quote("code\r\n" + "".join(f"{code}\r\n" for code in minted))


@bp.route("/codes.csv")
def codes_csv_export():
    state = _state()
    filename = f"waybill-codes{'-' + state if state else ''}-{utcnow():%Y-%m-%d}.csv"
    return Response(stream_with_context(_csv_text(state)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_text(state: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in codes_csv(state):
        writer.writerow(row)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
