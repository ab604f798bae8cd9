"""Sentinel and Cluster deployments of real redis-server processes, started by the tests."""

import os
import shutil
import subprocess
import tempfile
import time

import redis

from .redis_server import free_port, redis_server_binary


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (``free_port``'s, below the range of outgoing connections)."""
    ports = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def wait_until(check, timeout: float, what: str):
    """Call ``check`` until it returns a true value; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Processes:
    """redis-server processes sharing one temporary directory."""

    def __init__(self, prefix: str):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.processes: dict[int, subprocess.Popen] = {}

    def spawn(self, port: int, *args: str, config: str | None = None) -> None:
        """Run redis-server on ``port`` with extra arguments (and a config file when given)."""
        workdir = os.path.join(self.dir, str(port))
        os.makedirs(workdir)
        command = [redis_server_binary()]
        if config is not None:
            path = os.path.join(workdir, "redis.conf")
            with open(path, "w") as file:
                file.write(config)
            command.append(path)
        command += [
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--logfile",
            os.path.join(workdir, "redis.log"),
            *args,
        ]
        process = self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if process.poll() is not None:
                with open(os.path.join(workdir, "redis.log")) as log:
                    raise RuntimeError(f"redis-server on {port} exited: {log.read()[-2000:]}")
            return redis.Redis(port=port, socket_timeout=1).ping()

        wait_until(up, 20, f"redis-server on {port}")

    def stop(self) -> None:
        """Stop every process and remove the directory."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class SentinelDeployment(Processes):
    """A master, one replica and three sentinels watching service ``mymaster``."""

    service = "mymaster"

    def __init__(self):
        super().__init__("pt-sentinel-")
        self.master_port, self.replica_port, *self.sentinel_ports = free_ports(5)

    def start(self) -> "SentinelDeployment":
        """Start the servers and wait until the sentinels see the replica."""
        self.spawn(self.master_port)
        self.spawn(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        config = (
            f"sentinel monitor {self.service} 127.0.0.1 {self.master_port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
        )
        for port in self.sentinel_ports:
            self.spawn(port, "--sentinel", config=config)
        wait_until(
            lambda: all(self.sentinel(port).sentinel_slaves(self.service) for port in self.sentinel_ports),
            20,
            "the sentinels to discover the replica",
        )
        return self

    def sentinel(self, port: int | None = None) -> redis.Redis:
        """A client of one sentinel."""
        return redis.Redis(port=port or self.sentinel_ports[0], socket_timeout=1, decode_responses=True)

    def url(self, db: int) -> str:
        """The app's URL for database ``db`` of the service."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{db}/{self.service}"

    def master_port_now(self) -> int:
        """The port of the current master, as the sentinels report it."""
        return int(self.sentinel().sentinel_get_master_addr_by_name(self.service)[1])

    def failover(self) -> int:
        """Fail the master over to the replica once it has every write; return the new master's port."""
        old = self.master_port_now()
        master = redis.Redis(port=old, socket_timeout=1)
        # A planned failover: wait until the replica has acknowledged every write the master took.
        assert master.wait(1, 5000) >= 1
        self.sentinel().execute_command("SENTINEL", "FAILOVER", self.service)
        new = wait_until(
            lambda: (
                (port := self.master_port_now()) != old
                and redis.Redis(port=port, socket_timeout=1).info("replication")["role"] == "master"
                and port
            ),
            30,
            "the failover",
        )
        # Done when the old master serves as a replica of the new one.
        wait_until(
            lambda: redis.Redis(port=old, socket_timeout=1).info("replication").get("master_port") == new,
            30,
            "the old master to follow the new one",
        )
        return new


def cluster_ok(port: int) -> bool:
    """True once the node on ``port`` reports the cluster as ok."""
    info = redis.Redis(port=port, decode_responses=True).execute_command("CLUSTER", "INFO")
    return (info.get("cluster_state") if isinstance(info, dict) else "cluster_state:ok" in info) in (True, "ok")


class ClusterDeployment(Processes):
    """Three masters (no replicas) forming one Redis Cluster."""

    def __init__(self, masters: int = 3):
        super().__init__("pt-cluster-")
        ports = free_ports(2 * masters)
        # The cluster bus defaults to port + 10000, which a free port above 55535 cannot have.
        self.ports, self.bus_ports = ports[:masters], ports[masters:]

    def start(self) -> "ClusterDeployment":
        """Start the nodes, join them and assign the slots."""
        for port, bus_port in zip(self.ports, self.bus_ports, strict=True):
            self.spawn(
                port,
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--cluster-port",
                str(bus_port),
                "--cluster-node-timeout",
                "2000",
            )
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is needed to create the test cluster (Debian package redis-tools)")
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        wait_until(lambda: all(cluster_ok(port) for port in self.ports), 30, "the cluster to be ok")
        return self

    def url(self) -> str:
        """The app's URL for the cluster."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def keys_per_node(self) -> dict[int, list[bytes]]:
        """Every key on every master, by port."""
        return {port: redis.Redis(port=port).keys("*") for port in self.ports}
