"""The quickstart (`nextedit quickstart --fast`) runs end to end on a small real git repository."""

import json
import subprocess
import sys

from _mine_fixtures import scripted_repo


def test_quickstart_fast_runs_end_to_end(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    scripted_repo(repo)
    out = tmp_path / "qs"
    run = subprocess.run([sys.executable, "-m", "nextedit", "quickstart", "--fast", "--repo", str(repo),
                          "-o", str(out)], check=False, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((out / "report" / "summary.json").read_text())
    assert set(summary["providers"]) == {"noop", "propagate"}
    held_out = len((out / "test.jsonl").read_text().splitlines())
    assert held_out > 0
    assert summary["providers"]["noop"]["counts"]["predictions"] == held_out
    assert (out / "report" / "report.html").read_text().count("propagate") > 0
    assert "report:" in run.stdout


def test_quickstart_outside_git_fails_with_a_clear_message(tmp_path):
    run = subprocess.run([sys.executable, "-m", "nextedit", "quickstart", "--fast", "--repo", str(tmp_path),
                          "-o", str(tmp_path / "qs")], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "is not inside a git repository" in run.stderr
