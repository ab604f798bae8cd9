"""A minimal instance of a JSON Schema: what the offline ``echo`` model answers when a schema is asked for.

Here, below ``domain``, because the echo provider needs it; ``domain.tools`` offers it to the rest.
Deterministic: required properties only, an enum's or ``const``'s value, the first of ``anyOf`` /
``oneOf``, types' zero values raised to their minimums, local ``$ref`` followed (to a depth).
"""

MAX_DEPTH = 32


def minimal_instance(schema, root=None, depth: int = 0):
    """A small value valid against ``schema`` for the common keywords (not a solver: exotic schemas may not validate)."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in schema and isinstance(schema["$ref"], str):
        target = _local_ref(root, schema["$ref"])
        if target is not None:
            return minimal_instance(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for keyword in ("anyOf", "oneOf"):
        if isinstance(schema.get(keyword), list) and schema[keyword]:
            return minimal_instance(schema[keyword][0], root, depth + 1)
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged = _merge(merged, part)
        return minimal_instance(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((name for name in kind if name != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    if kind == "object":
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        return {name: minimal_instance(properties.get(name, {}), root, depth + 1) for name in required}
    if kind == "array":
        count = schema.get("minItems", 0) if isinstance(schema.get("minItems"), int) else 0
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [minimal_instance(items, root, depth + 1) for _ in range(min(count, 100))]
    if kind == "string":
        length = schema.get("minLength", 0) if isinstance(schema.get("minLength"), int) else 0
        return "x" * min(length, 1000)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        value = low if isinstance(low, int | float) and not isinstance(low, bool) and low > 0 else 0
        if "exclusiveMinimum" in schema and value == schema["exclusiveMinimum"]:
            value += 1
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return False
    return None


def _local_ref(root: dict, ref: str):
    """The part of ``root`` a ``#/…`` reference names, or None."""
    if not ref.startswith("#"):
        return None
    node = root
    for part in [piece for piece in ref[1:].split("/") if piece]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _merge(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s keywords; properties and required lists joined."""
    merged = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if isinstance(base.get("required"), list) and isinstance(extra.get("required"), list):
        merged["required"] = list(dict.fromkeys(base["required"] + extra["required"]))
    return merged
