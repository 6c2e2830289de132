"""Logging: one format (text or JSON) for the server's and uvicorn's lines alike, and the
request id carried through a context variable so every line of a request can name it."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# Set once a request's own line is written (by the speech service), so an error handler that
# sees the same failure afterwards does not write a second line for it.
request_logged_var: contextvars.ContextVar[bool] = contextvars.ContextVar("request_logged", default=False)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
# uvicorn adds `color_message` (the message again, with ANSI colours) to its own records.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


# A field value longer than this is cut: a client's megabyte-long string must not become a
# megabyte-long log line.
MAX_FIELD_CHARS = 512
# C0 and C1 control characters and DEL: a raw newline or ESC from a client would forge a
# log line or drive the reader's terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def safe_text(value: str, limit: int = MAX_FIELD_CHARS) -> str:
    """`value` with control characters escaped and cut to `limit` characters."""
    if len(value) > limit:
        value = f"{value[:limit]}...({len(value)} chars)"
    return _CONTROL.sub(_escape_control, value)


# Query parameters and header values that carry credentials. A browser's WebSocket cannot
# send headers, so its key travels as `?api_key=`; uvicorn's WebSocket line (and any access
# line) writes the path with its query string.
_SECRET_PARAM = re.compile(
    r"(?i)([?&;](?:api[_-]?key|apikey|key|token|access[_-]?token|auth|authorization|password|secret)=)[^&\s\"'#]*"
)
_SECRET_HEADER = re.compile(r"(?i)((?:authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)[^\s\"',]+")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]+")
REDACTED = "***"


class Redactor:
    """Removes credentials from log text: the server's own API keys wherever they appear,
    and the value of any credential-like query parameter, Authorization header or bearer
    token, known key or not."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        # Longest first, so a key that contains another is removed whole.
        self.secrets = tuple(sorted((s for s in secrets if s), key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _SECRET_PARAM.sub(rf"\g<1>{REDACTED}", text)
        text = _SECRET_HEADER.sub(rf"\g<1>{REDACTED}", text)
        return _BEARER.sub(rf"\g<1>{REDACTED}", text)


def record_fields(record: logging.LogRecord, redact: Redactor | None = None) -> dict[str, Any]:
    redact = redact or Redactor()
    fields = {
        k: redact(safe_text(v)) if isinstance(v, str) else v
        for k, v in vars(record).items()
        if k not in _RECORD_ATTRS and not k.startswith("_")
    }
    request_id = request_id_var.get()
    if request_id is not None and "request_id" not in fields:
        fields["request_id"] = request_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message and the record's fields."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(safe_text(record.getMessage(), 4096)),
        }
        entry.update(record_fields(record, self.redact))
        if record.exc_info:
            entry["exception"] = self.redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time level logger message key=value ...`: readable, still greppable by field."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")
        self.redact = redact or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        # Only the message is escaped, not a traceback that follows it on its own lines.
        message = self.redact(safe_text(record.getMessage(), 4096))
        line = f"{self.formatTime(record)} {record.levelname} {record.name} {message}"
        fields = record_fields(record, self.redact)
        if fields:
            line += " " + self.redact(" ".join(f"{k}={v}" for k, v in fields.items()))
        if record.exc_info:
            line += "\n" + self.redact(self.formatException(record.exc_info))
        return line


def configure_logging(log_format: str, level: str, secrets: tuple[str, ...] = ()) -> None:
    """Route the root, the server's and uvicorn's loggers through one handler, which keeps
    `secrets` (the API keys) and any credential in a query string or header out of every line."""
    handler = logging.StreamHandler(sys.stderr)
    redact = Redactor(secrets)
    handler.setFormatter(JsonFormatter(redact) if log_format == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The model stack is chatty at INFO (generation config notices); keep it to warnings.
    for name in ("transformers", "accelerate", "qwen_tts", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
