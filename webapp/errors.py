"""A request the app turns down: a message on the page (or for the API caller), one line
in the server log, and no traceback, because nothing on the server is broken."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from nst.errors import NSTError

log = logging.getLogger("webapp")
Handler = TypeVar("Handler", bound=Callable[..., Any])


def refuse(message: str) -> gr.Error:
    """The error to raise for a person's mistake (a bad upload, an unknown style, ...)."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def shows_errors(handler: Handler) -> Handler:
    """The library's :class:`NSTError` (its messages are written for a person) -> :func:`refuse`.

    Works for plain and generator handlers; the signature stays the handler's own, since
    Gradio reads the API's parameter names and its ``gr.Progress`` argument from it.
    """
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                return (yield from handler(*args, **kwargs))
            except NSTError as exc:
                raise refuse(str(exc)) from exc

        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except NSTError as exc:
            raise refuse(str(exc)) from exc

    return call  # type: ignore[return-value]
