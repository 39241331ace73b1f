"""Record admin changes inside the caller's transaction, and read them back filtered."""
from __future__ import annotations

from datetime import datetime

from app.audit_trail.models import AuditEvent
from app.database import utcnow
from app.extensions import db


def record_change(actor_id: int | None, action: str, subject: str,
                  before: dict | None = None, after: dict | None = None) -> AuditEvent:
    """Add an audit event to the current transaction, so it commits or rolls back with the change."""
    event = AuditEvent(actor_id=actor_id, action=action, subject=subject[:200],
                       before=before, after=after, created_at=utcnow())
    db.session.add(event)
    return event


def changed_fields(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the fields whose value differs, as (before, after)."""
    keys = [key for key in after if before.get(key) != after.get(key)]
    return {key: before.get(key) for key in keys}, {key: after[key] for key in keys}


def audit_events(action: str | None = None, actor_id: int | None = None, subject: str | None = None,
                 since: datetime | None = None):
    """A select of audit events, newest first, narrowed by the given filters."""
    query = db.select(AuditEvent).order_by(AuditEvent.id.desc())
    if action:
        query = query.where(AuditEvent.action == action)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if subject:
        query = query.where(AuditEvent.subject.contains(subject, autoescape=True))
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    return query
