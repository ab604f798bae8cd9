"""Model providers: a name → implementation registry behind one small streaming contract."""

from .anthropic_messages import AnthropicMessagesProvider
from .base import (
    PARAM_NAMES,
    RESPONSE_FORMATS,
    TOOL_FIELDS,
    ChatRequest,
    Provider,
    ProviderError,
    ToolCall,
    ToolCallDelta,
    UnknownProviderError,
    Usage,
    all_providers,
    available_providers,
    get_provider,
    register,
    setup_hint,
    turn_extra,
)
from .echo import EchoProvider
from .openai_chat import OpenAIChatProvider

register(EchoProvider())
register(OpenAIChatProvider())
register(AnthropicMessagesProvider())

__all__ = [
    "PARAM_NAMES",
    "RESPONSE_FORMATS",
    "TOOL_FIELDS",
    "ChatRequest",
    "Provider",
    "ProviderError",
    "ToolCall",
    "ToolCallDelta",
    "UnknownProviderError",
    "Usage",
    "all_providers",
    "available_providers",
    "get_provider",
    "register",
    "setup_hint",
    "turn_extra",
]
