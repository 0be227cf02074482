"""The teacher pipeline stages: teacher, checks, judge, repair, distill (run with `nextedit run NAME`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from nextedit.llm import BatchQueued, LLMClient, LLMError
from nextedit.pipeline.stage import Stage, StageError
from nextedit.record import Example
from nextedit.teacher.checks import (
    DETERMINISTIC,
    ChecksConfig,
    check_prediction,
    is_checked_provider,
)
from nextedit.teacher.common import (
    LicenseRefused,
    LLMConfig,
    PrivacyConfig,
    drop_predictions,
    make_client,
)
from nextedit.teacher.distill import DistillOptions, distill_example
from nextedit.teacher.generate import MarkersInText, teacher_predictions
from nextedit.teacher.judge import JudgeOptions, judge_example
from nextedit.teacher.prompt import PromptOptions, prompt_version
from nextedit.teacher.repair import RepairOptions, repair_example

__all__ = ["ChecksStage", "DistillStage", "JudgeStage", "RepairStage", "TeacherStage"]


class _LLMStage(Stage):
    """Base of the stages that call a model: one lazily built client, closed at the end."""

    kind = "io"
    requires = (("detect_secrets", "detect-secrets"),)  # secret scrubbing of everything sent
    _client: LLMClient | None = None
    _reported_usd: float = 0.0  # of the current client's spending, what collect_stats already reported

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            self._client = make_client(self.config)
            self._reported_usd = 0.0
        return self._client

    def collect_stats(self) -> dict[str, float]:
        """The counters, plus `spent_usd`: dollars spent on new requests since the last call."""
        if self._client is not None and self._client.spent_usd > self._reported_usd:
            self.stats["spent_usd"] += self._client.spent_usd - self._reported_usd
            self._reported_usd = self._client.spent_usd
        return super().collect_stats()

    def close(self) -> None:
        if self._client is not None:
            self.stats["spent_usd"] += self._client.spent_usd - self._reported_usd
            if not self.stats["spent_usd"]:
                del self.stats["spent_usd"]
            self._client.close()
            self._client = None

    def _fail(self, what: str, exc: Exception) -> StageError:
        if isinstance(exc, BatchQueued):  # batch mode: the example comes back once the job is collected
            self.stats["batch_queued"] += 1
            return StageError(f"{what} {self.config.provider}: {exc}; run `nextedit batch collect` then this "
                              "stage again")
        self.stats[f"{what}_errors"] += 1
        return StageError(f"{what} {self.config.provider}: {exc}")


class TeacherConfig(LLMConfig):
    """Options of the teacher stage (model options at the top level, `prompt` and `privacy` tables)."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(1, ge=1, le=32, description="completions per example (references / settle candidates)")
    prompt: PromptOptions = Field(default_factory=PromptOptions)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)


class TeacherStage(_LLMStage):
    """Ask the teacher for `samples` predictions per example; replaces earlier teacher and repair ones."""

    name = "teacher"
    version = f"1+{prompt_version()}"
    Config = TeacherConfig
    reads = ("source", "snapshot", "predictions", "checks", "scores")

    async def process(self, example: Example) -> Example:
        """Add predictions `teacher:<spec>` (sample 0..N-1); an unreadable answer is that prediction's error."""
        cfg: TeacherConfig = self.config
        try:
            preds = await teacher_predictions(example, self.client, cfg, samples=cfg.samples,
                                              options=cfg.prompt, privacy=cfg.privacy)
        except LicenseRefused as exc:
            self.stats["refused_license"] += 1
            raise StageError(str(exc)) from None
        except MarkersInText as exc:
            self.stats["refused_markers"] += 1
            raise StageError(str(exc)) from None
        except LLMError as exc:
            raise self._fail("teacher", exc) from None
        self.stats["predictions"] += len(preds)
        self.stats["unparseable"] += sum(1 for p in preds if p.error)
        self.stats["no_edits"] += sum(1 for p in preds if p.error is None and not p.patch)
        example = drop_predictions(example, lambda p: p.provider.startswith(("teacher:", "repair:")))
        example.predictions.extend(preds)
        return example


class ChecksStage(Stage):
    """Run the deterministic checks on teacher and repair predictions (replaces their earlier results)."""

    name = "checks"
    version = "1"
    Config = ChecksConfig
    reads = ("snapshot", "predictions", "checks")
    kind = "cpu"

    def process(self, example: Example) -> Example:
        """Set the checks of every checked prediction; judge checks and other predictions' checks stay."""
        cfg: ChecksConfig = self.config
        targets = {i for i, p in enumerate(example.predictions) if is_checked_provider(p.provider, cfg)}
        example.checks = [c for c in example.checks if not (c.prediction in targets and c.code in DETERMINISTIC)]
        for i in sorted(targets):
            new = check_prediction(example, i, cfg)
            example.checks.extend(new)
            bad = [c.code for c in new if not c.passed]
            self.stats["passed" if not bad else "failed"] += 1
            for code in bad:
                self.stats[f"fail:{code}"] += 1
        return example


class JudgeConfig(JudgeOptions, LLMConfig):
    """Options of the judge stage (model options and judge options at the top level)."""

    model_config = ConfigDict(extra="forbid")

    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)


class JudgeStage(_LLMStage):
    """LLM as judge: reverts_edits and a 1-5 confidence per teacher prediction, recorded as checks."""

    name = "judge"
    version = "1+" + prompt_version()
    Config = JudgeConfig
    reads = ("source", "snapshot", "predictions", "checks")

    async def process(self, example: Example) -> Example:
        """Judge the example's teacher predictions."""
        cfg: JudgeConfig = self.config
        try:
            return await judge_example(example, self.client, cfg, options=cfg, privacy=cfg.privacy,
                                       stats=self.stats)
        except LicenseRefused as exc:
            self.stats["refused_license"] += 1
            raise StageError(str(exc)) from None
        except LLMError as exc:
            raise self._fail("judge", exc) from None


class RepairConfig(RepairOptions, LLMConfig):
    """Options of the repair stage (model and repair options at the top level; the `checks` table
    should match the checks stage's thresholds)."""

    model_config = ConfigDict(extra="forbid")

    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    prompt: PromptOptions = Field(default_factory=PromptOptions)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)


class RepairStage(_LLMStage):
    """Send failing teacher predictions back to the teacher with the failures; record every round."""

    name = "repair"
    version = "1+" + prompt_version()
    Config = RepairConfig
    reads = ("source", "snapshot", "predictions", "checks", "scores")

    async def process(self, example: Example) -> Example:
        """Replace earlier repair rounds with new ones for the failing teacher predictions."""
        cfg: RepairConfig = self.config
        example = drop_predictions(example, lambda p: p.provider.startswith("repair:"))
        try:
            return await repair_example(example, self.client, cfg, options=cfg, checks=cfg.checks,
                                        prompt_options=cfg.prompt, privacy=cfg.privacy, stats=self.stats)
        except (LicenseRefused, MarkersInText) as exc:
            self.stats["refused"] += 1
            raise StageError(str(exc)) from None
        except LLMError as exc:
            raise self._fail("repair", exc) from None


class DistillConfig(DistillOptions):
    """Options of the distill stage."""

    model_config = ConfigDict(extra="forbid")

    checks: ChecksConfig = Field(default_factory=ChecksConfig)


class DistillStage(Stage):
    """Choose the final target per example into `expected`; drop examples where nothing passes."""

    name = "distill"
    version = "1"
    Config = DistillConfig
    reads = ("snapshot", "expected", "expected_cursors", "predictions", "checks", "scores")
    kind = "cpu"

    def process(self, example: Example) -> Example | None:
        """The example with its distilled `expected`, or None (dropped; the reason is counted in stats)."""
        cfg: DistillConfig = self.config
        return distill_example(example, cfg, cfg.checks, stats=self.stats)

