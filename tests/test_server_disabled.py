"""A bad setting disables tracklab with a clear answer; Jupyter itself keeps working."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError


@pytest.fixture
def jp_server_config(tmp_path):
    return {"ServerApp": {"jpserver_extensions": {"tracklab_jupyter": True}},
            "TrackLab": {"data_dir": str(tmp_path / "d"), "interval": 99999}}


async def test_endpoints_answer_503_with_the_reason(jp_fetch, jp_ws_fetch):
    status = await jp_fetch("api", "status")  # Jupyter's own API is unaffected
    assert status.code == 200
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("tracklab", "api", "system", "metrics")
    assert info.value.code == 503
    body = json.loads(info.value.response.body)
    assert body["error"] == "tracklab is disabled"
    assert "c.TrackLab.interval" in body["detail"] and "3600" in body["detail"]
    with pytest.raises(HTTPClientError) as info:
        await jp_ws_fetch("tracklab", "ws")
    assert info.value.code == 503
