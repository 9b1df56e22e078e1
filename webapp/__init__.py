"""The web app: Johnson et al. 2016 and Gatys et al. 2015 side by side on one Gradio page.

``nst`` is the library and knows nothing of a page; this package is the page built on it,
kept out of ``nst`` so that the library installs and imports without Gradio. ``app.py`` at
the top only builds the demo and launches it, as a Hugging Face Space runs it.

- ``layout``: the page, one ``with gr.Blocks()`` block read top to bottom like the screen,
  each event right after the components it joins; ``create_app`` and ``launch``.
- ``handlers``: what the events call, typed functions that call the library.
- ``components``: ``gr.Image`` that reads uploads through ``nst.images`` (its size limits
  and messages), and a slider and a radio whose refusals name the setting.
- ``gpu``: the ZeroGPU ``@spaces.GPU`` wrappers around the GPU work.
- ``config``: the settings (``AppConfig``) and this machine's defaults.
- ``errors``: a refused request is a message on the page and one line in the log.
- ``tempfolder``: Gradio's temp folder (uploads, results) kept to the last hour.
"""

# ``spaces`` must come before torch: on ZeroGPU it patches CUDA initialisation. Elsewhere
# its ``@spaces.GPU`` is a no-op, so the same code runs on a laptop, a GPU box and a Space.
import spaces  # noqa: F401

# isort: split

from webapp.config import AppConfig, default_config
from webapp.layout import create_app, launch

__all__ = ["AppConfig", "create_app", "default_config", "launch"]
