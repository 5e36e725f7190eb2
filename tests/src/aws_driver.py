"""Runs boto3 calls against an AWS emulator for the enrollment tests.

Reads a JSON list of calls from stdin, each {"service": ..., "method": ...,
"args": {...}}, runs them in order against the endpoint given as the first
argument, and prints a JSON list of the responses (metadata removed). The
tests set up and inspect the emulator's state with the AWS SDK, not with the
sensor's own client, so that a mistake in one is not hidden by the other.
"""
import json
import sys

import boto3
from botocore.config import Config

endpoint = sys.argv[1]
calls = json.load(sys.stdin)
clients = {}
out = []
for call in calls:
    service = call["service"]
    if service not in clients:
        clients[service] = boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}),
        )
    method = getattr(clients[service], call["method"])
    response = method(**call.get("args", {}))
    response.pop("ResponseMetadata", None)
    out.append(response)
json.dump(out, sys.stdout, default=str)
