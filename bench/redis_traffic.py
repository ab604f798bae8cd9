"""What requests cost in Redis: commands (from INFO commandstats) and bytes in and out (INFO stats).

The counters are server-wide, so nothing else may use the private server while one is measured.
The bench's own CONFIG RESETSTAT / INFO calls are left out of the commands and, by a measurement
of zero requests, subtracted from the bytes.
"""

from collections.abc import Callable
from dataclasses import dataclass

import redis

OWN_COMMANDS = {"info", "config|resetstat"}


@dataclass
class Traffic:
    """Redis cost of one request, averaged over a run."""

    commands: dict[str, float]  # calls per request, by command name
    bytes_in: float  # bytes the app sent to Redis per request (writes, keys, arguments)
    bytes_out: float  # bytes Redis sent back per request (what the app read)

    def describe_commands(self) -> str:
        """Commands per request as text, like ``GET 1, SET 1``; ``none`` for no command."""
        if not self.commands:
            return "none"
        return ", ".join(f"{name.upper()} {_number(calls)}" for name, calls in self.commands.items())

    @property
    def total_commands(self) -> float:
        """Redis commands per request, all kinds together."""
        return sum(self.commands.values())


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.2f}"


def _snapshot(client: redis.Redis) -> tuple[dict[str, int], int, int]:
    """Command calls, bytes in and bytes out since the last reset, from one INFO call."""
    info = client.info("all")
    calls = {
        name.removeprefix("cmdstat_"): value["calls"]
        for name, value in info.items()
        if name.startswith("cmdstat_") and name.removeprefix("cmdstat_") not in OWN_COMMANDS
    }
    return calls, info["total_net_input_bytes"], info["total_net_output_bytes"]


def _run(client: redis.Redis, action: Callable[[], None], repeat: int) -> tuple[dict[str, int], int, int]:
    client.config_resetstat()
    for _ in range(repeat):
        action()
    return _snapshot(client)


def measure(client: redis.Redis, action: Callable[[], None], repeat: int) -> Traffic:
    """Run ``action`` ``repeat`` times between a stats reset and a snapshot; return the cost of one."""
    _, overhead_in, overhead_out = _run(client, lambda: None, 0)
    calls, bytes_in, bytes_out = _run(client, action, repeat)
    return Traffic(
        commands={name: count / repeat for name, count in sorted(calls.items())},
        bytes_in=max(0, bytes_in - overhead_in) / repeat,
        bytes_out=max(0, bytes_out - overhead_out) / repeat,
    )
