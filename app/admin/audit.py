"""/admin/audit: every admin change, newest first, filtered by action, actor, subject and day, paginated."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from htmx_flask import request

from app.accounts.models import User
from app.admin import bp
from app.audit_trail.models import AuditEvent
from app.audit_trail.service import audit_events
from app.extensions import db
from app.rendering import render

AUDIT_PAGE_SIZE = 50
COMMAND_LINE = "command line"
# Fields holding micro-USD, shown as dollars.
MONEY_FIELDS = frozenset({"amount", "balance", "refunded", "charge", "refund"})


@dataclass(frozen=True)
class AuditFilter:
    """The audit page's filters, from its query string: action, actor email (or the command line), subject, days."""

    action: str = ""
    actor: str = ""
    subject: str = ""
    start: date | None = None
    end: date | None = None

    @classmethod
    def from_args(cls, args) -> AuditFilter:
        """Read the filters, dropping what is not a date."""
        return cls(args.get("action", "").strip()[:40], args.get("actor", "").strip().lower()[:254],
                   args.get("subject", "").strip()[:200], _day(args.get("from")), _day(args.get("to")))

    def args(self) -> dict:
        """The filters as query arguments, only those set."""
        found = {"action": self.action, "actor": self.actor, "subject": self.subject,
                 "from": self.start.isoformat() if self.start else "", "to": self.end.isoformat() if self.end else ""}
        return {key: value for key, value in found.items() if value}

    def select(self):
        """The audit events these filters keep, newest first."""
        query = audit_events(action=self.action or None, subject=self.subject or None,
                             since=datetime.combine(self.start, datetime.min.time()) if self.start else None)
        if self.end:  # inclusive: the whole of that UTC day
            query = query.where(AuditEvent.created_at < datetime.combine(self.end + timedelta(days=1), datetime.min.time()))
        if self.actor == COMMAND_LINE:
            query = query.where(AuditEvent.actor_id.is_(None))
        elif self.actor:
            query = query.join(User, User.id == AuditEvent.actor_id).where(User.email == self.actor)
        return query


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _actors(events) -> dict[int, str]:
    """The emails of a page's actors, in one query."""
    ids = {event.actor_id for event in events if event.actor_id is not None}
    return dict(db.session.execute(db.select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}


def _choices() -> tuple[list[str], list[str]]:
    """Every action recorded so far, and every actor's email, for the filter menus."""
    actions = list(db.session.scalars(db.select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
    actors = list(db.session.scalars(db.select(User.email).where(
        User.id.in_(db.select(AuditEvent.actor_id).where(AuditEvent.actor_id.is_not(None)).distinct()))
        .order_by(User.email)))
    return actions, actors


def field_changes(event: AuditEvent) -> list[tuple[str, object, object]]:
    """(field, before, after) for each field an event names, in the order it recorded them."""
    before, after = event.before or {}, event.after or {}
    names = list(before) + [name for name in after if name not in before]
    return [(name, before.get(name), after.get(name)) for name in names]


@bp.route("/audit")
def audit():
    where = AuditFilter.from_args(request.args)
    found = db.paginate(where.select(), page=max(request.args.get("page", 1, type=int), 1),
                        per_page=AUDIT_PAGE_SIZE, error_out=False)
    actions, actors = _choices()
    return render("admin/audit.html", "admin/_audit.html", where=where, found=found, actors=_actors(found.items),
                  actions=actions, actor_emails=actors, field_changes=field_changes, money_fields=MONEY_FIELDS)
