"""Forms of the playground page; their limits are declared once here and shown on the page."""

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from ..playground_settings import MAX_MODEL_CHARS, MAX_TOKENS_RANGE, TEMPERATURE_RANGE
from ..providers import available_providers


class MessageForm(FlaskForm):
    """The composer: one message."""

    content = TextAreaField("Message")


class SettingsForm(FlaskForm):
    """System prompt, provider, model and sampling parameters."""

    system_prompt = TextAreaField("System prompt")
    provider = SelectField("Provider", validate_choice=True)
    model = StringField("Model", validators=[InputRequired("Name a model."), Length(max=MAX_MODEL_CHARS)])
    temperature = DecimalField(
        "Temperature", places=2,
        validators=[InputRequired("Give a temperature."), NumberRange(*TEMPERATURE_RANGE)],
    )
    max_tokens = IntegerField(
        "Max tokens", validators=[InputRequired("Give a maximum number of tokens."), NumberRange(*MAX_TOKENS_RANGE)]
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider.choices = [(provider.name, provider.label) for provider in available_providers()]

    def validate_system_prompt(self, field):
        limit = current_app.config["MAX_SYSTEM_PROMPT_CHARS"]
        if field.data and len(field.data) > limit:
            raise ValidationError(f"The system prompt is limited to {limit:,} characters; this one has {len(field.data):,}.")

    def validate_model(self, field):
        field.data = (field.data or "").strip()
        if not field.data:
            raise ValidationError("Name a model.")
