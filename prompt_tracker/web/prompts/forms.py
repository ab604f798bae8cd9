"""Forms of the prompt pages; the limits come from the models and show on the page."""

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import Length

from ...prompts.models import MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_SLUG_CHARS


class PromptForm(FlaskForm):
    """A new prompt (with its version 1), or the name, slug and description of an existing one."""

    name = StringField("Name", validators=[Length(max=MAX_NAME_CHARS)])
    slug = StringField("Slug", validators=[Length(max=MAX_SLUG_CHARS)])
    description = TextAreaField("Description", validators=[Length(max=MAX_DESCRIPTION_CHARS)])
    system_prompt = TextAreaField("System prompt")


class VersionForm(FlaskForm):
    """Save as version: an optional note."""

    note = StringField("Note", validators=[Length(max=MAX_NOTE_CHARS)])


def first_error(form: FlaskForm) -> str | None:
    """The first validation error of a form, as a sentence naming the field."""
    for name, errors in form.errors.items():
        if errors:
            return f"{form[name].label.text}: {errors[0]}"
    return None
