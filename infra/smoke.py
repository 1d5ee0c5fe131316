"""Smoke test of a deployed stack, run by the pipeline after each deploy (`make smoke
ENV=staging`): the API answers, it is the build just deployed, and one message reaches
the provider.

1. `GET /v1/health` answers 200.
2. `GET /v1/version` names the stack's environment and, when `HERALD_EXPECT_COMMIT` is
   set (the pipeline sets it to the commit it built), that commit.
3. A machine client of a smoke-test tenant (`HERALD_SMOKE_CLIENT_ID` and
   `HERALD_SMOKE_CLIENT_SECRET`) gets a token, sends one SMS to `HERALD_SMOKE_TO` (a
   number the provider's test credentials accept) and the message is `sent` (or further)
   within two minutes.

The stack's URLs come from its outputs (`ApiUrl`, `TokenUrl`); `--api-url` and
`--token-url` name them directly instead, as the local cloud's test does. Only the
standard library and boto3 (for the outputs) are used.
"""

import argparse
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

SETTLED = {"sent", "delivered"}
FINAL_BAD = {"failed", "undeliverable", "undelivered", "unknown", "suppressed", "cancelled"}


def call(method, url, token=None, body=None, headers=None):
    request = urllib.request.Request(url, method=method, data=body, headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def outputs(stack):
    import boto3

    described = boto3.client("cloudformation").describe_stacks(StackName=stack)
    return {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0]["Outputs"]}


def token(token_url, client_id, secret):
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    status, body = call(
        "POST",
        token_url,
        body=urllib.parse.urlencode({"grant_type": "client_credentials"}).encode(),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    check(status == 200, f"the token endpoint answered {status}: {body}")
    return body["access_token"]


def check(condition, failure):
    if not condition:
        print(f"smoke: FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="the stack whose outputs name the URLs")
    parser.add_argument("--api-url")
    parser.add_argument("--token-url")
    parser.add_argument("--environment", required=True)
    parser.add_argument("--wait-seconds", type=float, default=120)
    args = parser.parse_args()
    api_url, token_url = args.api_url, args.token_url
    if args.stack:
        found = outputs(args.stack)
        api_url, token_url = found["ApiUrl"], found["TokenUrl"]
    check(api_url and token_url, "name --stack, or --api-url and --token-url")

    status, _ = call("GET", f"{api_url}/v1/health")
    check(status == 200, f"GET /v1/health answered {status}")
    status, version = call("GET", f"{api_url}/v1/version")
    check(status == 200, f"GET /v1/version answered {status}")
    check(
        version["environment"] == args.environment,
        f"the API says it is {version['environment']}, not {args.environment}",
    )
    expected = os.environ.get("HERALD_EXPECT_COMMIT")
    check(
        not expected or version["commit"] == expected,
        f"the API runs {version['commit']}, not {expected}",
    )
    print(f"smoke: {api_url} is up, commit {version['commit']}, built {version['built_at']}")

    access = token(
        token_url,
        os.environ["HERALD_SMOKE_CLIENT_ID"],
        os.environ["HERALD_SMOKE_CLIENT_SECRET"],
    )
    body = json.dumps(
        {"to": os.environ["HERALD_SMOKE_TO"], "body": f"Herald smoke test {version['commit'][:12]}"}
    ).encode()
    status, accepted = call(
        "POST",
        f"{api_url}/v1/messages",
        token=access,
        body=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())},
    )
    check(status == 202, f"POST /v1/messages answered {status}: {accepted}")
    deadline = time.monotonic() + args.wait_seconds
    while True:
        status, message = call("GET", f"{api_url}/v1/messages/{accepted['id']}", token=access)
        check(status == 200, f"GET /v1/messages/{accepted['id']} answered {status}")
        if message["status"] in SETTLED:
            print(f"smoke: message {accepted['id']} is {message['status']}")
            return
        check(
            message["status"] not in FINAL_BAD,
            f"message {accepted['id']} ended {message['status']}: {message.get('error')}",
        )
        check(time.monotonic() < deadline, f"message {accepted['id']} still {message['status']}")
        time.sleep(2)


if __name__ == "__main__":
    main()
