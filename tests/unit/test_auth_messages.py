"""An API client that sends a wrong token is told the token is wrong, not that one is required."""

from digits_seg.config import load_settings
from digits_seg.web.app import create_app


def test_wrong_bearer_token_is_called_wrong(tmp_path):
    settings = load_settings({"jobs_dir": str(tmp_path / "jobs"), "auth_token": "s3cret"}, environ={})
    c = create_app(settings).test_client()
    r = c.get("/index.json", headers={"Authorization": "Bearer s3cert"})
    assert r.status_code == 401
    assert r.get_json()["error"]["message"].startswith("The token sent in `Authorization: Bearer …` is not this "
                                                       "server's access token")
    r = c.get("/index.json")  # no token at all: still told how to send one
    assert r.status_code == 401 and "send the header `Authorization: Bearer <token>`" in r.get_json()["error"]["message"]
