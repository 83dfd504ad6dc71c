"""`python -m insurance_pipeline.serving [--artifact-dir DIR]`: run the model service.

On SIGTERM the service stops accepting connections and reports REFUSING_TRAFFIC, lets
in-flight requests finish (up to SERVICE_SHUTDOWN_TIMEOUT_SECONDS), writes its remaining log
records and exits with status 0: a requested, drained shutdown is a clean exit.
"""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

import uvicorn

from insurance_pipeline.serving.app import create_app
from insurance_pipeline.serving.logging import (
    LoggingConfigError,
    configure_from_file,
    configure_logging,
    flush_logs,
)
from insurance_pipeline.serving.memory import limit_arenas
from insurance_pipeline.serving.protocol import ConnectionLimits, guarded_protocol
from insurance_pipeline.serving.settings import ServiceSettings


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


def _drained(sig, frame) -> None:
    """SIGTERM once the server has drained. uvicorn raises the signal it shut down on again
    after restoring the handlers it found; with this one installed first, that ends nothing:
    `main` writes the last records and returns, and the process exits 0."""


def main(argv: list[str] | None = None) -> None:
    settings = ServiceSettings()
    parser = argparse.ArgumentParser(description="Insurance charges model service")
    parser.add_argument("--artifact-dir", default=str(settings.artifact_dir))
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    settings = settings.model_copy(
        update={"artifact_dir": Path(args.artifact_dir), "host": args.host, "port": args.port}
    )
    limit_arenas(settings.model_threads + 1)  # before any thread starts (serving/memory.py)
    title = None
    if settings.rest_config is not None:  # the original's YAML: logging and service_title
        try:
            document = configure_from_file(settings.rest_config, settings.log_level)
            title = document.get("service_title")
        except LoggingConfigError as error:
            raise SystemExit(str(error)) from None
    else:
        configure_logging(settings.log_level)
    app = create_app(settings, service_title=title)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
        timeout_keep_alive=settings.keep_alive_timeout,
        http=guarded_protocol(
            ConnectionLimits(
                max_header_bytes=settings.max_header_bytes,
                header_timeout=settings.header_timeout,
                max_connections=settings.max_connections,
                probe=app.probe,
            )
        ),
    )
    signal.signal(signal.SIGTERM, _drained)  # before uvicorn installs (and restores) its own
    DrainingServer(config).run()
    flush_logs()


if __name__ == "__main__":
    main()
