"""One user cannot stop the site with a template: every render is bounded in time, output and size.

A hostile system prompt is a TemplateProblem with a sentence, raised within the render's limits
(no timing asserts: a test that hung would time out the run instead of failing quietly). The page
that shows such a prompt still answers 200, and a send is refused with the sentence, the text kept.
"""

import pytest
from sqlalchemy import select, update

from prompt_tracker import create_app
from prompt_tracker.extensions import db
from prompt_tracker.prompts.library import create_prompt
from prompt_tracker.prompts.models import Prompt, PromptVersion
from prompt_tracker.prompts.variables import TemplateProblem, render, variable_names

from .conftest import CSRF_RE

HOSTILE = {
    "a huge power": "{{ x ~ (9 ** 30000000) }}",
    "a power too long to write": "{{ 9 ** 100000 }}",
    "nested ranges": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "nested ranges under the cap": "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
    "loops over a long text": (
        "{% set s = 'x' * 20000 %}{% for a in s %}{% for b in s %}{% for c in s %}{% endfor %}{% endfor %}{% endfor %}"
    ),
    "a repeated text": "{{ 'a' * 10**9 }}",
    "a repeated list": "{{ [1] * 10**8 }}",
    "a product of huge numbers": "{{ ('9' * 4000) | int * ('9' * 4000) | int }}",
    "center": "{{ 'x' | center(10**9) }}",
    "ljust": "{{ 'x'.ljust(999999999) }}",
    "format filter width": "{{ '%0999999999d' | format(1) }}",
    "percent width": "{{ '%0999999999d' % 1 }}",
    "str.format width": "{{ '{:>999999999}'.format(1) }}",
    "indent by a long text": "{{ ('\n' * 10000) | indent('a' * 10000) }}",
    "replace the empty string": "{{ ('a' * 10000) | replace('', 'b' * 10000) }}",
    "join with a long separator": "{{ ['a'] * 10000 | join('b' * 10000) }}",
    "wordwrap": "{{ ('a' * 10000) | wordwrap(1, wrapstring='b' * 10000) }}",
    "json indent": "{{ range(10000) | list | tojson(indent=100) }}",
    "doubling in a namespace": (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}"
    ),
    "doubling by set": "{% set s = 'x' * 15000 %}" + "{% set s = s ~ s %}" * 40 + "{{ s }}",
    "a list holding itself twice": "{% set a = 'x' * 10000 %}" + "{% set a = [a, a] %}" * 40 + "{{ a }}",
    "a doubling macro": (
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s }}{% endif %}{% endmacro %}{{ d('x', 40) }}"
    ),
    "an exponential macro": (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    ),
    "a long block": "{% set s %}{% for i in range(10000) %}{{ 'x' * 10000 }}{% endfor %}{% endset %}{{ s }}",
    "output past the cap": "{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}",
    "brackets nested too deeply": "{{ " + "(" * 5000 + "x" + ")" * 5000 + " }}",
}


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_is_a_template_problem(template):
    with pytest.raises(TemplateProblem) as raised:
        variable_names(template)  # the page's variables panel: only a sentence (the problem may show here already)
        render(template, {"x": "a"})
    assert raised.value.status == 422 and raised.value.sentence.endswith(".")


def test_the_longest_ordinary_template_is_not_refused_for_its_compile_time():
    template = "{{ a }}" * 2800  # 19,600 characters: compiling it takes longer than a render may
    assert variable_names(template) == ["a"]
    assert render(template, {"a": "v"}) == "v" * 2800


def test_the_rendered_prompt_obeys_the_configured_cap():
    app = create_app("test", overrides={"MAX_SYSTEM_PROMPT_CHARS": 100})
    with app.app_context():
        assert render("{{ 'x' * 100 }}", {}) == "x" * 100
        with pytest.raises(TemplateProblem, match="100 characters"):
            render("{{ 'x' * 60 }}{{ 'y' * 60 }}", {})
        with pytest.raises(TemplateProblem, match="100 characters"):
            render("{{ name }}", {"name": "z" * 101})


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
        ("{% for i in range(3) %}{{ loop.index }}/{{ loop.length }} {% endfor %}", {}, "1/3 2/3 3/3 "),
        ("{% for a, b in [(1, 2)] %}{{ a }}{{ b }}{% endfor %}{{ {'k': 1}['k'] }}", {}, "121"),
        ("{{ '%s-%05d' | format(name, 123456) }} {{ '{:>5}'.format(name) }}", {"name": "Ada"}, "Ada-123456   Ada"),
        (
            "{{ [1, 2] + [3] }} {{ name * 2 }} {{ 2 ** 10 }} {{ name | center(7) }}",
            {"name": "Ada"},
            "[1, 2, 3] AdaAda 1024   Ada  ",
        ),
        ("{{ items.split(',') | join('; ') }} {{ items | replace(',', ' and ') }}", {"items": "a,b"}, "a; b a and b"),
        (
            "{% macro hi(n) %}Hi {{ n }}{% endmacro %}{{ hi(name) | indent(2, first=true) }}",
            {"name": "Ada"},
            "  Hi Ada",
        ),
    ],
)
def test_ordinary_templates_render_as_before(template, values, expected):
    assert render(template, values) == expected


# --- through the web: the page shows the sentence, a send is refused with the text kept ----------


@pytest.fixture
def prompt_client():
    """The test app on in-memory SQLite with a prompt whose saved version holds ``{{ 9 ** 100000 }}``.

    A version written before templates were bounded (or imported) can hold it; a save is refused today.
    """
    app = create_app("test")
    with app.app_context():
        db.create_all()
        prompt = create_prompt("Huge", "plain")
        db.session.execute(
            update(PromptVersion).where(PromptVersion.prompt_id == prompt.id).values(system_prompt="{{ 9 ** 100000 }}")
        )
        db.session.commit()
    yield app, app.test_client()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_playground_of_a_hostile_prompt_answers_200_and_a_send_is_refused(prompt_client):
    app, client = prompt_client
    page = client.get("/prompts/huge/playground")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "too large to write out" in body
    token = CSRF_RE.search(body).group(1)
    sent = client.post("/prompts/huge/playground/messages", data={"content": "my precious text", "csrf_token": token})
    assert sent.status_code == 422
    body = sent.get_data(as_text=True)
    assert "too large to write out" in body and "my precious text" in body
    as_json = client.post(
        "/prompts/huge/playground/messages",
        data={"content": "typed", "csrf_token": token},
        headers={"Accept": "application/json"},
    )
    assert as_json.status_code == 422
    assert as_json.get_json() == {"error": "The system prompt computes a number too large to write out."}
    with app.app_context():
        assert db.session.scalar(select(Prompt).where(Prompt.slug == "huge")) is not None


def test_the_standalone_playground_with_a_hostile_template_answers_200_and_refuses_a_send(playground):
    saved = playground.save_settings(
        system_prompt="{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    )
    assert saved.status_code in (200, 303)
    page = playground.page()
    assert page.status_code == 200
    assert "takes too long to render" in page.get_data(as_text=True)
    sent = playground.send("kept text")
    assert sent.status_code == 422
    body = sent.get_data(as_text=True)
    assert "takes too long to render" in body and "kept text" in body
