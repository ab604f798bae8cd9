"""The word-level difference between two replies (the template escapes each piece)."""

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

# A word or a single other character, with the white space after it: a changed word shows as one
# word, and spaces are not tokens of their own (the most common token made the matcher slow).
TOKEN = re.compile(r"\s+|\w+\s*|[^\w\s]\s*")
# Above this many tokens a side, diff by lines: SequenceMatcher is quadratic in the worst case.
MAX_WORD_TOKENS = 4000


@dataclass(frozen=True)
class Piece:
    """A run of text that both replies share ("same"), or that only the old or only the new one has."""

    kind: str  # "same", "removed", "added"
    text: str


def tokens(text: str) -> list[str]:
    """Split a reply into words, white space and punctuation (lines, if it is very long)."""
    words = TOKEN.findall(text)
    return words if len(words) <= MAX_WORD_TOKENS else text.splitlines(keepends=True)


# The Replay page is fetched again at every event of a running replay: each pair is diffed once.
@lru_cache(maxsize=128)
def word_diff(old: str, new: str) -> tuple[Piece, ...]:
    """Pieces that read as the new reply, with what the old one had instead marked removed."""
    left, right = tokens(old), tokens(new)
    pieces: list[Piece] = []

    def add(kind: str, text: str) -> None:
        if not text:
            return
        if pieces and pieces[-1].kind == kind:
            pieces[-1] = Piece(kind, pieces[-1].text + text)
        else:
            pieces.append(Piece(kind, text))

    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("same", "".join(left[i1:i2]))
            continue
        add("removed", "".join(left[i1:i2]))
        add("added", "".join(right[j1:j2]))
    return tuple(pieces)


def similarity(pieces: tuple[Piece, ...]) -> float:
    """Share of the characters of both replies that they have in common (1.0: identical)."""
    same = sum(len(piece.text) for piece in pieces if piece.kind == "same")
    changed = sum(len(piece.text) for piece in pieces if piece.kind != "same")
    return 1.0 if same + changed == 0 else 2 * same / (2 * same + changed)
