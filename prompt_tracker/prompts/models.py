"""Prompts and their versions: the durable data, in the relational database (not the session)."""

from datetime import datetime

from sqlalchemy import DDL, JSON, ForeignKey, Index, String, Text, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..domain.times import utcnow
from ..extensions import db

MAX_SLUG_CHARS = 80
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 2_000
MAX_NOTE_CHARS = 500
MAX_LABEL_CHARS = 40
MAX_TOOL_CHOICE_CHARS = 64  # "auto", "none", "required" or a tool's name (at most 64 characters)
TEXT_FORMAT = {"type": "text"}


def text_format() -> dict:
    """A version's response format when it asks for none (plain text)."""
    return dict(TEXT_FORMAT)


class Prompt(db.Model):
    """A named prompt; its content lives in its versions."""

    __tablename__ = "prompts"
    __table_args__ = (
        # The list page: not archived, most recently edited first.
        Index("ix_prompts_archived_updated_at", "archived", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(MAX_SLUG_CHARS), unique=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    archived: Mapped[bool] = mapped_column(default=False)

    versions: Mapped[list["PromptVersion"]] = relationship(
        back_populates="prompt",
        order_by="PromptVersion.number",
        cascade="all, delete-orphan",
    )

    def __repr__(self) -> str:
        return f"<Prompt {self.slug}>"


class PromptVersion(db.Model):
    """One saved state of a prompt: immutable, numbered 1, 2, … per prompt."""

    __tablename__ = "prompt_versions"
    # Two saves at once cannot take the same number: the database refuses the second (retried).
    # Search matches any version's text with ILIKE '%…%': on PostgreSQL a trigram index answers it
    # instead of a scan of every version (SQLite, for development, scans).
    __table_args__ = (
        UniqueConstraint("prompt_id", "number", name="uq_prompt_versions_prompt_id_number"),
        Index(
            "ix_prompt_versions_system_prompt_trgm",
            "system_prompt",
            postgresql_using="gin",
            postgresql_ops={"system_prompt": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"))
    number: Mapped[int]
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    # Template variables of the system prompt, name -> default value, in order of appearance.
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    # Function tools as the playground's settings keep them (mocks included), which one to call, and the
    # structured output: {"type": "text" | "json_object" | "json_schema", and for json_schema
    # "schema_name", "json_schema", "strict"}. The server defaults fill the rows saved before they existed.
    tools: Mapped[list] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    tool_choice: Mapped[str] = mapped_column(String(MAX_TOOL_CHOICE_CHARS), default="auto", server_default="auto")
    response_format: Mapped[dict] = mapped_column(
        JSON, default=text_format, server_default=text("""'{"type": "text"}'""")
    )
    note: Mapped[str] = mapped_column(String(MAX_NOTE_CHARS), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")

    prompt: Mapped[Prompt] = relationship(back_populates="versions")

    def content(self) -> dict:
        """What the version says (everything but its number, note and authorship)."""
        return {
            "system_prompt": self.system_prompt,
            "provider": self.provider,
            "model": self.model,
            "params": dict(self.params or {}),
            "variables": dict(self.variables or {}),
            "tools": list(self.tools or []),
            "tool_choice": self.tool_choice or "auto",
            "response_format": dict(self.response_format or TEXT_FORMAT),
        }

    def __repr__(self) -> str:
        return f"<PromptVersion {self.prompt_id}#{self.number}>"


class PromptLabel(db.Model):
    """A named pointer (``production``, ``staging``, …) at one version of a prompt; ``latest`` is implicit."""

    __tablename__ = "prompt_labels"

    # The key is (prompt, label): one version per label and prompt, and a fetch by label is one index lookup.
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(MAX_LABEL_CHARS), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("prompt_versions.id", ondelete="CASCADE"))
    moved_at: Mapped[datetime] = mapped_column(default=utcnow)
    moved_by: Mapped[str] = mapped_column(String(200), default="")

    version: Mapped[PromptVersion] = relationship()

    def __repr__(self) -> str:
        return f"<PromptLabel {self.prompt_id}:{self.label}>"


# The trigram index needs its extension (migration 0003 creates it too; this serves ``create_all``).
event.listen(
    PromptVersion.__table__,
    "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),
)


class PromptSlugHistory(db.Model):
    """A slug a prompt had before a rename: its old address redirects (301) to the prompt's current one.

    Kept by prompt id, so a chain of renames redirects straight to the latest slug. A prompt that
    takes the slug (a new one, or a rename) ends the redirect: the row is deleted then.
    """

    __tablename__ = "prompt_slug_history"

    old_slug: Mapped[str] = mapped_column(String(MAX_SLUG_CHARS), primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id", ondelete="CASCADE"), index=True)
    renamed_at: Mapped[datetime] = mapped_column(default=utcnow)
