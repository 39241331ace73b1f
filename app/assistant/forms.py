"""The composer's form: the model, the lanes it may use, the question and any pasted data."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, StringField, TextAreaField

from app.assistant.chat import LANE_CHOICES, Draft

LANE_OPTIONS = [SelectChoice("any", "Either lane"), SelectChoice("official", "Credit only (official)"),
                SelectChoice("routed", "Routed balance only")]


class AskForm(FlaskForm):
    """A question to send; the service checks its content, data and cost, so a refusal can say exactly why."""

    model = StringField("Model")
    lane = RadioField("Pay from", choices=LANE_OPTIONS, default="any")
    content = TextAreaField("Question", render_kw={"rows": 4, "placeholder": "Ask about a company, a sector or a chart…"})
    data = TextAreaField("Pasted data (CSV or text)", render_kw={"rows": 4, "spellcheck": "false",
                                                                 "placeholder": "Date,Close\n2024-01-02,187.15\n…"})

    def draft(self) -> Draft:
        """The form as the service reads it; an unknown lane reads as either lane."""
        lane = self.lane.data if self.lane.data in LANE_CHOICES else "any"
        return Draft(model=(self.model.data or "").strip(), lane=lane, content=self.content.data or "",
                     data=self.data.data or "")
