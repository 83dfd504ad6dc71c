import pytest

from insurance_pipeline.core.redact import redact

pytestmark = pytest.mark.pure


def test_credentials_in_uris_are_redacted_and_the_rest_kept():
    assert (
        redact("postgresql+psycopg2://mlflow:s3cr3t@db.example:5432/mlflow refused")
        == "postgresql+psycopg2://mlflow:***@db.example:5432/mlflow refused"
    )
    assert redact("GET http://u:p%40ss@h:5000/api?token=abc&x=1") == (
        "GET http://u:***@h:5000/api?token=***&x=1"
    )
    for plain in ("sqlite:////tmp/m.db", "http://host:5000/api/2.0", "no uri at all"):
        assert redact(plain) == plain


def test_a_token_alone_in_a_url_is_redacted_and_dropped_from_shown_urls():
    from insurance_pipeline.core.redact import without_credentials

    remote = "https://ghp_SECRETTOKEN123@github.com/acme/insurance.git"
    assert "SECRETTOKEN" not in redact(f"git push {remote} failed")
    assert redact(remote) == "https://***@github.com/acme/insurance.git"
    assert without_credentials(remote) == "https://github.com/acme/insurance.git"
    assert without_credentials("https://u:p@h/x?token=abc") == "https://h/x?token=***"
    assert without_credentials("git@github.com:acme/insurance.git") == (
        "git@github.com:acme/insurance.git"  # scp form: a user name, no secret
    )
