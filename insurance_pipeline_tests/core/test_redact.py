from insurance_pipeline.core.redact import redact


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
