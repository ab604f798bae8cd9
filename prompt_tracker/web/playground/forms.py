"""Forms of the playground page; their limits are declared once here and shown on the page."""

from flask import current_app
from flask_wtf import FlaskForm
from wtforms import BooleanField, DecimalField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from ...domain.settings import (
    MAX_MODEL_CHARS,
    MAX_STOP_CHARS,
    MAX_STOP_SEQUENCES,
    MAX_TOKENS_RANGE,
    PENALTY_RANGE,
    SEED_RANGE,
    TEMPERATURE_RANGE,
    THINKING_BUDGET_RANGE,
    TOP_P_RANGE,
    PlaygroundSettings,
)
from ...domain.tools import (
    SCHEMA_NAME,
    TOOL_CHOICES,
    check_tool_choice,
    format_json,
    parse_json_schema,
    parse_tools,
)
from ...limits.models import ModelNotAllowed, check_model, max_tokens_ceiling, provider_allowed
from ...providers import RESPONSE_FORMATS, available_providers


class MessageForm(FlaskForm):
    """The composer: one message."""

    content = TextAreaField("Message")


class StopSequencesField(TextAreaField):
    """Stop sequences, one per line; ``\\n`` written out stands for a line break."""

    def _value(self):
        return "\n".join(stop.replace("\n", "\\n") for stop in self.data or [])

    def process_formdata(self, valuelist):
        text = (valuelist[0] if valuelist else "").replace("\r\n", "\n")
        self.data = [line.replace("\\n", "\n") for line in text.split("\n") if line != ""]


class JSONTextField(TextAreaField):
    """JSON typed in a textarea: kept as typed (``text``) until validated; the value parsed is ``data``."""

    def process_data(self, value):
        self.data = value
        self.text = format_json(value) if value not in (None, [], {}) else ""

    def process_formdata(self, valuelist):
        self.text = (valuelist[0] if valuelist else "").replace("\r\n", "\n")
        self.data = None

    def _value(self):
        return self.text


class StrictField(BooleanField):
    """A checkbox that is on unless the form says off: the form posts ``off`` (hidden) and ``on`` when
    ticked, so a form without the field (an older page) keeps the default."""

    def process_formdata(self, valuelist):
        self.data = "on" in valuelist if valuelist else True


class SettingsForm(FlaskForm):
    """System prompt, provider, model and the parameters a reply is sent with."""

    system_prompt = TextAreaField("System prompt")
    provider = SelectField("Provider", validate_choice=True)
    model = StringField("Model", validators=[InputRequired("Name a model."), Length(max=MAX_MODEL_CHARS)])
    temperature = DecimalField(
        "Temperature",
        places=2,
        validators=[InputRequired("Give a temperature."), NumberRange(*TEMPERATURE_RANGE)],
    )
    max_tokens = IntegerField(
        "Max tokens", validators=[InputRequired("Give a maximum number of tokens."), NumberRange(*MAX_TOKENS_RANGE)]
    )
    # Optional: left empty, the parameter is not sent and the provider's default applies.
    top_p = DecimalField("Top p", places=2, validators=[Optional(), NumberRange(*TOP_P_RANGE)])
    stop = StopSequencesField("Stop sequences")
    seed = IntegerField("Seed", validators=[Optional(), NumberRange(*SEED_RANGE)])
    presence_penalty = DecimalField("Presence penalty", places=2, validators=[Optional(), NumberRange(*PENALTY_RANGE)])
    frequency_penalty = DecimalField(
        "Frequency penalty", places=2, validators=[Optional(), NumberRange(*PENALTY_RANGE)]
    )
    thinking_budget = IntegerField("Thinking budget", validators=[Optional(), NumberRange(*THINKING_BUDGET_RANGE)])
    # Tools and structured output (domain.tools checks them; the page's include _tools_fields.html).
    tools = JSONTextField("Tools (JSON)")
    tool_choice = SelectField("Tool choice", default="auto", validate_choice=False)
    response_format = SelectField(
        "Response format", choices=list(RESPONSE_FORMATS), default="text", validate_choice=False
    )
    schema_name = StringField(
        "Schema name",
        validators=[Optional(), Regexp(SCHEMA_NAME, message="1 to 64 letters, digits, underscores or hyphens.")],
    )
    json_schema = JSONTextField("JSON schema")
    strict = StrictField("Strict", default=True)
    auto_mock = BooleanField("Answer with mocks")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider.choices = [
            (provider.name, provider.label) for provider in available_providers() if provider_allowed(provider.name)
        ]
        # A tool's name among the choices when the tools shown have it (a new one: save, then choose it).
        names = [tool.get("name") for tool in self.tools.data or [] if isinstance(tool, dict)]
        choices = list(dict.fromkeys((*TOOL_CHOICES, *names)))
        self.tool_choice.choices = choices if self.tool_choice.data in choices else [*choices, self.tool_choice.data]

    def validate_tools(self, field):
        field.data, error = parse_tools(field.text)
        if error:
            raise ValidationError(error)

    def validate_tool_choice(self, field):
        error = check_tool_choice(field.data or "auto", self.tools.data or [])
        if error and not self.tools.errors:
            raise ValidationError(error)

    def validate_response_format(self, field):
        if field.data not in RESPONSE_FORMATS:
            raise ValidationError(f"Choose a response format: {', '.join(RESPONSE_FORMATS)}.")

    def validate_json_schema(self, field):
        field.data, error = parse_json_schema(field.text)
        if error:
            raise ValidationError(error)
        if field.data is None and self.response_format.data == "json_schema":
            raise ValidationError("Give the JSON schema replies must follow (or choose another response format).")

    def validate_system_prompt(self, field):
        limit = current_app.config["MAX_SYSTEM_PROMPT_CHARS"]
        length = len((field.data or "").replace("\r\n", "\n"))  # counted as stored, like messages
        if length > limit:
            raise ValidationError(f"The system prompt is limited to {limit:,} characters; this one has {length:,}.")

    def validate_model(self, field):
        field.data = (field.data or "").strip()
        if not field.data:
            raise ValidationError("Name a model.")
        try:
            check_model(self.provider.data, field.data)
        except ModelNotAllowed as error:
            raise ValidationError(str(error)) from None

    def validate_max_tokens(self, field):
        ceiling = max_tokens_ceiling(MAX_TOKENS_RANGE[1])
        if field.data is not None and field.data > ceiling:
            raise ValidationError(f"Max tokens is limited to {ceiling:,} here.")

    def validate_stop(self, field):
        if len(field.data) > MAX_STOP_SEQUENCES:
            raise ValidationError(f"Up to {MAX_STOP_SEQUENCES} stop sequences; this has {len(field.data)}.")
        if any(len(stop) > MAX_STOP_CHARS for stop in field.data):
            raise ValidationError(f"A stop sequence is limited to {MAX_STOP_CHARS} characters.")

    def validate_thinking_budget(self, field):
        # Only where it is sent: a budget kept for another provider is not this one's problem.
        if self.provider.data not in self._providers_taking("thinking_budget"):
            return
        if field.data is not None and self.max_tokens.data is not None and field.data >= self.max_tokens.data:
            raise ValidationError("The thinking budget must be below max tokens (thinking counts towards them).")

    @staticmethod
    def _providers_taking(param: str) -> set[str]:
        return {provider.name for provider in available_providers() if param in provider.params}

    def to_settings(self) -> PlaygroundSettings:
        """The settings this (validated) form describes."""

        def number(value):
            return None if value is None else float(value)

        return PlaygroundSettings(
            system_prompt=(self.system_prompt.data or "").replace("\r\n", "\n"),
            provider=self.provider.data,
            model=self.model.data,
            temperature=float(self.temperature.data),
            max_tokens=self.max_tokens.data,
            top_p=number(self.top_p.data),
            stop=self.stop.data,
            seed=self.seed.data,
            presence_penalty=number(self.presence_penalty.data),
            frequency_penalty=number(self.frequency_penalty.data),
            thinking_budget=self.thinking_budget.data,
            tools=self.tools.data or [],
            tool_choice=self.tool_choice.data or "auto",
            response_format=self.response_format.data or "text",
            schema_name=(self.schema_name.data or "").strip(),
            json_schema=self.json_schema.data,
            strict=bool(self.strict.data),
            auto_mock=bool(self.auto_mock.data),
        )


def providers_with_param(providers) -> dict[str, str]:
    """For each parameter, the names of the providers that send it, space-separated (the settings form's data-providers)."""
    names: dict[str, list[str]] = {}
    for provider in providers:
        for param in provider.params:
            names.setdefault(param, []).append(provider.name)
    return {param: " ".join(found) for param, found in names.items()}


def param_range(field):
    """The validator that gives a parameter field its min and max, or None."""
    return next((validator for validator in field.validators if hasattr(validator, "min")), None)
