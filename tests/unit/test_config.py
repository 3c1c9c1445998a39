"""Settings: what `serve` hands its workers gives the same settings back."""

from digits_seg.config import environ_of, load_settings


def test_environ_of_gives_the_same_settings_back_in_another_process():
    s = load_settings({"data_roots": "/a:/b c", "store_urls": "http://x/s,/srv/t", "onnx_inference": "1",
                       "gpus": "0,2", "max_download_mb": "77", "jobs_dir": "/tmp/j", "auth_reads": "off"}, environ={})
    env = environ_of(s)
    assert all(k.startswith("DIGITS_SEG_") and isinstance(v, str) for k, v in env.items())
    assert load_settings(environ=env) == s
    assert load_settings(environ=environ_of(load_settings(environ={}))) == load_settings(environ={})
