"""Forms of the admin's catalog page."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Length, ValidationError

SOURCES = [SelectChoice("snapshot", "The shipped snapshot"), SelectChoice("upload", "A file"), SelectChoice("url", "A URL")]


class SyncForm(FlaskForm):
    """Where to read LiteLLM-format prices from, for a preview."""

    source = RadioField("Source", choices=SOURCES, default="snapshot")
    file = FileField("LiteLLM-format JSON file", render_kw={"accept": ".json,application/json"})
    url = StringField("URL", filters=[lambda text: text.strip() if text else text],
                      validators=[Length(max=2000, message="A URL has at most 2000 characters.")],
                      render_kw={"placeholder": "https://…/model_prices_and_context_window.json",
                                 "autocomplete": "off", "inputmode": "url", "spellcheck": "false"})

    def validate_file(self, field) -> None:
        if self.source.data == "upload" and not field.data:
            raise ValidationError("Choose a JSON file to upload.")

    def validate_url(self, field) -> None:
        if self.source.data == "url" and not field.data:
            raise ValidationError("Enter the URL of a LiteLLM-format JSON file.")


class ApplyForm(FlaskForm):
    """The signed diff a preview showed, sent back to apply exactly that."""

    diff = HiddenField(validators=[DataRequired("Preview a sync first.")])
