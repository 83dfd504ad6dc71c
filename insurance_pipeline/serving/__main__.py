"""`python -m insurance_pipeline.serving [--artifact-dir DIR]`: run the model service.

On SIGTERM the service stops accepting connections and reports REFUSING_TRAFFIC, lets
in-flight requests finish (up to SERVICE_SHUTDOWN_TIMEOUT_SECONDS), writes its remaining log
records and exits.
"""

from __future__ import annotations

import argparse

import uvicorn

from insurance_pipeline.serving.app import ServiceConfig, create_app
from insurance_pipeline.serving.logging import configure_logging
from insurance_pipeline.settings import get_settings


class DrainingServer(uvicorn.Server):
    """Marks the service as draining the moment a shutdown signal arrives."""

    def handle_exit(self, sig, frame) -> None:
        app = self.config.loaded_app if self.config.loaded else self.config.app
        state = getattr(getattr(app, "state", None), "service", None)
        if state is None:  # wrapped by uvicorn's middleware: find the FastAPI app
            inner = getattr(app, "app", None)
            state = getattr(getattr(inner, "state", None), "service", None)
        if state is not None:
            state.draining = True
        super().handle_exit(sig, frame)


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(description="Insurance charges model service")
    parser.add_argument("--artifact-dir", default=str(settings.serving_artifact_dir))
    parser.add_argument("--host", default=settings.service_host)
    parser.add_argument("--port", type=int, default=settings.service_port)
    args = parser.parse_args(argv)
    configure_logging(settings.log_level, app_name=settings.app_name)
    app = create_app(ServiceConfig.from_settings(args.artifact_dir))
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.service_shutdown_timeout,
        timeout_keep_alive=5,
    )
    DrainingServer(config).run()


if __name__ == "__main__":
    main()
