"""SNS's SMS delivery status logs, for the emulator (see `emulator.py`'s docstring).

What AWS does and this copies (Amazon SNS developer guide, "Viewing Amazon CloudWatch
metrics and logs for SMS deliveries", and SetSMSAttributes):
- Only when the account's SMS attribute `DeliveryStatusIAMRole` names a role does SNS
  write delivery status records, to CloudWatch Logs in the account and region of the
  publish: `sns/{region}/{account}/DirectPublishToPhoneNumber` for successes and
  `.../DirectPublishToPhoneNumber/Failure` for failures, creating a group it needs.
- Every failure is written; a success is written for the share of texts
  `DeliveryStatusSuccessSamplingRate` (0 to 100, 0 when unset) says.
- A record is written a moment after the publish (when the carrier answers), one per
  text, in the documented shape (`notification`: SNS's message id and publish time;
  `delivery`: the destination, the provider's response...; `status`).

What becomes of a text locally (the emulator texts no one): numbers on SNS's opt-out
list (`ListPhoneNumbersOptedOut`; moto's own list) fail with "Phone number is opted
out"; `+15005550009` (the magic number the sandbox provider never delivers either)
fails with "Phone is currently unreachable/unavailable"; every other number succeeds.

A recipient who replies STOP to the account's texts: `POST /_herald/sns/opt-outs` with
`{"phone_number": "+1..."}` puts the number on the opt-out list of the local account
(`us-east-1`), as SNS does when the reply arrives.

A publish whose answer is lost: `POST /_herald/sns/late-answers` with
`{"phone_number": "+1...", "seconds": D, "count": N}` makes the next N publishes to that
number answer D seconds late, after the text was taken (and its record written), so
a client whose timeout is shorter never learns SNS's message id: what AWS does when an
answer misses the client's timeout.
"""

import datetime
import json
import random
import threading
import time
import uuid

from moto.logs.models import logs_backends
from moto.sns.responses import SNSResponse
from werkzeug.wrappers import Request, Response

LATE_ANSWERS_PATH = "/_herald/sns/late-answers"
OPT_OUTS_PATH = "/_herald/sns/opt-outs"
# How long after the publish the carrier's answer is logged.
RECORD_DELAY_SECONDS = 0.2
UNREACHABLE_NUMBER = "+15005550009"

_late = []
_lock = threading.Lock()


def log_groups(region, account):
    success = f"sns/{region}/{account}/DirectPublishToPhoneNumber"
    return success, success + "/Failure"


def _sns_time(at):
    """SNS's notification time: `2016-06-28 00:40:34.558`, UTC."""
    return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"


def _outcome(backend, phone_number):
    """(status, providerResponse) of a text to `phone_number`."""
    if phone_number in backend.opt_out_numbers:
        return "FAILURE", "Phone number is opted out"
    if phone_number == UNREACHABLE_NUMBER:
        return "FAILURE", "Phone is currently unreachable/unavailable"
    return "SUCCESS", "Message has been accepted by phone carrier"


def record(message_id, published_at, phone_number, status, response, sms_type):
    delivery = {
        "mnc": 270 if status == "SUCCESS" else 0,
        "destination": phone_number,
        "priceInUSD": 0.00645,
        "smsType": sms_type,
        "mcc": 310 if status == "SUCCESS" else 0,
        "providerResponse": response,
        "dwellTimeMs": 599,
        "dwellTimeMsUntilDeviceAck": 1344,
    }
    if status == "SUCCESS":
        delivery = {"phoneCarrier": "Local Carrier", **delivery}
    return {
        "notification": {"messageId": message_id, "timestamp": _sns_time(published_at)},
        "delivery": delivery,
        "status": status,
    }


def _write(account, region, entry, status):
    time.sleep(RECORD_DELAY_SECONDS)
    success, failure = log_groups(region, account)
    group = success if status == "SUCCESS" else failure
    backend = logs_backends[account][region]
    # SNS writes each text's record to a stream of its own choosing.
    stream = str(uuid.uuid4())
    with _lock:
        backend.ensure_log_group(group)
        backend.ensure_log_stream(group, stream)
        now = int(time.time() * 1000)
        backend.put_log_events(group, stream, [{"timestamp": now, "message": json.dumps(entry)}])


def _publish_with_logs():
    original = SNSResponse.publish

    def publish(self):
        phone_number = self._get_param("PhoneNumber")
        published_at = datetime.datetime.now(datetime.timezone.utc)
        answer = original(self)
        if phone_number is None:
            return answer
        backend = self.backend
        attributes = backend.sms_attributes
        if attributes.get("DeliveryStatusIAMRole"):
            message_id = _message_id(answer)
            status, response = _outcome(backend, phone_number)
            rate = float(attributes.get("DeliveryStatusSuccessSamplingRate") or 0)
            if status == "FAILURE" or random.uniform(0, 100) < rate:
                sms_type = (
                    self._parse_message_attributes()
                    .get("AWS.SNS.SMS.SMSType", {})
                    .get("Value")
                    or attributes.get("DefaultSMSType")
                    or "Promotional"
                )
                entry = record(message_id, published_at, phone_number, status, response, sms_type)
                threading.Thread(
                    target=_write,
                    args=(self.current_account, self.region, entry, status),
                    daemon=True,
                ).start()
        delay = _late_for(phone_number)
        if delay:
            time.sleep(delay)
        return answer

    SNSResponse.publish = publish


def _message_id(answer):
    """The message id in Publish's answer (moto's `ActionResult`)."""
    result = getattr(answer, "result", None)
    if isinstance(result, dict) and "MessageId" in result:
        return result["MessageId"]
    raise ValueError(f"no MessageId in {answer!r}")


def _late_for(phone_number):
    with _lock:
        for fault in _late:
            if fault["count"] > 0 and fault["phone_number"] == phone_number:
                fault["count"] -= 1
                return fault["seconds"]
    return 0.0


def install():
    _publish_with_logs()


def _posted(environ, fields):
    """The posted JSON object's `fields` (name -> (convert, default)), or why not."""
    try:
        body = json.loads(Request(environ).get_data())
        return {
            name: convert(body[name] if default is None else body.get(name, default))
            for name, (convert, default) in fields.items()
        }, None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        return None, Response(f"bad request: {error}", status=400)


def _opt_out(body):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    backend = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    with _lock:
        if body["phone_number"] not in backend.opt_out_numbers:
            backend.opt_out_numbers.append(body["phone_number"])


def _hold_answers(body):
    with _lock:
        _late.append(body)


ROUTES = {
    OPT_OUTS_PATH: (_opt_out, {"phone_number": (str, None)}),
    LATE_ANSWERS_PATH: (
        _hold_answers,
        {"phone_number": (str, None), "seconds": (float, None), "count": (int, 1)},
    ),
}


def serve(app):
    def wrapped(environ, start_response):
        route = ROUTES.get(environ.get("PATH_INFO"))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        act, fields = route
        body, refusal = _posted(environ, fields)
        if refusal is None:
            act(body)
            refusal = Response(status=204)
        return refusal(environ, start_response)

    return wrapped
