"""A hold: what a queued reply may cost, reserved against its user's daily budget until it is settled."""

import msgspec


class Hold(msgspec.Struct, kw_only=True):
    """One reply's reservation: whose, under which id, and how much (USD for a priced model, else tokens).

    ``free`` (the offline ``echo`` model) holds nothing of the budget, only a place among the user's
    open replies. The reply's ticket carries it, so whoever ends the reply settles it once.
    """

    id: str
    user: str
    provider: str
    model: str
    usd: float = 0.0  # priced models: input estimate + max_tokens, at the model's price
    tokens: int = 0  # the estimate in tokens (what an unpriced model's reply holds of DAILY_BUDGET_TOKENS)
    priced: bool = False
    free: bool = False
    input_tokens: int = 0  # the estimate of the request alone (what a dropped reply is charged when nothing streamed)
