"""Forms of the admin's users and review pages."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, ValidationError

from app.accounts.admin import MAX_MEMO_LENGTH
from app.billing.pricing import MAX_AMOUNT_MICROS, format_usd, usd_limit
from app.form_fields import UsdField

WALLET_CHOICES = [SelectChoice("credit", "Credit (official)"), SelectChoice("routed", "Routed balance")]
AMOUNT_ATTRS = {"inputmode": "decimal", "autocomplete": "off", "placeholder": "10.00"}


def _positive(form, field) -> None:
    if field.data is not None and field.data <= 0:
        raise ValidationError(f"Enter an amount above $0 and at most {usd_limit(MAX_AMOUNT_MICROS)}.")


def _strip(text: str | None) -> str | None:
    return " ".join(text.split()) if text else text


class TopUpForm(FlaskForm):
    """Credit one wallet of a user with an amount and a memo the user will read."""

    wallet = SelectField("Wallet", choices=WALLET_CHOICES)
    amount = UsdField("Amount (USD)", validators=[InputRequired("Enter an amount in USD, like 10 or 2.50."),
                                                  _positive], render_kw=AMOUNT_ATTRS)
    memo = StringField("Memo", filters=[_strip],
                       validators=[DataRequired("Say why: the user sees the memo in their ledger."),
                                   Length(max=MAX_MEMO_LENGTH,
                                          message=f"A memo has at most {MAX_MEMO_LENGTH} characters.")],
                       render_kw={"placeholder": "e.g. goodwill credit for ticket 4711", "autocomplete": "off"})


class RefundForm(FlaskForm):
    """Refund part or all of a receipt's charge."""

    amount = UsdField("Refund (USD)", validators=[InputRequired("Enter the amount to refund."), _positive],
                      render_kw=AMOUNT_ATTRS)
    note = StringField("Note", filters=[_strip],
                       validators=[Length(max=MAX_MEMO_LENGTH, message=f"A note has at most {MAX_MEMO_LENGTH} characters.")],
                       render_kw={"placeholder": "optional: shown in the user's ledger", "autocomplete": "off"})

    @classmethod
    def up_to(cls, refundable: int) -> RefundForm:
        """An empty form whose amount box suggests the whole refundable amount."""
        form = cls(formdata=None)
        form.amount.render_kw = {**AMOUNT_ATTRS, "placeholder": format_usd(refundable)}
        return form


class ActionForm(FlaskForm):
    """Only the CSRF token: the subject is in the URL (disable, enable, confirm, sweep)."""
