"""The message record's wire format: records written before Message and Alternative shared AttemptResult still read."""

import msgspec

from prompt_tracker.domain.messages import Alternative, AttemptResult, Message, decode_message, encode_message
from prompt_tracker.providers import Usage

# A reply with one earlier attempt, as the code before AttemptResult encoded it (its own field order).
OLD_RECORD = (
    b"\xde\x00\x16\xa2id\xa3abc\xa4role\xa9assistant\xa7content\xa2hi\xa4html\xa9<p>hi</p>\xa6status\xa6failed"
    b"\xa7attempt\x03\xacalternatives\x91\x8d\xa7attempt\x01\xa7content\xa3old\xa4html\xaa<p>old</p>\xa6status"
    b"\xa7stopped\xa5error\xa1x\xa8provider\xa1p\xa5model\xa2m2\xa6params\x81\xa1t\x01\xa5usage\x82"
    b"\xacinput_tokens\x03\xadoutput_tokens\x04\xaefirst_token_ms\x01\xaalatency_ms\x02\xa8cost_usd"
    b"\xcb?\xc9\x99\x99\x99\x99\x99\x9a\xabfinished_at\xcb?\xf0\x00\x00\x00\x00\x00\x00\xa5error\xa1e\xa8provider"
    b"\xa4echo\xa5model\xa1m\xa6params\x81\xabtemperature\xcb?\xe0\x00\x00\x00\x00\x00\x00\xa5usage\x82"
    b"\xacinput_tokens\x01\xadoutput_tokens\x02\xaefirst_token_ms\x05\xaalatency_ms\t\xa8cost_usd"
    b"\xcb?\xb9\x99\x99\x99\x99\x99\x9a\xa7request\x81\xa1a\x01\xafhistory_dropped\x02\xa7version\x04\xa5draft"
    b"\xc3\xa9variables\x81\xa1x\xa1y\xaacreated_at\xcb?\xf8\x00\x00\x00\x00\x00\x00\xabfinished_at"
    b"\xcb@\x04\x00\x00\x00\x00\x00\x00"
)

EXPECTED = Message(
    id="abc",
    role="assistant",
    content="hi",
    html="<p>hi</p>",
    status="failed",
    attempt=3,
    alternatives=[
        Alternative(
            attempt=1,
            content="old",
            html="<p>old</p>",
            status="stopped",
            error="x",
            provider="p",
            model="m2",
            params={"t": 1},
            usage=Usage(3, 4),
            first_token_ms=1,
            latency_ms=2,
            cost_usd=0.2,
            finished_at=1.0,
        )
    ],
    error="e",
    provider="echo",
    model="m",
    params={"temperature": 0.5},
    usage=Usage(1, 2),
    first_token_ms=5,
    latency_ms=9,
    cost_usd=0.1,
    request={"a": 1},
    history_dropped=2,
    version=4,
    draft=True,
    variables={"x": "y"},
    created_at=1.5,
    finished_at=2.5,
)


def test_an_old_record_decodes_to_the_same_message():
    assert decode_message(OLD_RECORD) == EXPECTED


def test_a_new_record_holds_the_same_fields_under_the_same_names():
    assert msgspec.msgpack.decode(encode_message(EXPECTED)) == msgspec.msgpack.decode(OLD_RECORD)


def test_an_alternative_keeps_the_result_of_the_attempt_it_was():
    alternative = Alternative.of(EXPECTED, content="partial")
    assert alternative.attempt == 3 and alternative.content == "partial"
    shared = AttemptResult.__struct_fields__
    assert all(getattr(alternative, name) == getattr(EXPECTED, name) for name in shared if name != "content")
