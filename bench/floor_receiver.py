"""The floor of benchmark 1: a bare boto3 long-poll loop, nothing else.

Run as ``python -m bench.floor_receiver QUEUE_URL`` with the sandbox's AWS environment.
For each message it prints ``<body> <time.time()>`` the moment the receive returns,
then deletes it. No executor can be woken by a send faster than this loop on the same
endpoint, so it is what dispatch latency is compared with.
"""

from __future__ import annotations

import os
import sys
import time

import boto3


def main(queue_url: str) -> None:
    sqs = boto3.client("sqs", region_name=os.environ["AWS_REGION"])
    print("ready", flush=True)
    while True:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=20
        ).get("Messages", [])
        now = time.time()
        for message in messages:
            print(f"{message['Body']} {now}", flush=True)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


if __name__ == "__main__":
    main(sys.argv[1])
