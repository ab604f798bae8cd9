"""make and the Procfile: the Makefile on a fresh machine (no npm, no python3-venv) and the Procfile's logging."""

import shlex
import subprocess
import sys

from .conftest import ROOT

# What Debian's python3 -m venv prints, exit code 1, when python3-venv is missing (ensurepip absent);
# it has already created the venv's directory and its python by then.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && ln -sf {python} "$3/bin/python"
    echo "The virtual environment was not created successfully because ensurepip is not"
    echo "available.  On Debian/Ubuntu systems, you need to install the python3-venv"
    echo "package using the following command."
    echo
    echo "    apt install python3.11-venv"
    exit 1
fi
exec {python} "$@"
"""


def make(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True, **kwargs
    )


def test_a_missing_python3_venv_is_named_in_one_sentence_and_leaves_no_half_venv(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON.format(python=shlex.quote(sys.executable)))
    fake.chmod(0o755)
    venv = tmp_path / "venv"

    result = make(f"VENV={venv}", f"PYTHON={fake}", f"{venv}/.installed")

    assert result.returncode != 0
    version = "{}.{}".format(*sys.version_info[:2])
    assert result.stderr.strip().splitlines()[0] == (
        f"Install python3-venv (apt-get install python{version}-venv), then run make again."
    )
    assert "ensurepip" not in result.stdout + result.stderr
    assert not venv.exists()  # the next make starts over instead of using a venv without pip


def test_run_install_and_test_never_need_npm():
    """The Socket.IO bundle is committed: only `make vendor` runs npm."""
    for target in ("run", "install", "test"):
        result = make("-n", target)
        assert result.returncode == 0, result.stderr
        assert "npm" not in result.stdout, target
    assert "npm ci" in make("-n", "-B", "vendor").stdout


def test_the_procfile_web_process_writes_no_access_log_with_paths():
    """gunicorn's access log would print each path, message ids included; the app's request log names routes."""
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    args = shlex.split(web)
    assert "--access-logfile" not in args and "--access-logformat" not in args
    assert "--log-config" not in args and "--config" not in args and "-c" not in args
