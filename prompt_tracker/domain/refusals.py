"""Refusals: one exception family for what the app will not do, each with its HTTP status and its sentence.

The pipeline raises them; one error handler (``web/errors.py``) answers every one: JSON for the page's
script, else the page the form came from, re-rendered with the sentence and what the user typed.

The base lives here, in domain/, because every layer that refuses (store, limits, prompts, replies,
web) can import domain. providers/ is below domain and knows nothing of pages or statuses: its
``UnknownProviderError`` stays a plain KeyError, and the reply pipeline converts it at the boundary
(``replies.send.check_provider`` raises ``UnknownProvider``).
"""


class Refused(Exception):
    """The app will not do what was asked; ``sentence`` says why, ``status`` is the HTTP answer.

    ``done``: what was asked is stored already (only its reply could not be queued, or the same form
    came twice): a form without script goes back to its page rather than keeping the typed text, and
    its submission token stays used. ``details`` are extra fields of the JSON answer.
    """

    status: int = 422
    done: bool = False

    def __init__(self, sentence: str = "", status: int | None = None, **details):
        super().__init__(sentence)
        self.sentence = sentence
        if status is not None:
            self.status = status
        self.details = details

    def __str__(self) -> str:
        return self.sentence

    def json(self) -> dict:
        """The JSON answer's body: the sentence as ``error``, and the details."""
        return {"error": self.sentence, **self.details}
