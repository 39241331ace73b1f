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


def post_worker_init(worker):
    """Let the app close its connection: gunicorn drops the Connection header an app sends (PEP 3333)."""
    worker.wsgi = _closing_on_request(worker.wsgi)


def _closing_on_request(app):
    """The WSGI app, with gunicorn closing the connection after any response that says `Connection: close`."""
    def closing_app(environ, start_response):
        def start(status, headers, exc_info=None):
            asks_close = any(name.lower() == "connection" and value.lower() == "close" for name, value in headers)
            # gunicorn's start_response is a method of its response, which can be told to close.
            if asks_close and hasattr(getattr(start_response, "__self__", None), "force_close"):
                start_response.__self__.force_close()
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return closing_app
