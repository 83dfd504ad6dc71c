"""`python -m insurance_pipeline.serving [--artifact-dir DIR]`: run the model service."""

from __future__ import annotations

import argparse

import uvicorn

from insurance_pipeline.serving.app import create_app
from insurance_pipeline.serving.logging import configure_logging
from insurance_pipeline.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Insurance charges model service")
    parser.add_argument("--artifact-dir", default=str(settings.serving_artifact_dir))
    parser.add_argument("--host", default=settings.service_host)
    parser.add_argument("--port", type=int, default=settings.service_port)
    args = parser.parse_args(argv)
    configure_logging(settings.log_level, app_name=settings.app_name)
    app = create_app(args.artifact_dir)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
