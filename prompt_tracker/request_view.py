"""A reply's recorded request (``Message.request``) as the page shows it: JSON, and a curl command."""

import json
import shlex


def request_json(record: dict) -> str:
    """The recorded request as indented JSON."""
    return json.dumps(record, indent=2, ensure_ascii=False)


def curl_command(record: dict) -> str | None:
    """A curl command that sends the same request (keys read from the environment); None without a URL."""
    if "url" not in record:
        return None  # the offline echo provider makes no HTTP request
    lines = [f"curl {shlex.quote(record['url'])}"]
    for name, value in record.get("headers", {}).items():
        # Double quotes so that $OPENAI_API_KEY expands (header values are the providers' own constants).
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
        lines.append(f'-H "{name}: {escaped}"')
    lines.append(f"-d {shlex.quote(json.dumps(record.get('body', {}), ensure_ascii=False))}")
    return " \\\n  ".join(lines)
