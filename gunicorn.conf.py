"""Gunicorn settings for Waybill: gevent workers, so one worker holds many concurrent streams."""
import os

wsgi_app = "wsgi:app"
bind = os.environ.get("WAYBILL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WAYBILL_WORKERS", "2"))
# A stream is a long, mostly idle request: greenlets hold a thousand of them where threads cannot.
worker_class = "gevent"
worker_connections = int(os.environ.get("WAYBILL_WORKER_CONNECTIONS", "2000"))
# The heartbeat timeout, not a request limit: gevent workers keep beating while streams run,
# so streams far longer than this survive.
timeout = 60
graceful_timeout = 30
keepalive = 5
accesslog = os.environ.get("WAYBILL_ACCESS_LOG") or None
