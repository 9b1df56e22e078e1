"""Three Gradio components whose input check says what was wrong, in the page's words.

Gradio checks every input in its component's ``preprocess``, before any handler or
``validator`` runs: a slider's range, a radio's choices, an image's decoding. Its own
messages do not name the input ("Value 99999 is greater than maximum value 2048."), and a
file that is not an image ends in a traceback and a generic error. These subclasses keep
Gradio's check and say which input was refused: the label the person sees on the page,
and for an upload the file name they sent (never the server's path). ``is_template``
makes the page draw them as the Gradio component they extend.

Why not ``validator=``: Gradio runs it on the preprocessed inputs while accepting the
request, so an input its component refuses comes back as a bare HTTP 400 with no message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import ImageData
from gradio.image_utils import decode_base64_to_image
from PIL import Image

from nst.errors import NSTError
from nst.images import load_image
from webapp.errors import refuse


class ImageInput(gr.Image):
    """``gr.Image`` read by :func:`nst.images.load_image`, whatever its ``type``: the pixel
    count is checked from the header before decoding (so a decompression bomb never
    allocates), the EXIF orientation applied, any mode made RGB. The handler gets an upright
    RGB PIL image."""

    is_template = True

    def preprocess(self, payload: ImageData | None) -> Image.Image | None:
        if payload is None:
            return None
        what = f"The {str(self.label).lower()} could not be used."
        try:
            if payload.path:  # an upload, already in Gradio's temp folder
                name = payload.orig_name or Path(payload.path).name
                return load_image(payload.path, name=name)
            # A data: URL (sent inline by an API caller), opened by Gradio's decoder.
            return load_image(decode_base64_to_image(payload.url or ""), name="the image sent")
        except NSTError as exc:
            raise refuse(f"{what} {exc}") from exc
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise refuse(f"{what} The image data sent is not an image that can be read.") from exc


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)


class Setting(gr.Slider):
    """``gr.Slider`` whose out-of-range refusal names the setting (the API takes any number)."""

    is_template = True

    def preprocess(self, payload: float) -> float:
        try:
            return super().preprocess(payload)
        except (gr.Error, TypeError) as exc:
            low, high = _shown(self.minimum), _shown(self.maximum)
            raise refuse(
                f"{self.label} must be between {low} and {high}, not {_shown(payload)}."
            ) from exc


class Choice(gr.Radio):
    """``gr.Radio`` whose refusal of an unknown value names the setting and its choices."""

    is_template = True

    def preprocess(self, payload: str | int | float | None) -> str | int | float | None:
        try:
            return super().preprocess(payload)
        except gr.Error as exc:
            choices = ", ".join(str(value) for _, value in self.choices)
            raise refuse(f"{self.label} must be one of {choices}, not {payload!r}.") from exc
