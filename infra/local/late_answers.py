"""DynamoDB answers that arrive too late: a fault the emulator can inject on request.

In AWS a write can be applied and its answer still miss the client's attempt timeout
(a slow network, a busy partition). The SDK then sends the same request again, and the
second attempt meets the first one's write: a conditional write fails its condition on
its own earlier success. Herald must read that as its own write, not as another
sender's (DESIGN §10: decide from the returned item). moto answers at once, so tests
could never meet this; the launcher can hold an answer back after the write applied.

`POST /_herald/dynamodb/late-answers` with
`{"table": T, "operation": "UpdateItem", "contains": S, "seconds": D, "count": N}`
makes the next N requests of that operation on table T whose body contains S (for
example a word of the update expression) answer D seconds late. A
`TransactWriteItems` is on every table its items name. The request is applied
at once, inside the DynamoDB lock; only the answer waits, outside it, so other
requests are not held up. The fault is per table, so parallel tests do not see each
other's.
"""

import io
import json
import threading
import time

from werkzeug.wrappers import Request, Response

PATH = "/_herald/dynamodb/late-answers"

_faults = []
_lock = threading.Lock()


def _configure(environ, start_response):
    try:
        fault = json.loads(Request(environ).get_data())
        fault = {
            "table": str(fault["table"]),
            "operation": str(fault["operation"]),
            "contains": str(fault.get("contains", "")),
            "seconds": float(fault["seconds"]),
            "count": int(fault.get("count", 1)),
        }
    except (ValueError, KeyError, TypeError) as error:
        return Response(f"bad fault: {error}", status=400)(environ, start_response)
    with _lock:
        _faults.append(fault)
    return Response(status=204)(environ, start_response)


def _delay_for(operation, body):
    """The delay owed to this request, taking one use of the fault that matches."""
    try:
        request = json.loads(body)
    except ValueError:
        return 0.0
    # A transaction names its tables in its items, each under its kind of write.
    tables = {request.get("TableName")} | {
        write.get("TableName")
        for item in request.get("TransactItems") or []
        for write in item.values()
        if isinstance(write, dict)
    }
    text = body.decode("utf-8", "replace")
    with _lock:
        for fault in _faults:
            if (
                fault["count"] > 0
                and fault["table"] in tables
                and fault["operation"] == operation
                and fault["contains"] in text
            ):
                fault["count"] -= 1
                return fault["seconds"]
    return 0.0


def serve(app):
    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == PATH and environ.get("REQUEST_METHOD") == "POST":
            return _configure(environ, start_response)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_") or not _faults:
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        delay = _delay_for(target.split(".", 1)[-1], body)
        # Applied (and answered, inside `app`) before the wait: only the answer is late.
        answer = list(app(environ, start_response))
        if delay:
            time.sleep(delay)
        return answer

    return wrapped
