"""Waybill: an OpenAI-compatible AI token gateway whose backup routes are visible."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app: config, extensions, blueprints. Nothing else."""
    from app.config import engine_options, load_config
    from app import runtime
    from app.extensions import csrf, db, htmx, login_manager, migrate

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "static"),
                instance_path=os.environ.get("WAYBILL_INSTANCE_PATH") or None)
    app.config.update(load_config(app.instance_path))
    app.config.update(config or {})
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"]))

    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    runtime.init_app(app)
    with app.app_context():
        from app.database import configure_engine
        configure_engine(app)

    from app import models  # noqa: F401  (registers every table with the metadata)
    from app.admin import bp as admin_bp
    from app.assistant import bp as assistant_bp
    from app.auth import bp as auth_bp
    from app.proxy import bp as proxy_bp
    from app.user import bp as user_bp

    from app import errors, rendering, security
    rendering.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(user_bp)
    app.register_blueprint(assistant_bp)
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(proxy_bp)
    csrf.exempt(proxy_bp)  # bearer keys, never cookies: nothing for a forged form to ride on
    return app
