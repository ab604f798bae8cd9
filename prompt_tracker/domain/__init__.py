"""Plain data and pure functions: messages, playground settings, Redis key names, rendering, pricing,
the recorded request, history capping and text diff. Nothing here reads a request, ``g`` or ``session``."""
