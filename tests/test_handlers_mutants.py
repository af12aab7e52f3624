"""What mutation testing of server/handlers.py found unguarded (docs/DEVELOPING.md,
"Mutation testing"): a foreign Origin on a REST endpoint and the JSON body of a refusal."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

pytestmark = pytest.mark.usefixtures("tracklab_server")


async def login_cookie(jp_fetch, jp_serverapp) -> str:
    """The login cookie a browser gets from a ``?token=`` URL."""
    response = await jp_fetch("tree", params={"token": jp_serverapp.identity_provider.token},
                              headers={"Authorization": ""}, follow_redirects=False,
                              raise_error=False)
    cookies = [c.split(";")[0] for c in response.headers.get_list("Set-Cookie")
               if c.startswith("username-")]
    assert cookies, response.headers
    return cookies[0]


async def test_a_foreign_origin_with_a_login_cookie_is_a_404(jp_fetch, jp_serverapp):
    # JupyterHandler's origin check: a page of another site, riding on the user's cookie,
    # must learn nothing (a token in a header may come from anywhere: no cookie to ride on)
    cookie = await login_cookie(jp_fetch, jp_serverapp)
    as_browser = {"Authorization": "", "Cookie": cookie}
    ok = await jp_fetch("tracklab", "api", "health", headers=as_browser)
    assert ok.code == 200
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("tracklab", "api", "health",
                       headers={**as_browser, "Origin": "http://evil.example"})
    assert refused.value.code == 404
    assert json.loads(refused.value.response.body)["error"]  # JSON, not a traceback page


async def test_a_refusal_without_credentials_is_json(jp_fetch):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("tracklab", "api", "health", headers={"Authorization": ""})
    assert refused.value.code == 403
    response = refused.value.response
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"error": "Forbidden", "detail": ""}
