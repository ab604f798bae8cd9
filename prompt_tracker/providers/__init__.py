"""Model providers: a name → implementation registry behind one small streaming contract."""

from .base import (
    ChatRequest,
    Provider,
    ProviderError,
    UnknownProviderError,
    available_providers,
    get_provider,
    register,
)
from .echo import EchoProvider

register(EchoProvider())

__all__ = [
    "ChatRequest",
    "Provider",
    "ProviderError",
    "UnknownProviderError",
    "available_providers",
    "get_provider",
    "register",
]
