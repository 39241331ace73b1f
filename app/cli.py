"""The `waybill` command group: parses arguments, calls services, prints results."""
from __future__ import annotations

import functools
import sys
from datetime import datetime

import click
from flask.cli import FlaskGroup, with_appcontext

from app import create_app
from app.errors import ServiceError


class CliError(click.ClickException):
    """Bad input on the command line: one line on stderr and exit code 2."""

    exit_code = 2


def refuses_bad_input(command):
    """Turn a ServiceError or ValueError from a service into CliError."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ServiceError, ValueError) as exc:
            raise CliError(str(exc)) from None
    return wrapper


def _csv(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _date(value: str | None) -> datetime | None:
    """A YYYY-MM-DD option as midnight UTC."""
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD") from None


@click.group(cls=FlaskGroup, create_app=lambda: create_app(), add_version_option=False)
def main():
    """Waybill: an OpenAI-compatible AI token gateway whose routes are visible."""


@main.command("init-db")
@with_appcontext
def init_db():
    """Create or upgrade the schema."""
    from app.schema import upgrade_schema
    upgrade_schema()
    click.echo("database is at the latest schema")


@main.group()
def config():
    """Import or export models, channels and routes as TOML."""


@config.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@with_appcontext
@refuses_bad_input
def config_import(file):
    """Apply models, channels and routes from FILE (an idempotent upsert)."""
    from app.routing.config_file import import_config
    summary = import_config(file)
    click.echo(f"imported {summary.models} models, {summary.channels} channels, {summary.routes} routes")


@config.command("export")
@with_appcontext
def config_export():
    """Print models, channels and routes as the TOML that import reads."""
    from app.routing.config_file import export_config
    click.echo(export_config(), nl=False)


@main.group()
def users():
    """Manage users."""


@users.command("create")
@click.argument("email")
@click.option("--password", required=True)
@click.option("--admin", is_flag=True, help="Give the user the admin area.")
@with_appcontext
@refuses_bad_input
def users_create(email, password, admin):
    """Create a user with empty credit and routed wallets."""
    from app.accounts.service import create_user
    user = create_user(email, password, is_admin=admin)
    click.echo(f"created {'admin' if admin else 'user'} {user.email}")


@users.command("set-password")
@click.argument("email")
@click.option("--password", required=True)
@with_appcontext
@refuses_bad_input
def users_set_password(email, password):
    """Change a user's password and sign out every session they have."""
    from app.accounts.service import set_password
    user = set_password(email, password)
    click.echo(f"password changed for {user.email}; their sessions are signed out")


@main.group()
def keys():
    """Manage API keys."""


@keys.command("create")
@click.argument("email")
@click.option("--name", default="default")
@click.option("--models", help="Comma-separated model ids this key may use (default: all).")
@click.option("--lanes", help="official, routed or both (default: both).")
@click.option("--expires", help="YYYY-MM-DD: the key stops working at 00:00 UTC on this date.")
@click.option("--spend-cap", "spend_cap", help="Most this key may spend, in USD.")
@click.option("--rpm", type=int, help="Requests per minute this key may make.")
@with_appcontext
@refuses_bad_input
def keys_create(email, name, models, lanes, expires, spend_cap, rpm):
    """Issue an API key; the last line printed is the key itself."""
    from app.accounts.service import find_user, issue_key
    from app.billing.pricing import parse_usd
    from app.catalog.queries import model_ids
    issued = issue_key(find_user(email), name=name, models=_csv(models), lanes=_csv(lanes),
                       expires_at=_date(expires), spend_cap=parse_usd(spend_cap) if spend_cap is not None else None,
                       rpm_limit=rpm, known_models=model_ids())
    click.echo(f"key {issued.key.name} for {email} (shown once, store it now):")
    click.echo(issued.secret)


@main.group()
def wallets():
    """Move money into wallets."""


@wallets.command("topup", context_settings={"ignore_unknown_options": True})
@click.argument("email")
@click.argument("wallet", type=click.Choice(["credit", "routed"]))
@click.argument("amount_usd")
@click.option("--memo", default="")
@with_appcontext
@refuses_bad_input
def wallets_topup(email, wallet, amount_usd, memo):
    """Add AMOUNT_USD to a user's credit or routed wallet."""
    from app.accounts.service import find_user
    from app.billing.pricing import format_usd, parse_usd
    from app.billing.wallets import credit, wallet_of
    amount = parse_usd(amount_usd)
    target = wallet_of(find_user(email).id, wallet)
    entry = credit(target.id, amount, memo=memo or "top-up")
    click.echo(f"{wallet} wallet of {email}: +${format_usd(amount)}, balance ${format_usd(entry.balance_after)}")


@main.group()
def codes():
    """Redeem codes that credit a wallet once."""


@codes.command("mint", context_settings={"ignore_unknown_options": True})  # "-1" is an amount to refuse
@click.argument("wallet", type=click.Choice(["credit", "routed"]))
@click.argument("amount_usd")
@click.option("--count", default=1, type=click.IntRange(min=1, max=1000), help="How many codes (at most 1000).")
@click.option("--expires", help="YYYY-MM-DD: the codes stop working at 00:00 UTC on this date.")
@with_appcontext
@refuses_bad_input
def codes_mint(wallet, amount_usd, count, expires):
    """Mint codes worth AMOUNT_USD on a credit or routed wallet; prints one code per line, shown only now."""
    from app.billing.codes import mint_codes
    from app.billing.pricing import format_usd, parse_usd
    amount = parse_usd(amount_usd)
    minted = mint_codes(wallet, amount, count=count, expires_at=_date(expires))
    click.echo("\n".join(minted))
    click.echo(f"minted {len(minted)} code(s) worth ${format_usd(amount)} each on the {wallet} wallet"
               f"{f', expiring {expires}' if expires else ''}; store them now, they are not shown again", err=True)


@main.group()
def ledger():
    """Audit the ledger."""


@ledger.command("check")
@with_appcontext
def ledger_check():
    """Exit 0 only if every ledger invariant holds."""
    from app.billing.audit import ledger_violations
    from app.gateway.audit import receipt_violations
    problems = ledger_violations() + receipt_violations()
    for line in problems:
        click.echo(f"VIOLATION {line}", err=True)
    if problems:
        click.echo(f"ledger check failed: {len(problems)} violation(s)", err=True)
        sys.exit(1)
    click.echo("ledger check passed")


@main.command("sweep")
@click.option("--older-than", type=click.IntRange(min=0), default=None,
              help="Resolve holds older than this many seconds (default: past their deadline).")
@with_appcontext
def sweep(older_than):
    """Resolve stale holds: charge each at its reserved amount and flag its receipt for review."""
    from app.gateway.sweep import sweep_stale_holds
    charged = sweep_stale_holds(older_than)
    click.echo(f"swept: {charged} stale hold(s) charged for review")


@main.group()
def catalog():
    """Model catalog."""


@catalog.command("sync")
@click.argument("source", required=False)
@with_appcontext
@refuses_bad_input
def catalog_sync(source):
    """Update prices from a LiteLLM-format JSON file or URL (default: the shipped snapshot)."""
    from app.catalog.sync import sync_catalog
    for line in sync_catalog(source).lines():
        click.echo(line)


@main.command("simulator")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=9001, type=int)
def simulator(host, port):
    """Run the fake upstreams alone (OpenAI protocol under /<channel>/v1)."""
    from werkzeug.serving import run_simple
    from app.simulator.app import create_simulator
    from app.simulator.server import QuietHandler
    click.echo(f"simulator at http://{host}:{port}/<channel>/v1 (faults: PUT /_control/faults/<channel>)")
    run_simple(host, port, create_simulator(), threaded=True, request_handler=QuietHandler)


@main.command("demo")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--simulator-port", default=9001, type=int, help="Port of the simulated upstreams.")
@with_appcontext
def demo(host, port, simulator_port):
    """Seed an admin, a user with money and a key, and the catalog; then serve the app."""
    from flask import current_app
    from werkzeug.serving import run_simple
    from app.demo import seed_demo
    from app.simulator.server import start_simulator
    simulator = start_simulator(port=simulator_port)
    for line in seed_demo(base_url=f"http://{host}:{port}", simulator_root=simulator.root):
        click.echo(line)
    run_simple(host, port, current_app._get_current_object(), threaded=True)
if __name__ == "__main__":
    main()
