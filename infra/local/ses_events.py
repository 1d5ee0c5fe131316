"""SES event publishing through SNS, for the emulator (see `emulator.py`'s docstring).

What AWS does and this copies:
- SES publishes an email's events to the SNS topic of its configuration set's event
  destination, each record carrying the email's `mail` object with its tags (SES
  developer guide, "Examples of event data that Amazon SES publishes to Amazon SNS").
- The mailbox simulator's addresses give their documented outcomes.
- SNS posts each notification to an HTTP(S) subscription as JSON, signed with RSA
  (version 1: SHA1, the default; version 2: SHA256) over the documented fields, naming
  the URL of the certificate that verifies it.
"""

import base64
import datetime
import json
import threading
import time
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from moto.sesv2.responses import SESV2Response
from moto.sns import models as sns_models
from werkzeug.wrappers import Request, Response

DESTINATIONS_PATH = "/_herald/ses/event-destinations"
CERTIFICATE_PATH = "/_herald/sns/certificate.pem"
SIGN_PATH = "/_herald/sns/sign"
SIMULATOR_DOMAIN = "@simulator.amazonses.com"
# How long after the send SES publishes its events.
EVENT_DELAY_SECONDS = 0.2

# Configuration set name -> SNS topic ARN.
_destinations = {}
_lock = threading.Lock()
_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_now = datetime.datetime.now(datetime.timezone.utc)
_certificate = (
    x509.CertificateBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.local")]))
    .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.local")]))
    .public_key(_key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(_now - datetime.timedelta(days=1))
    .not_valid_after(_now + datetime.timedelta(days=3650))
    .sign(_key, hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
)
_base = ""

NOTIFICATION_FIELDS = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
CONFIRMATION_FIELDS = [
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
]


def sign(message):
    """`message` with `SignatureVersion` (kept if given, else 1), `Signature` and
    `SigningCertURL` set, as SNS signs it."""
    fields = NOTIFICATION_FIELDS if message["Type"] == "Notification" else CONFIRMATION_FIELDS
    text = "".join(f"{k}\n{message[k]}\n" for k in fields if k in message)
    version = str(message.get("SignatureVersion") or "1")
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = _key.sign(text.encode("utf-8"), padding.PKCS1v15(), digest)
    signed = dict(message)
    signed["SignatureVersion"] = version
    signed["Signature"] = base64.b64encode(signature).decode()
    signed.setdefault("SigningCertURL", _base + CERTIFICATE_PATH)
    return signed


def base_url():
    """The emulator's own URL: SNS's endpoint, locally."""
    return _base


def timestamp():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _post_data(self, message, message_id, subject, message_attributes=None):
    topic = self.topic
    version = "1"
    for name in ("signature_version", "SignatureVersion"):
        value = getattr(topic, name, None) or getattr(topic, "attributes", {}).get(name)
        if value:
            version = str(value)
    data = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic.arn,
        "Message": message,
        "Timestamp": timestamp(),
        "SignatureVersion": version,
        "UnsubscribeURL": f"{_base}/?Action=Unsubscribe&SubscriptionArn={self.arn}",
    }
    if subject:
        data["Subject"] = subject
    if message_attributes:
        data["MessageAttributes"] = message_attributes
    return sign(data)


def _events(recipient):
    """The events SES publishes for one accepted email to `recipient`, by the mailbox
    simulator's documented outcomes. The emulator delivers no mail, so what would
    become of an email to any other address is not known: it gets no events (and
    the tests' own addresses stay `sent`)."""
    local = recipient.lower()
    if not local.endswith(SIMULATOR_DOMAIN):
        return []
    if local == "bounce" + SIMULATOR_DOMAIN:
        return [("Send", {}), ("Bounce", _bounce(recipient, "General"))]
    if local == "suppressionlist" + SIMULATOR_DOMAIN:
        return [("Send", {}), ("Bounce", _bounce(recipient, "OnAccountSuppressionList"))]
    delivery = (
        "Delivery",
        {
            "timestamp": timestamp(),
            "processingTimeMillis": 210,
            "recipients": [recipient],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        },
    )
    if local == "complaint" + SIMULATOR_DOMAIN:
        complaint = {
            "complainedRecipients": [{"emailAddress": recipient}],
            "timestamp": timestamp(),
            "feedbackId": str(uuid.uuid4()),
            "complaintFeedbackType": "abuse",
        }
        return [("Send", {}), delivery, ("Complaint", complaint)]
    return [("Send", {}), delivery]


def _bounce(recipient, sub_type):
    return {
        "bounceType": "Permanent",
        "bounceSubType": sub_type,
        "bouncedRecipients": [
            {
                "emailAddress": recipient,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": timestamp(),
        "feedbackId": str(uuid.uuid4()),
        "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
    }


def _publish_events(account, region, topic_arn, params, message_id):
    time.sleep(EVENT_DELAY_SECONDS)
    tags = {t["Name"]: [t["Value"]] for t in params.get("EmailTags", [])}
    tags["ses:configuration-set"] = [params["ConfigurationSetName"]]
    destination = params.get("Destination", {})
    recipients = [a for kind in ("ToAddresses", "CcAddresses", "BccAddresses") for a in destination.get(kind, [])]
    mail = {
        "timestamp": timestamp(),
        "source": params.get("FromEmailAddress"),
        "sendingAccountId": account,
        "messageId": message_id,
        "destination": recipients,
        "headersTruncated": False,
        "tags": tags,
    }
    backend = sns_models.sns_backends[account][region]
    for recipient in recipients:
        for event_type, detail in _events(recipient):
            key = {"Send": "send", "Delivery": "delivery", "Bounce": "bounce", "Complaint": "complaint"}[event_type]
            record = {"eventType": event_type, "mail": mail, key: detail}
            try:
                backend.publish(json.dumps(record), arn=topic_arn)
            except Exception as error:  # a receiver that is down loses the event, as in AWS after SNS's retries
                print(f"SES event {event_type} of {message_id} not published: {error}")


def _send_email_with_events():
    original = SESV2Response.send_email

    def send_email(self):
        answer = original(self)
        params = json.loads(self.body)
        name = params.get("ConfigurationSetName")
        with _lock:
            topic_arn = _destinations.get(name) if name else None
        if topic_arn:
            message_id = json.loads(answer)["MessageId"]
            threading.Thread(
                target=_publish_events,
                args=(self.current_account, self.region, topic_arn, params, message_id),
                daemon=True,
            ).start()
        return answer

    SESV2Response.send_email = send_email


def install(base_url):
    global _base
    _base = base_url
    sns_models.Subscription.get_post_data = _post_data
    _send_email_with_events()


def serve(app):
    def wrapped(environ, start_response):
        path = environ.get("PATH_INFO")
        if path == CERTIFICATE_PATH:
            response = Response(_certificate, mimetype="application/x-pem-file")
        elif path == DESTINATIONS_PATH and environ.get("REQUEST_METHOD") == "POST":
            body = json.loads(Request(environ).get_data() or b"{}")
            name, topic_arn = body.get("configuration_set"), body.get("topic_arn")
            if not name or not topic_arn:
                response = Response("configuration_set and topic_arn are required", status=400)
            else:
                with _lock:
                    _destinations[name] = topic_arn
                response = Response(status=204)
        elif path == SIGN_PATH and environ.get("REQUEST_METHOD") == "POST":
            message = json.loads(Request(environ).get_data() or b"{}")
            response = Response(json.dumps(sign(message)), mimetype="application/json")
        else:
            return app(environ, start_response)
        return response(environ, start_response)

    return wrapped
