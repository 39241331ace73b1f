"""Forms of the admin channels and routes pages.

They parse what was typed into the config file's spelling; the checks and bounds themselves are the
config importer's (app/routing/config_file.py), applied by the channel services.
"""
from __future__ import annotations

from decimal import Decimal

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField, DecimalField, FieldList, Form, FormField, PasswordField, RadioField, SelectChoice, SelectField,
    StringField,
)
from wtforms.validators import ValidationError

from app.billing.models import LANES
from app.catalog.models import PROVIDERS
from app.routing.models import Channel


def _stripped(text: str | None) -> str | None:
    return text.strip() if isinstance(text, str) else text


class ModelMapRow(Form):
    """One row of the model map: a public model id and the upstream id the channel knows it by."""

    public = StringField("Public model id", filters=[_stripped],
                         render_kw={"list": "catalog-models", "autocomplete": "off", "placeholder": "gpt-4o-mini"})
    upstream = StringField("Upstream model id", filters=[_stripped],
                           render_kw={"autocomplete": "off", "placeholder": "gpt-4o-mini-2024-07-18"})


class ChannelForm(FlaskForm):
    """A channel's settings; the key is write-only: typed to replace it, never filled back in."""

    name = StringField("Name", filters=[_stripped], description="A unique slug, shown in headers and receipts.")
    label = StringField("Label", filters=[_stripped], description="What users see. Empty: the name.")
    provider = SelectField("Provider", choices=[SelectChoice(p, p) for p in PROVIDERS])
    base_url = StringField("Base URL", filters=[_stripped],
                           description="The API root as the provider's own SDK takes it, such as "
                                       "https://api.openai.com/v1.",
                           render_kw={"inputmode": "url", "autocomplete": "off", "spellcheck": "false"})
    lane = RadioField("Lane", choices=[SelectChoice(lane, lane) for lane in LANES], default="official")
    price_multiplier = DecimalField("Price multiplier", places=None, default=Decimal(1),
                                    description="Routed lane: users pay the official price × this.",
                                    render_kw={"inputmode": "decimal"})
    timeout_s = DecimalField("Timeout (seconds)", places=None, default=Decimal(60), render_kw={"inputmode": "decimal"})
    enabled = BooleanField("Enabled", default=True)
    api_key = PasswordField("API key", filters=[_stripped],
                            render_kw={"autocomplete": "new-password", "spellcheck": "false"})
    api_key_env = StringField("Or read the key from this environment variable", filters=[_stripped],
                              render_kw={"autocomplete": "off", "spellcheck": "false", "placeholder": "OPENAI_API_KEY"})
    models = FieldList(FormField(ModelMapRow), min_entries=1)

    def __init__(self, *args, channel: Channel | None = None, **kwargs):
        """channel: the channel being edited, whose settings (never its key) fill the form."""
        if channel is not None and kwargs.get("formdata") is None and "data" not in kwargs:
            kwargs["data"] = _settings(channel)
        super().__init__(*args, **kwargs)
        self.map_errors: list[str] = []
        if not self.is_submitted() and all(row.public.data for row in self.models):
            self.models.append_entry()  # a blank row to map one more model

    def edit_rows(self, action: str | None) -> bool:
        """Apply an 'add a row' or 'remove row n' button; True when it was one (nothing is saved then)."""
        if action == "add_row":
            self.models.append_entry()
            return True
        if action and action.startswith("remove_row-"):
            index = action.removeprefix("remove_row-")
            self.models.entries = [row for row in self.models if row.name != f"models-{index}"] or []
            if not self.models.entries:
                self.models.append_entry()
            return True
        return False

    def validate_models(self, field) -> None:
        seen = set()
        for row in field:
            public, upstream = row.public.data, row.upstream.data
            if bool(public) != bool(upstream):
                raise ValidationError("Give both ids on a row, or clear the row.")
            if public in seen:
                raise ValidationError(f"{public} is mapped twice; keep one row for it.")
            if public:
                seen.add(public)

    def channel_table(self) -> dict:
        """The settings as a config file's [[channels]] table: what config_file.check_channel takes."""
        table = {"name": self.name.data, "provider": self.provider.data, "base_url": self.base_url.data,
                 "lane": self.lane.data, "price_multiplier": self.price_multiplier.data,
                 "timeout_s": float(self.timeout_s.data), "enabled": self.enabled.data,
                 "models": {row.public.data: row.upstream.data for row in self.models if row.public.data}}
        if self.label.data:
            table["label"] = self.label.data
        # A typed key wins over an environment name, which the form shows filled in when the channel uses one.
        if self.api_key.data:
            table["api_key"] = self.api_key.data
        elif self.api_key_env.data:
            table["api_key_env"] = self.api_key_env.data
        return table

    def show_problems(self, problems: dict[str, list[str]]) -> None:
        """Put a service's problems beside their fields."""
        for name, messages in problems.items():
            if name == "models":
                self.map_errors.extend(messages)
                continue
            sentences = [message[:1].upper() + message[1:] + "." for message in messages]
            target = self._fields.get(name)
            if target is None:
                self.form_errors.extend(sentences)
            else:
                target.errors = list(target.errors) + sentences

    @property
    def has_problems(self) -> bool:
        return bool(self.errors or self.map_errors)


def _settings(channel: Channel) -> dict:
    """The form's data for a saved channel; its key stays out."""
    return {"name": channel.name, "label": channel.label, "provider": channel.provider, "base_url": channel.base_url,
            "lane": channel.lane, "price_multiplier": Decimal(channel.price_multiplier_text),
            "timeout_s": _plain_decimal(channel.timeout_s), "enabled": channel.enabled,
            "api_key_env": channel.api_key_env or "",
            "models": [{"public": public, "upstream": upstream}
                       for public, upstream in sorted((channel.model_map or {}).items())]}


def _plain_decimal(number: float) -> Decimal:
    """A float as the decimal an admin would type: 60, not 60.0 or 6E+1."""
    return Decimal(int(number)) if number == int(number) else Decimal(str(number))
