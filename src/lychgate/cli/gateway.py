"""``lychgate gateway``: the data plane alone, as a cluster's gateway nodes run it.

Its own module, so that the process loads the gateway and nothing of authz or the store
(FastAPI, SQLAlchemy and the database drivers): every gateway process, and every worker it
forks, would otherwise carry them for its life without using them
(tests/cli/test_lazy_commands.py keeps it so).
"""

from __future__ import annotations

from typing import Annotated

import typer

from lychgate.cli.common import DirOption, reported_errors, settings_for
from lychgate.cli.logs import setup_logging
from lychgate.deployment.transport import check_transport
from lychgate.gateway.plan import prepare
from lychgate.gateway.runner import run_gateway

ListenOption = Annotated[
    str | None,
    typer.Option("--listen", help="HOST:PORT to listen on (default: the `listen` setting)."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option("--workers", "-w", min=1, max=64, help="Gateway worker processes."),
]


def gateway(
    data_dir: DirOption = None, listen: ListenOption = None, workers: WorkersOption = None
) -> None:
    """Run the gateway (data plane) alone; it follows authz's config feed.

    Renewed TLS certificate files are picked up within a minute, or at once on SIGHUP.
    """
    with reported_errors():
        settings = settings_for(data_dir, listen=listen, workers=workers)
        check_transport(settings)
        setup_logging(settings.log_level)
        code = run_gateway(prepare(settings), workers=settings.workers, reload_on_sighup=True)
    raise typer.Exit(code)
