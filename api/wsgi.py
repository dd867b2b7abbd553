"""WSGI entry point: `gunicorn api.wsgi:app` or `flask --app api.wsgi run`."""

from __future__ import annotations

import logging

from api import create_app
from forecaster.logs import configure_logging
from forecaster.settings import Settings

_settings = Settings.from_env()
configure_logging(_settings.log_level, _settings.log_format)
_gunicorn = logging.getLogger("gunicorn.error")
if _gunicorn.handlers:
    # Under gunicorn (possibly daemonised, stderr detached) log where gunicorn logs, in our format.
    _ours = logging.getLogger().handlers[0].formatter
    for _handler in _gunicorn.handlers:
        _handler.setFormatter(_ours)
    logging.getLogger().handlers[:] = list(_gunicorn.handlers)
    _gunicorn.propagate = False
app = create_app(_settings)
