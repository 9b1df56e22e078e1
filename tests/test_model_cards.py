"""Model cards: metadata the Hub accepts (licence ids, no local paths, base_model), built
from the one template; the bundled styles' cards pass the same checks, state the steps
actually run and the judged losses, and are what the template makes of their config.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

import zoo
from nst.johnson.card import card_metadata_problems, hub_license, model_card, write_card

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = sorted(p.parent for p in (ROOT / "zoo" / "models").glob("*/README.md"))


def _config(init_from: str | None = None, **training: object) -> dict:
    record = {
        "iterations": 1000,
        "steps": 10,
        "train_seconds": 65.0,
        "style_weight": 3.0,
        "content_layers": ["relu2_2"],
        "hardware": "CPU",
        **training,
    }
    if init_from:
        record["init_from"] = init_from
    return {
        "width": 16,
        "residual_blocks": 5,
        "style": {"title": "Waves", "painting": "The Waves", "artist": "A", "year": "1900"},
        "training": record,
    }


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("mit", {"license": "mit"}),
        ("public domain", {"license": "cc0-1.0"}),
        ("CC0-1.0", {"license": "cc0-1.0"}),
        ("My Own Terms 2", {"license": "other", "license_name": "my-own-terms-2"}),
        (None, {"license": "mit"}),
    ],
)
def test_licences_become_hub_licence_ids(given, expected) -> None:
    assert hub_license(given) == expected


def test_the_old_cards_metadata_is_refused() -> None:
    old = {
        "license": "public domain",
        "library_name": "pytorch",
        "datasets": ["BSDS500 (500 photos, ../shared/data/train)"],
    }
    problems = " ".join(card_metadata_problems(old))
    assert "license" in problems and "library_name" in problems and "datasets" in problems


def test_a_card_from_the_template_has_valid_metadata_and_no_local_paths(tmp_path: Path) -> None:
    local = tmp_path / "runs" / "reconstruction" / "export"
    local.mkdir(parents=True)
    config = _config(
        init_from=str(local), license="public domain", dataset="BSDS500 (../shared/data/train)"
    )
    card = model_card(config, samples=["samples/dog.jpg"])
    data = card.data.to_dict()
    assert card_metadata_problems(data) == []
    assert data["license"] == "cc0-1.0" and "base_model" not in data and "datasets" not in data
    assert str(tmp_path) not in card.content  # the warm start is named, its path is not
    assert "![dog](samples/dog.jpg)" in card.text and "The Waves" in card.text
    assert "1 min 05 s for 10 steps" in card.text


def test_a_net_warm_started_from_a_hub_repo_names_it_as_base_model() -> None:
    card = model_card(_config(init_from="someone/starry-night", dataset="user/photos"))
    data = card.data.to_dict()
    assert data["base_model"] == "someone/starry-night" and data["datasets"] == ["user/photos"]
    assert card_metadata_problems(data) == []


def test_the_card_states_the_steps_run_not_the_step_ceiling() -> None:
    stopped = _config(iterations=1_000_000, steps=419, total_steps=16249, max_minutes=25.0)
    stopped["training"]["train_seconds"] = 1500.9
    text = model_card(stopped).text
    assert "419 in this run, where it reached its time limit of 25 min; 16249 in all" in text
    assert "| `steps` | `419` |" in text and "| `total_steps` | `16249` |" in text
    assert "1000000" not in text and "iterations" not in text


def test_the_usage_lines_name_the_repo_and_the_evaluation_is_shown() -> None:
    evaluation = {
        "photos": ["a.jpg", "b.jpg"],
        "size": 512,
        "content": 1.0,
        "style": 0.1,
        "gatys_100": {"content": 0.5, "style": 0.05},
    }
    card = model_card(_config(), repo_id="someone/waves", evaluation=evaluation)
    assert 'TransformerNet.from_pretrained("someone/waves")' in card.text
    assert "| this network | 1.000 | 0.1000 | 2.000 |" in card.text
    assert "| this network / Gatys-100 | 2.00 | 2.00 | 2.00 |" in card.text
    assert "Not judged yet" in model_card(_config()).text


def test_a_multi_style_card_shows_one_row_per_judged_style() -> None:
    config = _config()
    config["styles"] = [{"id": "waves", "title": "Waves"}, {"id": "dots", "title": "Dots"}]
    record = {"photos": ["a.jpg"], "size": 512, "content": 1.0, "style": 0.1,
              "gatys_100": {"content": 0.5, "style": 0.04}, "judged": "2026-12-06"}  # fmt: skip
    other = {**record, "content": 0.75, "style": 0.2}
    card = model_card(config, evaluation={"styles": {"waves": record, "dots": other}})
    assert "| style | content | style | content + 10 x style |" in card.text
    assert "| `waves` | 1.000 | 0.1000 | 2.000 | 2.00 | 2.50 | 2.22 |" in card.text
    assert "| `dots` | 0.750 | 0.2000 | 2.750 | 1.50 | 5.00 | 3.06 |" in card.text
    assert "| Gatys-100 |" not in card.text


@pytest.mark.parametrize("folder", BUNDLED, ids=lambda p: p.name)
def test_bundled_cards_are_the_template_and_true_to_config(folder: Path, tmp_path: Path) -> None:
    card = ModelCard.load(folder / "README.md")
    assert card_metadata_problems(card.data.to_dict()) == [], folder
    training = json.loads((folder / "config.json").read_text())["training"]
    text = card.text
    assert f"- Steps: {training['steps']} in this run" in text
    assert f"{training['total_steps']} in all" in text
    assert str(training["iterations"]) not in text  # a ceiling, not steps run
    assert f"Hardware: {training['hardware']}" in text
    assert "Session" not in text and "README" not in text and "../" not in text
    evaluation = zoo.card_evaluation(folder)
    assert evaluation and "## Evaluation" in text
    if "styles" in evaluation:  # a multi-style net: one row per listed style
        for style_id, record in evaluation["styles"].items():
            assert f"| `{style_id}` | {record['content']:.3f} |" in text
            assert f"| {record['ratio']['style']:.2f} |" in text
    else:
        assert "| Gatys-100 |" in text and f"| {evaluation['ratio']['style']:.2f} |" in text
    # what `python -m zoo cards` writes from the same files: no hand edits
    copy = tmp_path / folder.name
    copy.mkdir()
    (copy / "config.json").write_bytes((folder / "config.json").read_bytes())
    write_card(copy, evaluation=evaluation)
    assert (copy / "README.md").read_text() == (folder / "README.md").read_text()
