"""Prompt and response content capture: off by default, truncated and redacted when on.

Content reaches a span only through :class:`ContentPolicy`, and only when the app called
``init(..., capture_content=True)``. Text is redacted first (the hook sees the full text),
then truncated to ``max_chars``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

logger = logging.getLogger(__name__)

Redactor: TypeAlias = Callable[[str], str]
"""Maps captured text to the text that may leave the process (e.g. masks e-mail addresses)."""

TRUNCATION_MARK = "…[truncated]"


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    """Whether and how prompt/response text is put on spans.

    Attributes:
        capture: put text on spans at all (default off).
        max_chars: longest text kept per attribute value, after redaction.
        redact: optional hook applied to every captured string; if it raises, the text
            is dropped (never the unredacted text).
    """

    capture: bool = False
    max_chars: int = 4096
    redact: Redactor | None = None

    def text(self, value: object) -> str | None:
        """Return *value* as redacted, truncated text, or None when not captured."""
        if not self.capture or value is None:
            return None
        text = value if isinstance(value, str) else str(value)
        if self.redact is not None:
            try:
                text = self.redact(text)
            except Exception:  # noqa: BLE001 - a broken hook must not leak the raw text
                logger.warning("content redaction hook failed; dropping captured text")
                return None
        if len(text) > self.max_chars:
            text = text[: self.max_chars] + TRUNCATION_MARK
        return text

    def messages(self, messages: object) -> str | None:
        """Serialise chat messages as GenAI ``{"role", "parts"}`` JSON, or None."""
        if not self.capture or messages is None:
            return None
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if not isinstance(messages, Iterable):
            return None
        out = [_message_parts(m) for m in messages]
        return self.text(json.dumps(out, ensure_ascii=False, default=str))

    def output_text(self, text: str | None, finish_reason: str | None) -> str | None:
        """Serialise one assistant reply as GenAI output-messages JSON, or None."""
        if not self.capture or text is None:
            return None
        msg = {"role": "assistant", "parts": [{"type": "text", "content": text}],
               "finish_reason": finish_reason}
        return self.text(json.dumps([msg], ensure_ascii=False))


def _message_parts(message: object) -> dict[str, Any]:
    if isinstance(message, Mapping):
        role = message.get("role", "user")
        content = message.get("content")
    else:  # pydantic models or LangChain messages
        role = getattr(message, "role", None) or getattr(message, "type", "user")
        content = getattr(message, "content", None)
    if isinstance(content, str) or content is None:
        parts: list[Any] = [{"type": "text", "content": content or ""}]
    elif isinstance(content, Iterable):
        parts = [_part(p) for p in content]
    else:
        parts = [{"type": "text", "content": str(content)}]
    return {"role": str(role), "parts": parts}


def _part(part: object) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "content": part}
    if isinstance(part, Mapping):
        kind = part.get("type", "text")
        text = part.get("text", part.get("content"))
        if text is not None:
            return {"type": "text", "content": str(text)}
        return {"type": str(kind)}
    text = getattr(part, "text", None)
    return {"type": "text", "content": str(text)} if text is not None else {"type": "other"}
