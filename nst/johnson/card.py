"""The model card of a style network: one template, filled from ``config.json``.

Every card comes from :data:`TEMPLATE` through :func:`model_card`: a training export's
(``train.export``), ``TransformerNet.save_pretrained`` / ``push_to_hub``'s, and the bundled
zoo styles' (``python -m zoo cards``). What it says comes from the network's
``config.json`` (style, architecture, the ``training`` record: steps run, time, hardware,
data) and, where the network was judged, from an ``evaluation`` record (the zoo
catalogue's), so it reads the same on the Hub as in the repository.

The metadata follows the Hub's rules (:func:`card_metadata_problems`): a Hub licence id, and
``datasets`` / ``base_model`` only when they are Hub repo ids, never local paths.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nst.files import atomic_path
from nst.hub import CONFIG_NAME, is_repo_id

CARD_NAME = "README.md"
#: What a card's usage lines say until the card is uploaded (train.publish fills in the repo).
REPO_PLACEHOLDER = "PATH_OR_REPO"
#: ``model_hub_mixin`` / ``pytorch_model_hub_mixin``: the tags huggingface_hub's mixin gives
#: the repos it writes (the Hub counts their downloads by ``config.json``).
CARD_TAGS = [
    "style-transfer",
    "neural-style-transfer",
    "johnson2016",
    "pytorch",
    "safetensors",
    "model_hub_mixin",
    "pytorch_model_hub_mixin",
]
#: Licence ids the Hub accepts in a card's ``license:`` (a subset of
#: https://huggingface.co/docs/hub/repositories-licenses); anything else becomes ``other``
#: with a ``license_name``.
HUB_LICENSES = frozenset(
    {
        "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0",
        "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "gpl-3.0", "lgpl-3.0",
        "openrail", "creativeml-openrail-m", "unlicense", "other",
    }
)  # fmt: skip
#: What people write that the Hub spells another way.
_LICENSE_ALIASES = {"public domain": "cc0-1.0", "public-domain": "cc0-1.0", "cc0": "cc0-1.0"}
#: ``training`` entries the card states in its own words, not as rows of the settings table.
_NOT_SETTINGS = (
    "iterations",  # a ceiling; the steps actually run are stated instead
    "steps",
    "total_steps",
    "train_seconds",
    "total_train_seconds",
    "trained_steps",
    "init_from",
    "warm_start",
    "hardware",
    "precision",
    "license",
    "dataset",
    "note",
)

TEMPLATE = """---
{{ card_data }}
---

# {{ title }}: a feed-forward style transfer network

Paints any photo{{ in_the_style }}
in one forward pass: the image transformation network of Johnson et al. 2016, ["Perceptual
Losses for Real-Time Style Transfer and Super-Resolution"](https://arxiv.org/abs/1603.08155),
with instance normalisation and upsample-convolutions.
{% if style_images %}
## Style image{% if style_images | length > 1 %}s{% endif %}

{{ style_images | join(" ") }}
{% endif %}{% if samples %}
## Samples

{{ samples | join(" ") }}
{% endif %}
## Usage

With the `nst` package of the project that trained it installed:

```bash
python -m nst stylize photo.jpg --model {{ name }} -o stylised.jpg
```

```python
from nst.johnson import TransformerNet, stylize

model = TransformerNet.from_pretrained("{{ name }}")  # a Hub repo id, or this folder
stylize(model, "photo.jpg", size=1024).save("stylised.jpg")
```

`zoo.load("{{ name }}")` returns the same network and keeps it in memory for later
calls. The files are `model.safetensors` and `config.json` (the architecture and how the
network was trained), the layout of huggingface_hub's `PyTorchModelHubMixin`; pickles are
never loaded.

## Training
{% if trained %}
- Data: {{ dataset }}
- Steps: {{ steps_text }}
- Training time: {{ train_time }} for {{ steps }} steps{{ this_run }}
- Hardware: {{ hardware }}, precision {{ precision }}
{% if warm_start %}- Warm start: from the weights of {{ warm_start }}
{% endif %}- Loss network: VGG16 (ImageNet), content layers {{ content_layers }}, style
  layers {{ style_layers }}; losses normalised by the size of their targets.
{% else %}
Not recorded: this network's config.json holds no training record.
{% endif %}
| setting | value |
|---|---|
{% if trained %}| `steps` | `{{ steps }}` |
{% endif %}{% if total_steps %}| `total_steps` | `{{ total_steps }}` |
{% endif %}{% for key, value in settings %}| `{{ key }}` | `{{ value }}` |
{% endfor %}
## Evaluation
{% if evaluation %}
Judged on {{ evaluation.photos | length }} photos it was not trained on
({{ evaluation.photos | join(", ") }}) at {{ evaluation.size }} px, by the terms of
Johnson et al.'s training loss: VGG16 content error at relu2_2 and style error (Gram
matrices) at relu1_2, relu2_2, relu3_3 and relu4_3, each normalised, averaged over the
photos; lower is closer. Gatys-100 is the optimisation of Gatys et al. 2015 run on each
photo, 100 L-BFGS iterations starting from the photo, on the same loss with content weight
1 and style weight 10: the per-photo result this network approximates in a single pass.

| {{ evaluation.header | join(" | ") }} |
|{% for _ in evaluation.header %}---|{% endfor %}
{% for row in evaluation.rows %}| {{ row | join(" | ") }} |
{% endfor %}{% if evaluation.judged %}
Judged {{ evaluation.judged }}.
{% endif %}{% else %}
Not judged yet{% if samples %}: the samples above are its output on photos it was not
trained on{% endif %}.
{% endif %}"""


def hub_license(value: str | None) -> dict[str, str]:
    """``license`` (and ``license_name`` for ``other``) as the Hub's metadata wants them."""
    text = (value or "mit").strip()
    lowered = _LICENSE_ALIASES.get(text.lower(), text.lower())
    if lowered in HUB_LICENSES and lowered != "other":
        return {"license": lowered}
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "custom"
    return {"license": "other", "license_name": slug}


def card_metadata_problems(metadata: dict[str, Any]) -> list[str]:
    """What the Hub would reject or misread in a model card's metadata (empty = fine)."""
    problems = []
    license_id = metadata.get("license")
    if license_id not in HUB_LICENSES:
        problems.append(f"license {license_id!r} is not a Hub licence id")
    if license_id == "other" and not metadata.get("license_name"):
        problems.append("license 'other' needs a license_name")
    if "library_name" in metadata:
        problems.append(f"library_name {metadata['library_name']!r}: leave it out (use tags)")
    for key in ("datasets", "base_model"):
        values = metadata.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            if not is_repo_id(value):
                problems.append(f"{key} {value!r} is not a Hub repo id (user/name)")
    return problems


def _format_seconds(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _shown_source(init_from: str) -> str:
    """A warm start as a card may name it: a Hub id or a relative path as given; of an
    absolute path only its last part (a card never shows where a machine keeps files)."""
    if is_repo_id(init_from) or not Path(init_from).is_absolute():
        return init_from
    return Path(init_from).name


def _stop_reason(training: Mapping[str, Any]) -> str:
    """Why a run ended before its step ceiling (``iterations``), when it did."""
    steps, ceiling = training.get("steps"), training.get("iterations")
    minutes, seconds = training.get("max_minutes"), training.get("train_seconds")
    if not (isinstance(steps, int) and isinstance(ceiling, int) and steps < ceiling):
        return ""
    if minutes and seconds is not None and float(seconds) >= 0.99 * float(minutes) * 60:
        return f", where it reached its time limit of {float(minutes):g} min"
    return ""


def _evaluation(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    """The evaluation section's values; totals and ratios as recorded (from the unrounded
    losses), else computed. A multi-style net's is ``{"styles": {id: record}}``: one row
    per judged style."""
    if "styles" in evaluation:
        return _evaluation_by_style(evaluation["styles"])
    content, style = float(evaluation["content"]), float(evaluation["style"])
    gatys = evaluation["gatys_100"]
    g_content, g_style = float(gatys["content"]), float(gatys["style"])
    ratio = evaluation.get("ratio") or {}
    total = float(evaluation.get("total", content + 10 * style))
    g_total = float(gatys.get("total", g_content + 10 * g_style))
    return {
        "photos": list(evaluation.get("photos", [])),
        "size": evaluation.get("size", "?"),
        "judged": evaluation.get("judged"),
        "header": ("", "content", "style", "content + 10 x style"),
        "rows": [
            ("this network", f"{content:.3f}", f"{style:.4f}", f"{total:.3f}"),
            ("Gatys-100", f"{g_content:.3f}", f"{g_style:.4f}", f"{g_total:.3f}"),
            (
                "this network / Gatys-100",
                f"{float(ratio.get('content', content / g_content)):.2f}",
                f"{float(ratio.get('style', style / g_style)):.2f}",
                f"{total / g_total:.2f}",
            ),
        ],
    }


def _evaluation_by_style(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    rows = []
    for style_id, record in records.items():
        one = _evaluation(record)
        mine, gatys, ratio = one["rows"]
        total_ratio = float(mine[3]) / float(gatys[3])
        rows.append((f"`{style_id}`", *mine[1:], *ratio[1:3], f"{total_ratio:.2f}"))
    first = next(iter(records.values()), {})
    return {
        "photos": list(first.get("photos", [])),
        "size": first.get("size", "?"),
        "judged": first.get("judged"),
        "header": (
            "style",
            "content",
            "style",
            "content + 10 x style",
            "content / Gatys-100",
            "style / Gatys-100",
            "total / Gatys-100",
        ),
        "rows": rows,
    }


def _painting(style: Mapping[str, Any]) -> str:
    """The painting's credit, e.g. "*The Starry Night* by Vincent van Gogh (1889)"; "" when
    the style names none."""
    painting = style.get("painting") or style.get("title")
    if not painting:
        return ""
    by = f" by {style['artist']}" if style.get("artist") else ""
    year = f" ({style['year']})" if style.get("year") else ""
    return f"*{painting}*{by}{year}"


def _in_the_style(styles: Sequence[Mapping[str, Any]]) -> str:
    paintings = [p for p in map(_painting, styles) if p]
    if not paintings:
        return ""
    if len(styles) == 1:
        return f" in the style of {paintings[0]}"
    return f" in any of {len(styles)} styles or a blend of them: {'; '.join(paintings)};"


def _images(named: Sequence[tuple[str, str]]) -> list[str]:
    """Markdown images, ``(alt text, path)`` each."""
    return [f"![{alt}]({path})" for alt, path in named]


def _style_images(styles: Sequence[Mapping[str, Any]]) -> list[str]:
    if len(styles) == 1:
        return _images([("style", styles[0]["image"])] if styles[0].get("image") else [])
    return _images([(str(s.get("id", "style")), s["image"]) for s in styles if s.get("image")])


def _steps(training: Mapping[str, Any]) -> tuple[str, str]:
    """The steps line (this run's, why it stopped, all of them) and the time line's tail."""
    steps, total = training.get("steps", "?"), training.get("total_steps")
    text = f"{steps} in this run{_stop_reason(training)}"
    if total is None or total == steps:
        return text, ""
    return f"{text}; {total} in all", " (this run)"


def _warm_start(training: Mapping[str, Any]) -> str | None:
    init_from = training.get("init_from")
    if not init_from:
        return None
    text = f"`{_shown_source(init_from)}`, not random ones"
    prior = (training.get("warm_start") or {}).get("steps")
    return f"{text}: {prior} steps of training before this run" if prior else text


def model_card(
    config: Mapping[str, Any],
    *,
    samples: Sequence[str] = (),
    repo_id: str | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> Any:
    """The card (a ``huggingface_hub.ModelCard``) of the network ``config`` describes.

    ``config``: the content of ``config.json`` (one style in ``style``, or several in
    ``styles``). ``samples``: stylised photos in the folder (``samples/dog.jpg``).
    ``repo_id``: the Hub repo the usage lines name (else :data:`REPO_PLACEHOLDER`).
    ``evaluation``: the judged losses, with ``content``, ``style``, ``gatys_100``
    (``content``, ``style``), ``photos``, ``size`` and optionally ``total``, ``ratio`` and
    ``judged`` (as the zoo catalogue records them).
    """
    from huggingface_hub import ModelCard, ModelCardData

    styles = list(config.get("styles") or []) or [config.get("style") or {}]
    title = " / ".join(str(s.get("title") or s.get("id") or "") for s in styles).strip(" /")
    training = dict(config.get("training") or {})
    dataset = training.get("dataset") or "photos"
    init_from = training.get("init_from")
    card_data = ModelCardData(
        pipeline_tag="image-to-image",
        tags=list(CARD_TAGS),
        model_name=f"Johnson 2016 style network: {title}",
        datasets=[dataset] if is_repo_id(dataset) else None,
        base_model=init_from if is_repo_id(init_from) else None,
        **hub_license(training.get("license")),
    )
    architecture = {
        "width": config.get("width"),
        "residual_blocks": config.get("residual_blocks"),
        "photo_skip": config.get("photo_skip", False),
    }
    settings = [
        (key, json.dumps(value))
        for key, value in {**training, **architecture}.items()
        if key not in _NOT_SETTINGS and value is not None  # None: not set
    ]
    steps_text, this_run = _steps(training)
    return ModelCard.from_template(
        card_data,
        template_str=TEMPLATE,
        title=title or "Style",
        in_the_style=_in_the_style(styles),
        style_images=_style_images(styles),
        trained=bool(training),
        samples=_images([(Path(s).stem, s) for s in samples]),
        name=repo_id or REPO_PLACEHOLDER,
        dataset=dataset,
        steps=training.get("steps", "?"),
        total_steps=training.get("total_steps"),
        steps_text=steps_text,
        this_run=this_run,
        train_time=_format_seconds(float(training.get("train_seconds") or 0.0)),
        hardware=training.get("hardware", "not recorded"),
        precision=training.get("precision", "not recorded"),
        warm_start=_warm_start(training),
        content_layers=", ".join(training.get("content_layers") or ["relu2_2"]),
        style_layers=", ".join(
            training.get("style_layers") or ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
        ),
        settings=settings,
        evaluation=_evaluation(evaluation) if evaluation else None,
    )


def write_card(
    folder: str | Path,
    *,
    repo_id: str | None = None,
    evaluation: Mapping[str, Any] | None = None,
) -> Path:
    """(Re)write ``folder/README.md`` from the folder's ``config.json`` and ``samples/``;
    the weights are not touched."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    samples = sorted(p.relative_to(folder).as_posix() for p in folder.glob("samples/**/*.jpg"))
    card = model_card(config, samples=samples, repo_id=repo_id, evaluation=evaluation)
    with atomic_path(folder / CARD_NAME) as tmp:
        card.save(tmp)
    return folder / CARD_NAME
