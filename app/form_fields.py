"""WTForms fields the HTML areas share: exact USD amounts and checkbox lists."""
from __future__ import annotations

from wtforms import SelectMultipleField, StringField
from wtforms.widgets import CheckboxInput, ListWidget

from app.billing.pricing import MAX_AMOUNT_MICROS, parse_usd


class UsdField(StringField):
    """A USD amount typed as text, kept exactly as micro-USD; None when left empty."""

    def process_formdata(self, valuelist):
        text = valuelist[0].strip() if valuelist else ""
        # parse_usd's ValueError becomes this field's error, with the typed text kept in the box.
        self.data = parse_usd(text, MAX_AMOUNT_MICROS, kind="a USD amount") if text else None

    def _value(self) -> str:
        return self.raw_data[0] if self.raw_data else ""


class CheckboxesField(SelectMultipleField):
    """Several choices as checkboxes; never `required` in HTML, which would demand every box ticked."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()
