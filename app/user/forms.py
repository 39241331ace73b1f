"""Forms of the user's pages."""
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget


class NewKeyForm(FlaskForm):
    """Name and lanes of a new API key."""

    name = StringField("Name", validators=[DataRequired(), Length(max=100)], default="default")
    lanes = SelectMultipleField(
        "Lanes", choices=[SelectChoice("official", "Official (Credit)"), SelectChoice("routed", "Routed balance")],
        default=["official", "routed"], validators=[DataRequired()],
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
    )


class RevokeKeyForm(FlaskForm):
    """Only the CSRF token: the key id is in the URL."""


class RedeemForm(FlaskForm):
    """A redeem code, as printed by `waybill codes mint`."""

    code = StringField("Code", validators=[DataRequired(), Length(max=64)])
