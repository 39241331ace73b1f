"""The wallet pages at /wallets/<kind>: balances, the filtered ledger, its CSV export, and redeeming codes."""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from flask import Response, abort, flash, redirect, stream_with_context, url_for
from flask_login import current_user
from htmx_flask import request
from werkzeug.datastructures import MultiDict

from app.billing.codes import CodeRefused, Redeemed, RedeemThrottled, redeem_code
from app.billing.ledger import ENTRY_KINDS, LedgerFilter, iter_entries, ledger_page, page_of_entry
from app.billing.pricing import MICROS_PER_USD, format_usd
from app.billing.wallets import wallets_of
from app.database import utcnow
from app.gateway.activity import receipts_of_entries
from app.rendering import render, usd
from app.user import bp
from app.user.forms import RedeemForm


@dataclass(frozen=True)
class WalletInfo:
    """How a page names a wallet, which lane it pays for, and what it pays for in one line."""

    label: str  # in a sentence: "your official Credit"
    title: str  # after the lane badge, which reads as the label's first word
    lane: str
    pays_for: str


WALLETS = {
    "credit": WalletInfo("official Credit", "Credit", "official",
                         "Pays requests served by official channels, at the model's official price."),
    "routed": WalletInfo("routed balance", "balance", "routed",
                         "Pays requests served by routed channels, at the official price times the channel's multiplier."),
}
# Below $1 a single request may not fit: a hold covers the worst case, and a large model asked without
# max_tokens holds its whole max output (64,000 tokens at $15 per 1M is $0.96), so the next call could get 402.
LOW_BALANCE_MICROS = 1 * MICROS_PER_USD
# Spreadsheets run a cell starting with one of these as a formula: a memo must never become one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = ["entry_id", "created_at_utc", "kind", "amount_usd", "balance_after_usd", "memo", "receipt_id"]


def wallet_context(current: str | None = None) -> dict:
    """What the balances fragment needs: both wallets, their names, the low mark, the wallet on show."""
    return {"wallets": wallets_of(current_user.id), "wallet_info": WALLETS,
            "low_balance": LOW_BALANCE_MICROS, "current": current}


def _kind_or_404(kind: str) -> str:
    if kind not in WALLETS:
        abort(404)
    return kind


@bp.route("/wallets/<kind>")
def wallet(kind: str):
    context = wallet_context(_kind_or_404(kind))
    return render("user/wallet.html", "user/_ledger.html", form=RedeemForm(formdata=None),
                  **context, **_ledger_context(context["wallets"][kind], request.args))


def _ledger_context(wallet, args, highlight: int | None = None) -> dict:
    """One page of the wallet's ledger as the arguments ask: filters, page, or the page holding `entry`."""
    where = LedgerFilter.from_args(args)
    highlight = highlight or args.get("entry", type=int)
    page = (page_of_entry(wallet.id, where, highlight) if highlight else None) or max(args.get("page", 1, type=int), 1)
    entries = ledger_page(wallet.id, where, page)
    return {"kind": wallet.kind, "entries": entries, "receipts": receipts_of_entries(entries.items),
            "where": where, "entry_kinds": ENTRY_KINDS,
            "highlight": highlight if any(e.id == highlight for e in entries.items) else None}


@bp.route("/wallets/<kind>/ledger.csv")
def ledger_csv(kind: str):
    wallet = wallets_of(current_user.id)[_kind_or_404(kind)]
    filename = f"waybill-{kind}-ledger-{utcnow():%Y-%m-%d}.csv"
    return Response(stream_with_context(_csv_lines(wallet.id, LedgerFilter.from_args(request.args))),
                    mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _csv_lines(wallet_id: int, where: LedgerFilter) -> Iterator[str]:
    """The ledger as CSV text, one batch of entries at a time: every entry the filter keeps, exact amounts."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for batch in iter_entries(wallet_id, where):
        receipts = receipts_of_entries(batch)
        writer.writerows([row.id, f"{row.created_at.isoformat(timespec='microseconds')}Z", row.kind,
                          format_usd(row.amount), format_usd(row.balance_after), _inert(row.memo),
                          receipts.get(row.id, "")] for row in batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()


def _inert(text: str) -> str:
    """Text a spreadsheet shows as text: a leading quote keeps a formula-like memo from running."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


@bp.route("/wallets/redeem", methods=["POST"])
def redeem():
    form, back = RedeemForm(), request.args.get("wallet") if request.args.get("wallet") in WALLETS else "credit"
    status, redeemed, headers = _redeem(form)
    if not request.htmx:  # a plain form post: back to a wallet page, showing the new entry if there is one
        target = {"kind": redeemed.wallet_kind, "entry": redeemed.entry.id} if redeemed else {"kind": back}
        return redirect(url_for("user.wallet", **target), 303)
    context = wallet_context(back)
    # The ledger on show gains the new entry when the code credited this very wallet.
    ledger = _ledger_context(context["wallets"][back], MultiDict(), redeemed.entry.id) \
        if redeemed and redeemed.wallet_kind == back else {}
    response = render("user/wallet.html", "user/_redeemed.html", status=status, **context, **ledger,
                      form=RedeemForm(formdata=None) if redeemed else form)
    response.headers.update(headers)
    return response


def _redeem(form: RedeemForm) -> tuple[int, Redeemed | None, dict[str, str]]:
    """Redeem the form's code and flash the outcome: the status to answer, what was redeemed, extra headers."""
    if not form.validate_on_submit():
        flash("Enter a code, as it was given to you: WB-XXXX-XXXX-XXXX-XXXX.", "error")
        return 400, None, {}
    try:
        redeemed = redeem_code(current_user.id, form.code.data)
    except RedeemThrottled as refused:
        flash(str(refused), "error")
        return 429, None, {"Retry-After": str(refused.retry_after_s)}
    except CodeRefused as refused:
        flash(str(refused), "error")
        return 400, None, {}
    flash(f"Code redeemed: {usd(redeemed.amount)} added to your {WALLETS[redeemed.wallet_kind].label}.", "success")
    return 200, redeemed, {}
