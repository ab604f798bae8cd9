"""Compiled page templates kept for every app a process builds.

Jinja compiles a template once per environment, and each app has its own: a process that builds
many apps (the tests build hundreds) compiled the same pages hundreds of times. The compiled code is
kept here, keyed by template and the lexer options that shape it, and checked against the source's
checksum on every load, so an edited template is compiled again.
"""

from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class ProcessBytecodeCache(BytecodeCache):
    """Jinja bytecode in this process's memory, shared by the apps it builds."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    @staticmethod
    def _key(bucket: Bucket) -> str:
        env = bucket.environment
        options = (
            type(env).__name__,
            env.trim_blocks,
            env.lstrip_blocks,
            env.keep_trailing_newline,
            env.newline_sequence,
        )
        return f"{bucket.key}:{options}"

    def load_bytecode(self, bucket: Bucket) -> None:
        """Give ``bucket`` the code compiled before, if any (the bucket drops it if the source changed)."""
        code = self._code.get(self._key(bucket))
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep the code just compiled."""
        self._code[self._key(bucket)] = bucket.bytecode_to_string()


cache = ProcessBytecodeCache()


def init_app(app) -> None:
    """Compile the app's templates once per process, whichever app asks first."""
    app.jinja_env.bytecode_cache = cache
