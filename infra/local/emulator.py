"""Herald's AWS emulator: moto in server mode, with one fidelity fix.

Real DynamoDB applies a conditional write atomically. moto checks the condition and
then writes, with nothing in between to stop a concurrent request, so two concurrent
claims of one message could both succeed locally and a duplicate SMS would be sent
that AWS would never send. Serialising DynamoDB requests restores the guarantee Herald
relies on. Other services keep moto's threading (SQS long polls must not block).
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


def _serialise_dynamodb(app):
    def wrapped(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                # Consume the response inside the lock: the write happens while the
                # view runs, and nothing may interleave with it.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return wrapped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        _serialise_dynamodb(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
