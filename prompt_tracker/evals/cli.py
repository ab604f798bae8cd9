"""``flask evals``: the command group of test cases and runs (the cases' commands join it on their branch)."""

from flask.cli import AppGroup

evals_cli = AppGroup("evals", help="Test cases of prompts and the runs that prove a version over them.")
