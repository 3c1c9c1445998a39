"""API error messages: a wrong token is called wrong; field errors hide server folders as the message does."""

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


def test_field_errors_hide_the_install_folder_like_the_message(tmp_path):
    from digits_seg.config import repo_root

    settings = load_settings({"jobs_dir": str(tmp_path / "jobs")}, environ={})
    c = create_app(settings).test_client()
    err = c.post("/store/import.json", json={"model": "x"}).get_json()["error"]
    assert "<install>/model_store" in err["message"] and repo_root() not in err["message"]
    assert err["errors"][0]["message"] == err["message"]  # was the raw path in errors[0] only
