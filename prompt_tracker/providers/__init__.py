"""Model providers: a name → implementation registry behind one small streaming contract."""

from .anthropic_messages import AnthropicMessagesProvider
from .base import (
    PARAM_NAMES,
    ChatRequest,
    Provider,
    ProviderError,
    UnknownProviderError,
    Usage,
    all_providers,
    available_providers,
    get_provider,
    register,
    setup_hint,
)
from .echo import EchoProvider
from .openai_chat import OpenAIChatProvider

register(EchoProvider())
register(OpenAIChatProvider())
register(AnthropicMessagesProvider())

__all__ = [
    "PARAM_NAMES",
    "ChatRequest",
    "Provider",
    "ProviderError",
    "UnknownProviderError",
    "Usage",
    "all_providers",
    "available_providers",
    "get_provider",
    "register",
    "setup_hint",
]
