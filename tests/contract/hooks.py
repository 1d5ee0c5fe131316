"""What a client does with Herald's OpenAPI document that JSON Schema cannot say.

Loaded by schemathesis (SCHEMATHESIS_HOOKS) in `tests/contract.rs`. Each hook is the
executable form of a rule the document states in words, and acts only on the cases
schemathesis means as valid (its positive mode); the invalid ones go out untouched.

- `format: e164`: a phone number libphonenumber finds valid for its country; no
  pattern can say which numbers exist, so valid ones are drawn from real number ranges,
  and in valid cases an E.164-shaped value generated from the pattern alone (as the
  coverage phase does, or inside a `oneOf`) is mapped into them.
- `Idempotency-Key`: unique per request (the document: reuse a key only to retry the
  same request), so each well-formed one is replaced by a fresh one as it is sent.
- `POST /v1/batches`, "rules across fields": every placeholder has a value in each
  recipient's variables, each rendered text and subject is within its limits, and no
  address appears twice.
- Webhook endpoint `url`: the document's rule (https, and a host that is not, nor
  resolves to, a loopback, private or metadata address) names what only DNS can say; a
  client knows its own endpoint, so valid cases send one the local (dev) stack takes.
- Webhook recover's `since`: within the last week (the document says so; a schema
  cannot), so valid cases send the current time.
- `cursor`: only a cursor the listing returned is valid; generated ones are dropped
  (the stateful phase follows the documented `next_cursor`).
- `sms_sender_rate_per_second`: only with `sms_sender` (the document says so), so a
  valid case without a sender sends no rate.
"""

import re
import uuid
from datetime import datetime, timezone
from urllib.parse import unquote

import schemathesis
from hypothesis import strategies as st

# Area codes of real US ranges, and exchanges that libphonenumber holds valid there.
_AREA_CODES = ["212", "305", "312", "415", "617", "646", "702", "718", "818"]
schemathesis.openapi.format(
    "e164",
    st.builds(
        lambda area, exchange, line: f"+1{area}{exchange}{line:04d}",
        st.sampled_from(_AREA_CODES),
        st.integers(min_value=200, max_value=999).map(str).filter(lambda x: x[1:] != "11"),
        st.integers(min_value=0, max_value=9999),
    ),
)

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")


def _real_number(generated: str) -> str:
    """A number from the real ranges above, chosen by the generated one (so shrinking
    and replays stay deterministic); one from those ranges already is kept."""
    exchange = generated[5:8]
    if (
        len(generated) == 12
        and generated[2:5] in _AREA_CODES
        and exchange[0] in "2345678"
        and exchange[1:] != "11"
    ):
        return generated
    digits = int(generated[1:])
    area = _AREA_CODES[digits % len(_AREA_CODES)]
    exchange = 200 + digits % 700
    if exchange % 100 == 11:  # N11 codes are service numbers, not exchanges
        exchange += 1
    return f"+1{area}{exchange}{digits % 10000:04d}"


# Fields and path parameters that hold an E.164 number (or another kind of value).
_NUMBER_FIELDS = ("to", "sms_sender", "address")


def _real_numbers(body: dict) -> None:
    if body.get("channel", "sms") != "sms":
        return
    recipients = body.get("recipients")
    if not isinstance(recipients, list):
        recipients = []
    targets = [body] + [r for r in recipients if isinstance(r, dict)]
    for target in targets:
        for field in _NUMBER_FIELDS:
            value = target.get(field)
            if isinstance(value, str) and _E164.match(value):
                target[field] = _real_number(value)


# The one endpoint a dev stack may deliver to (the local cloud is one).
_LOCAL_ENDPOINT = "http://127.0.0.1:9/hooks"
# The bodies that name an endpoint's URL: registration and replacement.
_ENDPOINT_BODIES = ("/v1/webhooks/endpoints", "/v1/webhooks/endpoints/{id}")

_PLACEHOLDER = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]{0,63})[ \t]*\}\}")
_KEY = re.compile(r"^[!-~]{1,255}$")
_SUBJECT_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LIMITS = {"sms": 1600, "email": 10000}


def _positive(case) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


def _render(template: str, variables: dict) -> str:
    return _PLACEHOLDER.sub(lambda m: variables.get(m.group(1), ""), template)


def _fit_batch(body: dict) -> None:
    channel = body.get("channel", "sms")
    template = body.get("template", "")
    subject = body.get("subject")
    names = set(_PLACEHOLDER.findall(template))
    subject_names = set(_PLACEHOLDER.findall(subject or ""))
    seen = set()
    recipients = []
    for recipient in body.get("recipients", []):
        to = recipient.get("to", "")
        folded = to.lower() if channel == "email" else to
        if folded in seen:
            continue
        seen.add(folded)
        variables = recipient.setdefault("variables", {})
        for name in names | subject_names:
            variables.setdefault(name, "x")
        # At most 20 variables (the document's maxProperties): the placeholders' first.
        for extra in [n for n in variables if n not in names | subject_names]:
            if len(variables) <= 20:
                break
            del variables[extra]
        for name in subject_names:
            variables[name] = _SUBJECT_BREAKS.sub("", variables[name]) or "x"
        # Shorten values until the texts fit (the document: each rendered text within
        # its channel's length, each rendered subject within 256 characters).
        while len(_render(template, variables)) > _LIMITS[channel] or (
            subject is not None and len(_render(subject, variables)) > 256
        ):
            longest = max(variables, key=lambda n: len(variables[n]))
            variables[longest] = variables[longest][: len(variables[longest]) // 2] or "x"
        while sum(len(k.encode()) + len(v.encode()) for k, v in variables.items()) > 2048:
            longest = max(variables, key=lambda n: len(variables[n]))
            variables[longest] = variables[longest][: len(variables[longest]) // 2] or "x"
        recipients.append(recipient)
    body["recipients"] = recipients


def _as_a_client_would(case):
    if case.query and "cursor" in case.query:
        del case.query["cursor"]
    # An E.164-shaped number drawn from the bare pattern (the coverage phase does, and a
    # `oneOf` does not use the format's strategy) becomes a real one; path parameters
    # may come percent-encoded.
    for name, value in (case.path_parameters or {}).items():
        if name in _NUMBER_FIELDS and isinstance(value, str) and _E164.match(unquote(value)):
            case.path_parameters[name] = _real_number(unquote(value))
    if isinstance(case.body, dict) and case.method.upper() in ("POST", "PUT"):
        # Numbers first: two generated numbers may map to one real one, which the
        # batch's fitting then sees as the duplicate it is.
        _real_numbers(case.body)
        if case.operation.path == "/v1/batches":
            _fit_batch(case.body)
        if case.body.get("sms_sender") is None:
            case.body.pop("sms_sender_rate_per_second", None)
    if isinstance(case.body, dict) and case.operation.path in _ENDPOINT_BODIES:
        case.body["url"] = _LOCAL_ENDPOINT
    if isinstance(case.body, dict) and case.operation.path.endswith("/recover"):
        # Recover's `since` is a time within the last week: a client knows the time.
        case.body["since"] = datetime.now(timezone.utc).isoformat()
    return case


@schemathesis.hook
def map_case(context, case):
    return _as_a_client_would(case) if _positive(case) else case


@schemathesis.hook
def before_call(context, case, kwargs):
    # Every phase, the stateful one too (whose cases no `map_case` sees): a well-formed
    # key is replaced by a fresh one, so no two requests share one by chance. Nothing
    # else is changed here: schemathesis judges a case again after this hook, so a
    # change to an invalid case's body could be misread as its violation.
    headers = case.headers or {}
    if _KEY.match(str(headers.get("Idempotency-Key", ""))):
        headers["Idempotency-Key"] = str(uuid.uuid4())


@schemathesis.hook
def before_add_examples(context, examples):
    # The examples phase sends the document's examples, which are valid; hooks that
    # map cases do not run on them.
    for case in examples:
        _as_a_client_would(case)


@schemathesis.hook
def filter_case(context, case):
    # A template naming more placeholders than a recipient may carry variables can
    # never be valid: not a request a client following the document would send.
    if _positive(case) and case.operation.path == "/v1/batches" and isinstance(case.body, dict):
        names = set(_PLACEHOLDER.findall(case.body.get("template", "")))
        names |= set(_PLACEHOLDER.findall(case.body.get("subject") or ""))
        return len(names) <= 20
    return True

