"""Model cards: metadata the Hub accepts (licence ids, no local paths, base_model), built
from the template; the bundled styles' cards pass the same check."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from train.export import card_metadata_problems, hub_license, model_card

ROOT = Path(__file__).resolve().parents[1]
BUNDLED_CARDS = sorted((ROOT / "zoo" / "models").glob("*/README.md"))


def _config(init_from: str | None = None) -> dict:
    training = {"iterations": 10, "style_weight": 3.0, "content_layers": ["relu2_2"]}
    if init_from:
        training["init_from"] = init_from
    return {
        "width": 16,
        "residual_blocks": 5,
        "style": {"title": "Waves", "painting": "The Waves", "artist": "A", "year": "1900"},
        "training": training,
    }


def _state(**run: str) -> dict:
    return {"config": run, "hardware": "CPU", "train_seconds": 65.0, "step": 10}


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
    card = model_card(
        _config(init_from=str(local)),
        _state(license="public domain", dataset="BSDS500 (../shared/data/train)"),
        ["samples/dog.jpg"],
    )
    data = card.data.to_dict()
    assert card_metadata_problems(data) == []
    assert data["license"] == "cc0-1.0" and "base_model" not in data and "datasets" not in data
    assert str(tmp_path) not in card.content  # the warm start is named, its path is not
    assert "![dog](samples/dog.jpg)" in card.text and "The Waves" in card.text
    assert "1 min 05 s for 10 steps" in card.text


def test_a_net_warm_started_from_a_hub_repo_names_it_as_base_model() -> None:
    card = model_card(_config(init_from="someone/starry-night"), _state(dataset="user/photos"), [])
    data = card.data.to_dict()
    assert data["base_model"] == "someone/starry-night" and data["datasets"] == ["user/photos"]
    assert card_metadata_problems(data) == []


@pytest.mark.parametrize("card", BUNDLED_CARDS, ids=lambda p: p.parent.name)
def test_bundled_cards_metadata_is_valid_for_the_hub(card: Path) -> None:
    metadata = ModelCard.load(card).data.to_dict()
    assert card_metadata_problems(metadata) == [], card
