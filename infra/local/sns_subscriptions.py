"""SNS HTTP(S) subscriptions that wait for their confirmation, for the emulator (see
`emulator.py`'s docstring).

moto takes an HTTP subscription as confirmed at once, so an endpoint's handling of
`SubscriptionConfirmation` never runs. What AWS does and this copies (Amazon SNS
developer guide, "Fanout to HTTP/S endpoints": "Confirm your subscription", and the
HTTP/S notification JSON format):
- `Subscribe` with protocol `http` or `https` leaves the subscription pending
  (`PendingConfirmation` `true`) and POSTs a signed `SubscriptionConfirmation` to the
  endpoint (headers `x-amz-sns-message-type`, `x-amz-sns-message-id`,
  `x-amz-sns-topic-arn`; body `Type`, `MessageId`, `Token`, `TopicArn`, `Message`,
  `SubscribeURL`, `Timestamp` and the signature fields), retrying a while when the
  endpoint cannot be reached.
- Nothing published to the topic is delivered to a pending subscription.
- A GET of the `SubscribeURL` (`/?Action=ConfirmSubscription&TopicArn=...&Token=...` on
  SNS's own endpoint: locally the emulator) with the token SNS sent confirms it, and
  answers `ConfirmSubscriptionResponse` with the subscription's ARN; another token is
  refused (`InvalidParameter`, 400).
- Every HTTP(S) delivery carries the `x-amz-sns-message-type`, `x-amz-sns-message-id`
  and `x-amz-sns-topic-arn` headers (moto's notifications have none).
"""

import json
import secrets
import threading
import time
import urllib.parse
import urllib.request
import uuid

import requests
from moto.sns import models as sns_models
from werkzeug.wrappers import Request, Response

import ses_events

# SNS tries an unreachable endpoint again for a while; locally the gateway may start a
# moment after the subscription is made.
CONFIRMATION_ATTEMPTS = 30
CONFIRMATION_RETRY_SECONDS = 0.5

# Token -> (topic ARN, subscription ARN).
_tokens = {}
_lock = threading.Lock()


def _subscribe_pending():
    original = sns_models.SNSBackend.subscribe

    def subscribe(self, topic_arn, endpoint, protocol):
        known = self._find_subscription(topic_arn, endpoint, protocol)
        subscription = original(self, topic_arn, endpoint, protocol)
        if protocol not in ("http", "https") or known is not None:
            return subscription
        subscription.attributes["PendingConfirmation"] = "true"
        subscription.attributes["ConfirmationWasAuthenticated"] = "false"
        token = secrets.token_hex(64)
        with _lock:
            _tokens[token] = (topic_arn, subscription.arn)
        threading.Thread(
            target=_send_confirmation,
            args=(self.region_name, topic_arn, endpoint, token),
            daemon=True,
        ).start()
        return subscription

    sns_models.SNSBackend.subscribe = subscribe


def confirmation(region, topic_arn, token):
    """The `SubscriptionConfirmation` SNS posts, signed."""
    query = urllib.parse.urlencode(
        {"Action": "ConfirmSubscription", "TopicArn": topic_arn, "Token": token}
    )
    return ses_events.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic_arn,
            "Message": (
                f"You have chosen to subscribe to the topic {topic_arn}.\n"
                "To confirm the subscription, visit the SubscribeURL included in this message."
            ),
            "SubscribeURL": f"{ses_events.base_url()}/?{query}",
            "Timestamp": ses_events.timestamp(),
        }
    )


def _send_confirmation(region, topic_arn, endpoint, token):
    message = confirmation(region, topic_arn, token)
    request = urllib.request.Request(
        endpoint,
        data=json.dumps(message).encode(),
        method="POST",
        headers={
            "Content-Type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "SubscriptionConfirmation",
            "x-amz-sns-message-id": message["MessageId"],
            "x-amz-sns-topic-arn": topic_arn,
        },
    )
    for _ in range(CONFIRMATION_ATTEMPTS):
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                if 200 <= answer.status < 300:
                    return
        except Exception as error:  # refused, reset, or an error status: SNS tries again
            last = error
        time.sleep(CONFIRMATION_RETRY_SECONDS)
    print(f"SubscriptionConfirmation to {endpoint} not taken: {last}")


def _hold_until_confirmed():
    original = sns_models.Subscription.publish

    def publish(self, *args, **kwargs):
        if self.attributes.get("PendingConfirmation") == "true":
            return None
        return original(self, *args, **kwargs)

    sns_models.Subscription.publish = publish


def _confirm(environ, start_response):
    params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    token = (params.get("Token") or [""])[0]
    topic_arn = (params.get("TopicArn") or [""])[0]
    with _lock:
        found = _tokens.get(token)
    if found is None or found[0] != topic_arn:
        body = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error>'
            "<Type>Sender</Type><Code>InvalidParameter</Code>"
            "<Message>Invalid token</Message></Error></ErrorResponse>"
        )
        return Response(body, status=400, mimetype="text/xml")(environ, start_response)
    subscription_arn = found[1]
    for regions in sns_models.sns_backends.values():
        for backend in regions.values():
            subscription = backend.subscriptions.get(subscription_arn)
            if subscription is not None:
                subscription.attributes["PendingConfirmation"] = "false"
                subscription.attributes["ConfirmationWasAuthenticated"] = "false"
                subscription.confirmed = True
    body = (
        '<ConfirmSubscriptionResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
        f"<ConfirmSubscriptionResult><SubscriptionArn>{subscription_arn}</SubscriptionArn>"
        "</ConfirmSubscriptionResult><ResponseMetadata>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</ConfirmSubscriptionResponse>"
    )
    return Response(body, mimetype="text/xml")(environ, start_response)


class _RequestsWithSnsHeaders:
    """`requests` for moto's SNS, whose HTTP deliveries then carry SNS's headers."""

    def __getattr__(self, name):
        return getattr(requests, name)

    def post(self, url, json=None, headers=None, **kwargs):
        headers = dict(headers or {})
        if isinstance(json, dict) and "Type" in json:
            headers.setdefault("x-amz-sns-message-type", json["Type"])
            headers.setdefault("x-amz-sns-message-id", json.get("MessageId", ""))
            headers.setdefault("x-amz-sns-topic-arn", json.get("TopicArn", ""))
        return requests.post(url, json=json, headers=headers, **kwargs)


def install():
    _subscribe_pending()
    _hold_until_confirmed()
    sns_models.requests = _RequestsWithSnsHeaders()


def serve(app):
    def wrapped(environ, start_response):
        if (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO") in ("", "/")
            and "Action=ConfirmSubscription" in environ.get("QUERY_STRING", "")
        ):
            return _confirm(environ, start_response)
        return app(environ, start_response)

    return wrapped
