"""Small things found by trying the app as a user and as an attacker (issue 8, point 12)."""

import http.client

import pytest

from prompt_tracker import create_app


def test_a_file_part_in_any_field_of_a_form_is_a_400_not_a_500(playground):
    token = playground.token()
    for field in ("content", "attachment"):
        data = {"csrf_token": token, "content": "text", field: (__import__("io").BytesIO(b"%PDF-1.4"), "x.pdf")}
        response = playground.client.post("/playground/messages", data=data, content_type="multipart/form-data")
        assert response.status_code == 400
        assert "text fields only, not a file" in response.get_data(as_text=True)
    assert playground.send("still works").status_code == 303


@pytest.mark.parametrize("before", ["99999999999999999999999999", str(2**63), "-99999999999999999999"])
def test_before_out_of_any_range_shows_a_page_not_a_503(playground, before):
    playground.send("hello")
    response = playground.page(before=before)
    assert response.status_code in (200, 302)
    if response.status_code == 302:
        assert playground.client.get(response.headers["Location"]).status_code == 200


def test_the_system_prompt_limit_counts_line_breaks_as_stored(app, playground):
    limit = app.config["MAX_SYSTEM_PROMPT_CHARS"]
    lines = "a\r\n" * (limit // 2)  # limit characters once CRLF becomes LF, 1.5 x limit as sent
    assert playground.save_settings(system_prompt=lines).status_code == 303
    too_long = playground.save_settings(system_prompt=lines + "ab")
    assert too_long.status_code == 422
    assert f"this one has {limit + 2:,}" in too_long.get_data(as_text=True)


def test_flashed_messages_kept_in_the_session_are_capped(app, playground):
    token = playground.token()
    for _ in range(30):  # answers that flash and redirect, to a page that is never looked at
        playground.client.post("/playground/messages/gone/stop", data={"csrf_token": token})
    with app.test_request_context():
        data = app.session_interface._retrieve_session_data(app.session_interface._get_store_id(playground.sid()))
    assert 0 < len(data.get("_flashes", [])) <= 5


@pytest.mark.integration
def test_a_chunked_body_over_the_limit_is_a_413(live_server):
    host, port = live_server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = (b"content=" + b"x" * 1024 for _ in range(400))  # 400 KB, no Content-Length
    connection.request(
        "POST",
        "/playground/messages",
        body=body,
        encode_chunked=True,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = connection.getresponse()
    text = response.read().decode()
    assert response.status == 413, text[-600:]
    assert "too large" in text and "Traceback" not in text


@pytest.mark.integration
@pytest.mark.parametrize("key", ["short", "x" * 31])
def test_production_refuses_a_secret_key_shorter_than_32_bytes(monkeypatch, real_redis, key):
    from config import ConfigError

    monkeypatch.setenv("REDIS_URL", real_redis.url(2))
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    monkeypatch.setenv("AUTH_MODE", "accounts")
    monkeypatch.setenv("TRUSTED_PROXIES", "none")  # clients connect directly
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(ConfigError, match=r"SECRET_KEY is shorter than 32 bytes"):
        create_app("production")
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    assert create_app("production").config["SECRET_KEY"] == "x" * 32


def test_a_second_app_of_the_process_compiles_no_page_template_again(monkeypatch):
    """Each app has its own Jinja environment; the compiled pages are shared by the process's apps."""
    from prompt_tracker import create_app

    create_app("test").test_client().get("/playground")  # compiled here (or by an earlier test)
    second = create_app("test")
    compiled = []
    original = second.jinja_env.compile
    monkeypatch.setattr(
        second.jinja_env, "compile", lambda *args, **kwargs: compiled.append(args) or original(*args, **kwargs)
    )
    assert second.test_client().get("/playground").status_code == 200
    assert compiled == []


def test_an_app_no_longer_used_is_freed():
    """Nothing of the process keeps an app it built (a cache keyed by template held every app's Jinja
    environment; fakeredis's registry held every test app's server): a suite of a thousand apps stayed
    small, a development reloader's old apps go."""
    import gc
    import weakref

    def used_app():
        app = create_app("test")
        client = app.test_client()
        page = client.get("/playground").get_data(as_text=True)
        token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post("/playground/messages", data={"content": "hello", "csrf_token": token})
        assert "You said: hello" in client.get("/playground").get_data(as_text=True)
        return weakref.ref(app)

    first = used_app()
    used_app()  # the extensions' module-level objects point at the newest app, never an older one
    gc.collect()
    assert first() is None


def test_passwords_are_hashed_with_scrypt_unless_the_config_names_another_method():
    from config import Config, DevelopmentConfig, ProductionConfig
    from prompt_tracker import create_app
    from prompt_tracker.auth.accounts import _hash_method

    assert all(not hasattr(kind, "PASSWORD_HASH_METHOD") for kind in (Config, DevelopmentConfig, ProductionConfig))
    app = create_app("test")
    del app.config["PASSWORD_HASH_METHOD"]  # as in every other environment
    with app.app_context():
        assert _hash_method() == "scrypt"
