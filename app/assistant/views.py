"""The assistant's pages: the conversation list, a conversation, sending, streaming, stopping, export."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, stream_with_context, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from htmx_flask import request as htmx_request
from markupsafe import escape

from app.assistant import bp
from app.assistant.chat import (AskRefused, answer_now, ask, preview, request_stop,
                                stream_answer)
from app.assistant.conversations import (Turn, conversation_list, delete_conversation, find_conversation, find_turn,
                                         start_conversation, transcript)
from app.assistant.datacard import MAX_DATA_CHARS
from app.assistant.export import conversation_markdown
from app.assistant.forms import AskForm
from app.assistant.models import Conversation
from app.assistant.picker import choice_of, model_choices
from app.assistant.prompts import NOTICE, TEMPLATES
from app.rendering import render

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _own(conversation_id: int) -> Conversation:
    """The signed-in user's conversation; 404 for anyone else's, exactly as for one that does not exist."""
    conversation = find_conversation(current_user.id, conversation_id)
    if conversation is None:
        abort(404)
    return conversation


def _own_answer(conversation_id: int, message_id: int) -> Turn:
    """An answer in the signed-in user's conversation; 404 otherwise."""
    _own(conversation_id)
    turn = find_turn(conversation_id, message_id)
    if turn is None or turn.message.role != "assistant":
        abort(404)
    return turn


@bp.get("/assistant")
def index():
    return render("assistant/index.html", conversations=conversation_list(current_user.id), form=FlaskForm(),
                  notice=NOTICE)


@bp.post("/assistant/conversations")
def new_conversation():
    if not FlaskForm().validate_on_submit():
        abort(400)
    conversation = start_conversation(current_user.id)
    return redirect(url_for("assistant.conversation", conversation_id=conversation.id), 303)


@bp.get("/assistant/<int:conversation_id>")
def conversation(conversation_id: int):
    conversation = _own(conversation_id)
    form = AskForm(formdata=None, model=conversation.model, lane=conversation.lane)
    return _conversation_page(conversation, form)


@bp.post("/assistant/<int:conversation_id>/messages")
def send(conversation_id: int):
    conversation = _own(conversation_id)
    form = AskForm()
    if not form.validate_on_submit():
        return _conversation_page(conversation, form, status=422)
    try:
        answer = ask(current_user.id, conversation, form.draft())
    except AskRefused as refusal:
        form.form_errors.append(str(refusal))
        return _conversation_page(conversation, form, status=422)
    if not htmx_request.htmx:  # no page to stream to: answer here, then show the conversation
        answer_now(current_user.id, answer.id)
        return redirect(url_for("assistant.conversation", conversation_id=conversation.id,
                                _anchor=f"message-{answer.id}"), 303)
    fresh = AskForm(formdata=None, model=conversation.model, lane=conversation.lane)
    turns = transcript(conversation.id)
    return _conversation_page(conversation, fresh, turns=turns, sent=turns[-2:])  # the question, its pending answer


@bp.post("/assistant/<int:conversation_id>/quote")
def quote(conversation_id: int):
    """The composer's live panel: lane choice, pasted data read, and the cost estimate (nothing is sent)."""
    conversation = _own(conversation_id)
    form = AskForm()
    return render("assistant/_quote.html", **_composer_context(conversation, form))


@bp.get("/assistant/<int:conversation_id>/answers/<int:message_id>/stream")
def stream(conversation_id: int, message_id: int):
    """The answer as server-sent events: `delta` for each piece of text, then `done` with the finished answer."""
    _own_answer(conversation_id, message_id)
    user_id = current_user.id

    def events():
        for text in stream_answer(user_id, message_id):
            yield _event("delta", str(escape(text)))
        finished = find_turn(conversation_id, message_id)
        yield _event("done", render_template("assistant/_turn.html", turn=finished))

    return Response(stream_with_context(events()), mimetype="text/event-stream", headers=SSE_HEADERS)


@bp.post("/assistant/<int:conversation_id>/answers/<int:message_id>/stop")
def stop(conversation_id: int, message_id: int):
    _own_answer(conversation_id, message_id)
    request_stop(message_id)
    return render_template("assistant/_stopping.html")


@bp.post("/assistant/<int:conversation_id>/delete")
def delete(conversation_id: int):
    conversation = _own(conversation_id)
    if not FlaskForm().validate_on_submit():
        abort(400)
    delete_conversation(conversation)
    flash("Conversation deleted. Its answers' receipts stay on your receipts page.", "success")
    if htmx_request.htmx:
        return Response(status=204, headers={"HX-Redirect": url_for("assistant.index")})
    return redirect(url_for("assistant.index"), 303)


@bp.get("/assistant/<int:conversation_id>/export.md")
def export(conversation_id: int):
    conversation = _own(conversation_id)
    text = conversation_markdown(conversation, transcript(conversation.id))
    filename = f"waybill-conversation-{conversation.id}.md"
    return Response(text, mimetype="text/markdown",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _event(name: str, data: str) -> str:
    """One server-sent event; every line of the data gets its own data: field, as the format requires."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n"


def _composer_context(conversation: Conversation, form: AskForm) -> dict:
    """What the composer and its live panel need: the picker, the chosen model and the preview."""
    choices = model_choices()
    chosen = choice_of(choices, form.model.data or conversation.model)
    if chosen is not None:
        form.model.data = chosen.id
    draft = form.draft()
    return {"conversation": conversation, "form": form, "choices": choices, "chosen": chosen,
            "preview": preview(current_user.id, conversation.id, draft) if chosen else None,
            "max_data_chars": MAX_DATA_CHARS, "templates": TEMPLATES,
            "typed_data_chars": len(draft.data)}


def _conversation_page(conversation: Conversation, form: AskForm, status: int = 200, turns: list[Turn] | None = None,
                       sent: list[Turn] | None = None):
    """The whole conversation page, or for htmx the composer (with any just-sent turns out of band)."""
    context = _composer_context(conversation, form)
    return render("assistant/conversation.html", "assistant/_composer.html", status=status, sent=sent,
                  turns=transcript(conversation.id) if turns is None else turns,
                  conversations=conversation_list(current_user.id, limit=30), notice=NOTICE, **context)
