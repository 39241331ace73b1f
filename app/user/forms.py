"""Forms of the user's pages."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SelectChoice, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from app.accounts.service import MAX_RPM
from app.billing.pricing import MAX_AMOUNT_MICROS, usd_limit
from app.database import utcnow
from app.form_fields import CheckboxesField, UsdField

LANE_CHOICES = [SelectChoice("official", "paid from Credit at the official price"),
                SelectChoice("routed", "paid from the routed balance at the channel's price")]


class NewKeyForm(FlaskForm):
    """A new API key: its name, model scope, lanes and optional limits."""

    name = StringField("Name", filters=[lambda text: text.strip() if text else text],
                       validators=[DataRequired("Name the key, for example after the app or machine using it."),
                                   Length(max=100)])
    models = CheckboxesField("Models", validate_choice=False)
    lanes = CheckboxesField("Lanes", choices=LANE_CHOICES, default=["official", "routed"], validate_choice=False)
    expires = DateField("Expires on (UTC)", format="%Y-%m-%d", validators=[Optional()])
    spend_cap = UsdField("Spend cap (USD)", validators=[Optional()],
                         render_kw={"inputmode": "decimal", "placeholder": "no cap", "autocomplete": "off"})
    rpm = IntegerField("Requests per minute", validators=[
        Optional(), NumberRange(1, MAX_RPM, f"Use a whole number from 1 to {MAX_RPM:,}.")],
        render_kw={"placeholder": "no limit"})

    def __init__(self, scopeable_models, *args, **kwargs):
        """scopeable_models: the published, routed models (with .id and .name) a key may be limited to."""
        super().__init__(*args, **kwargs)
        self.models.choices = [SelectChoice(model.id, model.name) for model in scopeable_models]
        self.expires.render_kw = {"min": (utcnow().date() + timedelta(days=1)).isoformat()}

    def validate_models(self, field) -> None:
        offered = {choice.value for choice in field.choices}
        unknown = [model_id for model_id in field.data if model_id not in offered]
        if unknown:
            raise ValidationError(f"{unknown[0]!r} is not a published model with a route.")

    def validate_lanes(self, field) -> None:
        if not field.data:
            raise ValidationError("Tick at least one lane: official, routed, or both.")
        unknown = [lane for lane in field.data if lane not in {choice.value for choice in LANE_CHOICES}]
        if unknown:
            raise ValidationError(f"{unknown[0]!r} is not a lane: use official and/or routed.")

    def validate_expires(self, field) -> None:
        if field.data is not None and field.data <= utcnow().date():
            raise ValidationError("Pick a date after today (UTC): the key stops working at 00:00 UTC on it.")

    def validate_spend_cap(self, field) -> None:
        if field.data == 0:
            raise ValidationError(f"A spend cap must be more than $0 (at most {usd_limit(MAX_AMOUNT_MICROS)}); "
                                  "leave it empty for no cap.")

    def key_settings(self) -> dict:
        """The validated fields as issue_key takes them; no model ticked means every model."""
        return {"name": self.name.data, "models": self.models.data or None, "lanes": self.lanes.data,
                "expires_at": datetime.combine(self.expires.data, time()) if self.expires.data else None,
                "spend_cap": self.spend_cap.data, "rpm_limit": self.rpm.data}


class RevokeKeyForm(FlaskForm):
    """Only the CSRF token: the key id is in the URL."""


class RedeemForm(FlaskForm):
    """A redeem code, as printed by `waybill codes mint`."""

    code = StringField("Code", validators=[DataRequired(), Length(max=64)])
