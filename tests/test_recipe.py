"""`nextedit recipe run`: a whole experiment from one TOML on three small repositories and a random tiny
model (mine, context, split by repository, train, predict, score, compare), resumed on a re-run; and the
recipe's errors, reported before any work. No score is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _mine_fixtures import APP_V1, Repo, scripted_repo
from tiny_model import build_tiny_model
from typer.testing import CliRunner
from zed_samples import SAMPLES

from nextedit.cli import app
from nextedit.evaluate.quality import CANDIDATE_MARGINS, REVERSAL_LIMITS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
runner = CliRunner()


def _history(path: Path, words: list[str]) -> None:
    """A small repository whose commits rename and add functions."""
    repo = Repo(path)
    text = APP_V1
    repo.commit("init", {"pkg/app.py": text})
    for i, word in enumerate(words):
        text = text.replace("amount", word) if i == 0 else text + f"\n\ndef {word}_{i}(x):\n    return x * {i}\n"
        repo.commit(f"change {i}", {"pkg/app.py": text})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recipe")
    scripted_repo(root / "repos" / "shop")
    _history(root / "repos" / "alpha", ["count", "scale", "shift", "clip"])
    _history(root / "repos" / "beta", ["units", "grow", "fold"])
    # One of them as a bundle, the way the shared corpus comes.
    (root / "bundles").mkdir(exist_ok=True)
    subprocess.run(["git", "-C", str(root / "repos" / "alpha"), "bundle", "create", "-q",
                    str(root / "bundles" / "acme--alpha.bundle"), "--all"], check=True, capture_output=True)
    shutil.rmtree(root / "repos" / "alpha")
    build_tiny_model(root / "tiny")
    return root


RECIPE = """\
name = "tiny"
out_dir = "out"
workers = 1

[corpus]
sources = ["repos/*", "bundles/*.bundle"]
mine = {{ samples_per_commit = 2 }}

[filters]
near_duplicate = 0.9

[split]
test_repos = ["beta"]
dev_repos = ["shop"]

[train]
base_model = "tiny"
format = "zeta1"
format_options = {{ editable_tokens = 64, context_tokens = 32, related_tokens = 0, history_tokens = 64 }}
method = "lora"
max_length = 512
max_eval_examples = 2
lora = {{ r = 4, alpha = 8 }}
schedule = {{ max_steps = 2, batch_size = 1, learning_rate = 1e-3, eval_steps = 2, save_steps = 2, logging_steps = 1 }}

[predict]
max_examples = 3
student = {{ max_new_tokens = 8 }}
resamples = 50

[abstain]
enabled = true
threshold = "calibrate"
calibration_examples = 2

[eval]
zed = {zed}
"""


def _write(root: Path, **kw) -> Path:
    zed = kw.pop("zed", [])
    text = RECIPE.format(zed=json.dumps(zed))
    for old, new in kw.items():
        text = text.replace(old, new)
    path = root / "recipe.toml"
    path.write_text(text)
    return path


def test_recipe_runs_end_to_end_and_resumes(corpus):
    zed = []
    if SAMPLES:
        (corpus / "zed").mkdir(exist_ok=True)
        for p in SAMPLES[:2]:
            shutil.copy(p, corpus / "zed" / p.name)
        zed = ["zed"]
    recipe = _write(corpus, zed=zed)
    result = runner.invoke(app, ["recipe", "run", str(recipe)])
    assert result.exit_code == 0, result.output
    out = corpus / "out"
    summary = json.loads((out / "recipe.json").read_text())
    repos = summary["counts"]["repositories"]
    assert set(repos) == {"shop", "acme--alpha", "beta"} and all(r["examples"] > 0 for r in repos.values())
    assert (out / "repos" / "acme--alpha" / ".git").is_dir()  # the bundle was cloned
    assert summary["counts"]["context"] == summary["counts"]["mined"]  # every clone found without configuration
    assert summary["counts"]["split_test"]["repos"] == ["beta"]
    assert "beta" not in summary["counts"]["split_train"]["repos"]
    test_ids = {json.loads(line)["source"]["repo"] for line in (out / "split" / "test.jsonl").read_text().splitlines()}
    train_ids = {json.loads(line)["source"]["repo"] for line in (out / "split" / "train.jsonl").read_text().splitlines()}
    assert test_ids and not test_ids & train_ids
    assert summary["train"]["steps"] == 2 and summary["train"]["method"] == "lora"
    # abstention: calibrated on dev predictions, written into the student's folder with the reversal guard
    meta = json.loads((Path(summary["train"]["output_dir"]) / "merged" / "nextedit.json").read_text())
    assert "abstain_below" in meta and meta["max_reversal"] in REVERSAL_LIMITS
    assert meta["candidate_margin"] in (*(m for m in CANDIDATE_MARGINS if m != float("inf")), "inf")
    assert meta["quiet_when_clean"] is False  # recipes leave the clean-code rule off unless asked
    assert (out / "calibration" / "scored.margin-0.limit-none.jsonl").is_file()
    assert any(n.startswith("abstain: threshold") for n in summary["notes"])
    held = summary["evals"]["held-out"]
    assert held["examples"] == 3
    assert {r["provider"] for r in held["table"]} == {"student", "base", "noop", "propagate"}
    assert {d["against"] for d in held["differences"]} == {"base", "noop", "propagate"}
    for d in held["differences"]:
        assert d["delta_chrf"]["shared_examples"] == 3 and len(d["delta_chrf"]["ci"]) == 2
    if zed:
        assert summary["evals"]["zed"]["examples"] == 2
    assert (out / "eval" / "held-out" / "report.html").is_file()
    assert "filters" in summary["counts"] and summary["timings"]["mine_all"] >= 0
    assert "## held-out (3 examples)" in (out / "recipe.md").read_text()
    assert "| student − |" in result.output

    again = runner.invoke(app, ["recipe", "run", str(recipe)], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    second = json.loads((out / "recipe.json").read_text())
    assert second["evals"]["held-out"]["table"] == held["table"]
    assert second["train"]["output_dir"] == summary["train"]["output_dir"]
    stderr_like = again.output
    assert "already trained" in stderr_like and "from cache" in stderr_like


def test_recipe_until_split_then_check(corpus, tmp_path):
    recipe = _write(corpus)
    result = runner.invoke(app, ["recipe", "run", str(recipe), "-o", str(tmp_path / "o"), "--until", "split"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "split" / "test.jsonl").is_file()
    assert not list((tmp_path / "o").glob("student-*"))
    check = runner.invoke(app, ["recipe", "check", str(recipe)])
    assert check.exit_code == 0 and "acme--alpha" in check.output


@pytest.mark.parametrize(("edit", "message"), [
    ({'test_repos = ["beta"]': 'test_repos = ["gamma"]'}, "field split.test_repos: 'gamma' matches none"),
    ({'method = "lora"': 'method = "qlora"'}, "recipe.toml:20: field train.method"),
    ({"workers = 1": "workers = 1\nbogus = 2"}, "field bogus: Extra inputs are not permitted"),
    ({'"repos/*", ': '"nowhere/*", '}, "field corpus.sources"),
    ({'base_model = "tiny"': 'base_model = "missing"'}, "field train.base_model"),
    ({'test_repos = ["beta"]': 'test_repos = ["beta", "shop", "alpha"]'}, "none is left to train on"),
    ({"near_duplicate = 0.9": "near_duplicate = 9"}, "field filters.near_duplicate"),
])
def test_recipe_errors_name_file_line_and_field_before_any_work(corpus, tmp_path, edit, message):
    root = tmp_path / "r"
    shutil.copytree(corpus / "repos", root / "repos")
    shutil.copytree(corpus / "bundles", root / "bundles")
    (root / "tiny").symlink_to(corpus / "tiny")
    recipe = _write(root, **edit)
    result = runner.invoke(app, ["recipe", "run", str(recipe)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not (root / "out").exists()


@pytest.mark.parametrize("name", ["cpu-small.toml", "gpu.toml"])
def test_checked_in_recipes_are_valid(name):
    import tomllib

    from nextedit.recipe import Recipe, load_recipe

    path = Path(__file__).resolve().parents[1] / "recipes" / name
    recipe = Recipe.model_validate(tomllib.loads(path.read_text()))
    assert recipe.split.test_repos and recipe.corpus.sources
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if (data / "repos").is_dir():  # beside the checkout: the corpus and the held-out repositories are there
        loaded = load_recipe(path, data_dir=data)
        assert loaded.path("{data_dir}/repos").resolve() == (data / "repos").resolve()
