"""The difference between two replies, word by word (the template escapes each piece).

A Replay page shows it for each turn; the worker computes it once, when the replay's reply ends,
and stores it on that reply's record (``StoredDiff``), so a page view only reads it. It is capped:
over ``MAX_WORD_TOKENS`` words a side it is computed line by line, over ``MAX_LINES`` lines a side
not at all (``SequenceMatcher`` is quadratic in the worst case), and the page says which.
"""

import difflib
import hashlib
import re

import msgspec

# A word or a single other character, with the white space after it: a changed word shows as one
# word, and spaces are not tokens of their own (the most common token made the matcher slow).
TOKEN = re.compile(r"\s+|\w+\s*|[^\w\s]\s*")
# Above this many tokens a side, diff by lines; above this many lines, not at all.
MAX_WORD_TOKENS = 4000
MAX_LINES = 2000


class Piece(msgspec.Struct, frozen=True, array_like=True):
    """A run of text that both replies share ("same"), or that only the old or only the new one has."""

    kind: str  # "same", "removed", "added"
    text: str


class StoredDiff(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A reply's difference from another, as computed once: its pieces, how alike they are, at what level.

    ``level`` is "words", "lines" (too many words: compared line by line) or "none" (too many lines:
    not compared, no pieces). ``digest`` names the two texts compared (``pair_digest``): a page shows
    the diff only while the replies still hold them.
    """

    digest: str
    level: str = "words"
    pieces: list[Piece] = []
    same: float = 1.0


def pair_digest(old: str, new: str) -> str:
    """A short fingerprint of two texts, in order (a hash: cheap, where a diff is not)."""
    digest = hashlib.sha256()
    for text in (old, new):
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()[:32]


def tokens(text: str) -> list[str]:
    """Split a reply into words, white space and punctuation (lines, if it is very long)."""
    words = TOKEN.findall(text)
    return words if len(words) <= MAX_WORD_TOKENS else text.splitlines(keepends=True)


def word_diff(old: str, new: str) -> tuple[Piece, ...]:
    """Pieces that read as the new reply, with what the old one had instead marked removed."""
    return _diff(tokens(old), tokens(new))


def _diff(left: list[str], right: list[str]) -> tuple[Piece, ...]:
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


def compare(old: str, new: str) -> StoredDiff:
    """The difference of two replies to store: word by word, else line by line, else not computed (see the caps)."""
    digest = pair_digest(old, new)
    left, right = TOKEN.findall(old), TOKEN.findall(new)
    if max(len(left), len(right)) <= MAX_WORD_TOKENS:
        level = "words"
    else:
        left, right = old.splitlines(keepends=True), new.splitlines(keepends=True)
        if max(len(left), len(right)) > MAX_LINES:
            return StoredDiff(digest=digest, level="none", same=0.0)
        level = "lines"
    pieces = _diff(left, right)
    return StoredDiff(digest=digest, level=level, pieces=list(pieces), same=similarity(pieces))


def similarity(pieces) -> float:
    """Share of the characters of both replies that they have in common (1.0: identical)."""
    same = sum(len(piece.text) for piece in pieces if piece.kind == "same")
    changed = sum(len(piece.text) for piece in pieces if piece.kind != "same")
    return 1.0 if same + changed == 0 else 2 * same / (2 * same + changed)
