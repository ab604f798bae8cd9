"""Test cases, eval runs and their results: durable data beside the prompts (Alembic migration 0008)."""

from datetime import datetime

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..domain.times import utcnow
from ..extensions import db

MAX_CASE_NAME_CHARS = 200
MAX_TAG_CHARS = 40

# A run's life: queued -> running -> finished | stopped; running <-> paused (a limit reached, resumed on request).
RUN_STATUSES = ("queued", "running", "paused", "stopped", "finished")
# A result's life: queued -> running (claimed once, compare-and-set) -> passed | failed | error; queued -> stopped.
RESULT_STATUSES = ("queued", "running", "passed", "failed", "error", "stopped")


class TestCase(db.Model):
    """One saved case of a prompt: the variables, the messages before the reply, what is expected, the checks.

    ``content_hash`` is the SHA-256 of the canonical JSON of what the case says (variables, messages,
    expected, checks): each result records the hash of the case it ran, so an edited case is told apart.
    """

    __test__ = False  # not a pytest class, despite its name
    __tablename__ = "test_cases"
    __table_args__ = (UniqueConstraint("prompt_id", "name", name="uq_test_cases_prompt_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(MAX_CASE_NAME_CHARS))
    # Template variable values, name -> value.
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    # The messages before the reply, as the conversation keeps them: [{"role", "content"} plus
    # "tool_calls" on an assistant message, "tool_call_id" on a tool message]; one user turn at least.
    messages: Mapped[list] = mapped_column(JSON, default=list)
    # What the reply should be: text (a JSON string) or a JSON value; None when the case expects nothing.
    expected: Mapped[object | None] = mapped_column(JSON, nullable=True)
    # Check objects, each {"type": ..., ...}; none means "passes when the reply finishes without error".
    checks: Mapped[list] = mapped_column(JSON, default=list)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<TestCase {self.prompt_id}:{self.name}>"


class EvalRun(db.Model):
    """One version of a prompt run over its cases (all, or those with ``tag``), ``repeat`` times each."""

    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_prompt_id_created_at", "prompt_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"))
    version_number: Mapped[int]
    label: Mapped[str | None] = mapped_column(String(40), nullable=True)  # how the version was chosen, if by label
    tag: Mapped[str | None] = mapped_column(String(MAX_TAG_CHARS), nullable=True)
    repeat: Mapped[int] = mapped_column(default=1)
    baseline_id: Mapped[int | None] = mapped_column(ForeignKey("eval_runs.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    # Why a run paused (the limit's sentence) or stopped; empty otherwise.
    status_reason: Mapped[str] = mapped_column(Text, default="")
    # Who started it: the user key the budget and the rate limits count against, and a name to show.
    owner: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    results: Mapped[list["EvalResult"]] = relationship(
        back_populates="run", order_by="(EvalResult.case_name, EvalResult.repetition)", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<EvalRun {self.id} prompt={self.prompt_id} v{self.version_number}>"


class EvalResult(db.Model):
    """One case run once (repetition 1..repeat): the reply, its checks, what it cost and how long it took."""

    __tablename__ = "eval_results"
    __table_args__ = (
        UniqueConstraint("run_id", "case_id", "repetition", name="uq_eval_results_run_case_repetition"),
        Index("ix_eval_results_run_id_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    # The case may be deleted later; its name and hash stay with the result.
    case_id: Mapped[int | None] = mapped_column(ForeignKey("test_cases.id", ondelete="SET NULL"), nullable=True)
    case_name: Mapped[str] = mapped_column(String(MAX_CASE_NAME_CHARS))
    case_hash: Mapped[str] = mapped_column(String(64))
    repetition: Mapped[int] = mapped_column(default=1)
    # 1, then one more at each "Retry failed": only the job of the current attempt may claim the result.
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(20), default="queued")
    output: Mapped[str] = mapped_column(Text, default="")
    output_html: Mapped[str] = mapped_column(Text, default="")  # the output's Markdown, rendered once at finish
    tool_calls: Mapped[list] = mapped_column(JSON, default=list)
    usage: Mapped[dict] = mapped_column(JSON, default=dict)  # input_tokens, output_tokens
    cost_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[int | None] = mapped_column(nullable=True)
    # Each check's outcome, in the case's order: [{"type", "passed", "reason"}].
    check_results: Mapped[list] = mapped_column(JSON, default=list)
    passed: Mapped[bool | None] = mapped_column(nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    run: Mapped[EvalRun] = relationship(back_populates="results")

    def __repr__(self) -> str:
        return f"<EvalResult run={self.run_id} {self.case_name}#{self.repetition} {self.status}>"
