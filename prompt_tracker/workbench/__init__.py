"""Compare and Replay: companion conversations of a playground (DESIGN, "The page").

- ``choice``: the small "which model or version" form both use, turned into settings to send;
- ``replay``: re-run a conversation's user turns against another model or version, one turn after
  the other, in a conversation of its own (``<playground>~replay``);
- ``compare``: while on, every send also goes to a second model or version (``<playground>~compare``);
- ``text_diff``: the word-level difference of an old and a new reply, for the page to show.
"""
