"""The turn pipeline: send, claim, stream, finish, retry, stop and reset a reply (DESIGN, "A reply's life").

Views, the RQ job and the CLI call these plain functions; they know nothing of the request. Every
function takes the session's store id (``redis_keys.store_id``), never the cookie's session id.

- ``send``: validate, append the user message and a pending reply, write the ticket, queue the job;
- ``reply``: in the worker, claim the attempt, stream it (flushing the partial text), finish it;
- ``control``: retry, stop and reset;
- ``ticket``: the reply's ticket in DB 0 (session, playground, settings), so the job carries ids only;
- ``job`` / ``worker``: the RQ entry points, and the supervised resident worker (SDKs loaded once, no fork per reply).
"""

from ..store.conversations import ConversationFull, TooManyOpenReplies
from .control import request_stop, reset_conversation, retry_reply, stop_open_replies
from .job import run_reply
from .reply import Heartbeat, dead_replies, fail_reply
from .send import DuplicateSend, InvalidMessage, QueueUnavailable, send_message, validate_content

__all__ = [
    "ConversationFull",
    "DuplicateSend",
    "Heartbeat",
    "InvalidMessage",
    "QueueUnavailable",
    "TooManyOpenReplies",
    "dead_replies",
    "fail_reply",
    "request_stop",
    "reset_conversation",
    "retry_reply",
    "run_reply",
    "send_message",
    "stop_open_replies",
    "validate_content",
]
