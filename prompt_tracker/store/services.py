"""The app's Redis-backed services: session and job connections, the conversations, the queue."""

from collections.abc import Callable
from dataclasses import dataclass

import redis
from flask import Flask, current_app
from rq import Queue
from rq.serializers import JSONSerializer

from ..domain.messages import Message
from .conversations import ConversationStore
from .redis_urls import check_url, connect


@dataclass
class Bound:
    """What ``Services`` holds for one app."""

    session_redis: redis.Redis
    jobs_redis: redis.Redis
    conversations: ConversationStore
    queue: Queue


class Services:
    """Flask extension that owns the Redis connections of an app."""

    def init_app(self, app: Flask, render_fragment: Callable[[Message], str] | None = None) -> Bound:
        """Connect to the configured Redis databases and build the conversation store and the queue.

        ``render_fragment``: the HTML stored on each final message (see ``ConversationStore``).
        """
        session_redis = app.config.get("SESSION_REDIS") or connect(app.config["SESSION_REDIS_URL"], "sessions")
        if app.config.get("SOCKETIO_MESSAGE_QUEUE"):
            check_url(app.config["SOCKETIO_MESSAGE_QUEUE"], "socketio")
        jobs_redis = app.config.get("RQ_REDIS") or connect(app.config["RQ_REDIS_URL"], "jobs")
        conversations = ConversationStore(
            session_redis,
            key_prefix=app.config["SESSION_KEY_PREFIX"],
            ttl_seconds=int(app.permanent_session_lifetime.total_seconds()),
            max_messages=app.config["MAX_CONVERSATION_MESSAGES"],
            # MAX_OPEN_REPLIES is a cap per user, kept by the gate (``replies.gate``): the session's
            # set of open replies is bookkeeping only (Reset, partials).
            max_open_replies=0,
            open_seconds=app.config["JOB_TIMEOUT"] + 120,
            render_fragment=render_fragment,
            workspace_ttl_seconds=int(app.config["USER_WORKSPACE_LIFETIME"].total_seconds()),
        )
        # JSON, not pickle: nothing read from Redis becomes code (the worker uses the same serializer).
        queue = Queue(
            app.config["RQ_QUEUE"], connection=jobs_redis, is_async=app.config["RQ_ASYNC"], serializer=JSONSerializer
        )
        bound = app.extensions["prompt_tracker"] = Bound(session_redis, jobs_redis, conversations, queue)
        return bound

    @staticmethod
    def _bound() -> Bound:
        return current_app.extensions["prompt_tracker"]

    @property
    def conversations(self) -> ConversationStore:
        """The conversation store of the current app."""
        return self._bound().conversations

    @property
    def store(self) -> ConversationStore:
        """Former name of ``conversations``, until replies/ and web/playground/ use the new one."""
        return self._bound().conversations

    @property
    def queue(self) -> Queue:
        """The RQ queue of the current app."""
        return self._bound().queue

    @property
    def session_redis(self) -> redis.Redis:
        """The Redis client of the sessions database (DB 2)."""
        return self._bound().session_redis

    @property
    def jobs_redis(self) -> redis.Redis:
        """The Redis client of the jobs database (DB 0)."""
        return self._bound().jobs_redis


# Created here, unbound, because store/ uses it; `extensions` hands it out with the other extensions.
services = Services()
