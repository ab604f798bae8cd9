"""The processes that write replies: a supervisor and one resident worker process under it.

Plain RQ forks a work-horse per job. Every reply then paid for a fresh process: the fork, RQ's
bookkeeping on new Redis connections, new connections to DB 0/1/2 and a new HTTPS connection to the
provider (about 30 ms before the first token on an idle machine, more under load; before the SDKs
were preloaded, 0.4–0.9 s of imports too). ``flask worker`` instead runs ``supervise``: it builds
the app and the provider clients once, then forks **one** child that runs a ``ResidentWorker``
(RQ's ``SimpleWorker``: each job runs in that process), so Redis connections and the provider's
keep-alive connection serve reply after reply. One child writes one reply at a time, as a forking
worker does; ``make run`` starts several workers, so a long reply never blocks another.

What the per-job fork gave is kept by the supervisor: when the child dies (killed, out of memory),
it marks the reply that child was writing failed at once, with ``message.failed``
(``job.work_horse_killed``), records the job as failed in RQ, and starts a new child.

``prompt_tracker.rq_worker.ReplyWorker`` (RQ's forking worker with the SDKs preloaded) remains for
``rq worker --worker-class prompt_tracker.rq_worker.ReplyWorker``.
"""

import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
import uuid

from flask import current_app
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisError, TimeoutError
from redis.retry import Retry
from rq import Queue, SimpleWorker
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from ..extensions import services
from ..providers import available_providers
from . import job

PRELOADED = ("openai", "anthropic", "prompt_tracker.replies.reply")
log = logging.getLogger(__name__)
_preloaded = False


def preload() -> None:
    """Import the provider SDKs and the reply code and build the SDK clients, once per process (in the app's context)."""
    global _preloaded
    if _preloaded or not current_app.config["PRELOAD_PROVIDER_SDKS"]:
        return
    for module in PRELOADED:
        importlib.import_module(module)
    for provider in available_providers():
        provider.warm()
    _preloaded = True


def configure(kwargs: dict) -> dict:
    """A worker's keyword arguments: the SDKs preloaded first, and JSON (never pickle) as the job serializer."""
    preload()
    if kwargs.get("serializer") is None:
        kwargs["serializer"] = JSONSerializer
    return kwargs


class ResidentWorker(SimpleWorker):
    """A worker that runs each reply job in its own process, keeping its connections between jobs.

    Run it under ``supervise``: alone, nothing notices when its process dies mid-reply (the
    heartbeat would, after HEARTBEAT_TTL).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **configure(kwargs))
        self.connection.set_retry(patient_retry())
        patient_sessions()

    def execute_job(self, job, queue):
        """Run the job in this process, renewing the worker's RQ heartbeat meanwhile from a thread.

        RQ's forking worker heartbeats while it waits for its work-horse; a ``SimpleWorker`` runs the
        job itself and would not, so a long reply would look like a dead worker to ``/healthz``.
        """
        done = threading.Event()
        ttl = self.get_heartbeat_ttl(job)

        def beat() -> None:
            while not done.wait(max(1, self.worker_ttl // 4)):
                with contextlib.suppress(RedisError):
                    self.heartbeat(ttl)

        beating = threading.Thread(target=beat, name="rq-heartbeat", daemon=True)
        beating.start()
        try:
            return super().execute_job(job, queue)
        finally:
            done.set()
            beating.join(5)

    def request_stop(self, signum, frame):
        """Warm shutdown, noted before RQ acts on it: RQ raises ``StopRequested`` from the handler when the
        worker is not busy, and raised inside code that catches exceptions it would be lost; the noted stop
        still ends the loop before its next dequeue (a worker told to stop while starting once waited there)."""
        self._stop_requested = True
        super().request_stop(signum, frame)

    def request_force_stop(self, signum, frame):
        """Cold shutdown at the second signal, however soon it follows the first.

        RQ ignores a second signal within a second of the first (a pool's duplicate); here each one
        comes from the supervisor, once per signal it received, so each one is meant. The job in hand
        then fails its reply at once (``reply.WORKER_SHUT_DOWN``) as the ``SystemExit`` passes through it.
        """
        self.log.warning("Worker %s: cold shut down", self.name)
        raise SystemExit()


SCHEDULER_TURN_KEY = "prompt_tracker:scheduler-turn"  # DB 0: which worker moves due jobs this second


class ThreadScheduler(RQScheduler):
    """RQ's scheduler (jobs queued for later: a paced replay's next turn) on the worker's own client.

    RQ runs its scheduler as a process the worker forks, holding a lock that outlives a killed worker
    by a minute; here each worker process runs it from a thread (``keep_scheduling``), so it dies with
    the process and a supervisor still watches one child. Each second one worker moves the due jobs.
    """

    def __init__(self, queues, connection, **kwargs):
        super().__init__(queues, connection, **kwargs)
        self._client = connection
        self.prepare_registries(self._queue_names)

    @property
    def connection(self):
        return self._client  # the worker's client (Sentinel included), not a copy built from its URL


def keep_scheduling(queue: Queue, name: str, interval: float = 1.0) -> threading.Thread:
    """Start a daemon thread that, each ``interval``, queues the due scheduled jobs of ``queue`` (one worker a turn)."""
    scheduler = ThreadScheduler([queue], queue.connection, serializer=queue.serializer, name=name)

    def loop() -> None:
        while True:
            time.sleep(interval)
            with contextlib.suppress(RedisError):
                # A turn of 0.9 s: two workers never move the same jobs at once, and a killed one's turn ends at once.
                if queue.connection.set(SCHEDULER_TURN_KEY, name, nx=True, px=int(interval * 900)):
                    scheduler.enqueue_scheduled_jobs()

    thread = threading.Thread(target=loop, name="rq-scheduler", daemon=True)
    thread.start()
    return thread


def patient_retry():
    """Retry a command for about a minute while Redis restarts or fails over, with backoff up to 2 s."""
    return Retry(ExponentialBackoff(cap=2.0, base=0.05), 40, supported_errors=(ConnectionError, TimeoutError))


def patient_sessions() -> None:
    """Give the worker's sessions client (DB 2: conversations, partials) the jobs client's patient retry.

    The web's clients retry a broken connection once and answer 503 within a second; a worker
    writing a reply waits instead, so a Redis restart mid-reply does not fail it.
    """
    services.session_redis.set_retry(patient_retry())


def supervise(queue: Queue, worker_ttl: int, burst: bool = False, later_queues: tuple[Queue, ...] = ()) -> None:
    """Run a ``ResidentWorker`` on ``queue`` in a child process; fail the reply of a child that dies, start another.

    ``later_queues`` (the test runs' queue) are taken only when ``queue`` is empty: RQ takes a job from
    the first queue that has one, so a reply never waits behind a run's jobs.

    SIGINT/SIGTERM are passed on to the child: the first lets it finish its reply and exit, a
    second stops it at once (RQ's warm and cold shutdown). Returns when the child has stopped on
    request, or, with ``burst``, once the queue is empty.
    """
    preload()
    parent = os.getpid()
    signals = []
    child = 0

    def pass_on(signum, frame):
        signals.append(signum)
        if child:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGINT, pass_on)
    signal.signal(signal.SIGTERM, pass_on)
    while not signals:
        name = uuid.uuid4().hex
        started = time.monotonic()
        child = os.fork()
        if child == 0:
            _run_child(parent, queue, name, worker_ttl, burst, later_queues)
        if signals:  # it came between the fork and ``child`` being set
            pass_on(signals[-1], None)
        _, status = os.waitpid(child, 0)  # retried by Python when a signal arrives meanwhile
        pid, child = child, 0
        if os.waitstatus_to_exitcode(status) == 0:
            if burst:
                return
        else:
            log.warning("the reply worker (pid %s) died (%s)", pid, _describe(status))
            _report_dead_child(queue, name, pid, status)
        if time.monotonic() - started < 1 and not signals:
            time.sleep(1)  # a child that cannot start is not restarted in a tight loop (nor a stop delayed)


def _run_child(
    parent: int, queue: Queue, name: str, worker_ttl: int, burst: bool, later_queues: tuple[Queue, ...] = ()
) -> None:
    """The child: a ResidentWorker until it stops; never returns."""
    code = 1
    try:
        os.setpgrp()  # a terminal's Ctrl-C reaches only the supervisor, which passes it on once
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _die_with(parent)
        worker = ResidentWorker([queue, *later_queues], connection=queue.connection, name=name, worker_ttl=worker_ttl)
        keep_scheduling(worker.queues[0], name)
        worker.work(burst=burst, with_scheduler=False)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _die_with(parent: int) -> None:
    """Ask Linux to send this process SIGTERM when the supervisor dies, so no worker outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that took effect
        os._exit(0)


def _report_dead_child(queue: Queue, name: str, pid: int, status: int) -> None:
    """Fail the reply the dead child was writing (and its RQ job), and unregister the child."""
    connection = queue.connection
    try:
        worker = ResidentWorker.find_by_key(
            ResidentWorker.redis_worker_namespace_prefix + name, connection=connection, serializer=JSONSerializer
        )
        if worker is None:
            return
        # RQ 3 keeps no current job in the worker's hash: its executions index says what it was running.
        for execution in worker.get_current_executions():
            try:
                current = worker.job_class.fetch(execution.job_id, connection=connection, serializer=JSONSerializer)
            except NoSuchJobError:
                continue
            if current.get_status() in (JobStatus.FINISHED, JobStatus.FAILED):
                continue
            job.work_horse_killed(current, pid, status, None)
            # With its execution, RQ's failure handling also takes it out of the started registry.
            worker.handle_job_failure(
                current, queue=queue, exc_string=f"The reply worker died ({_describe(status)}).", execution=execution
            )
        worker.register_death()
    except RedisError as error:  # Redis is down too: the heartbeat marks the reply dead later
        log.error("could not report the death of reply worker %s: %s", pid, error)


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
