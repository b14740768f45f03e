"""AWS CLI plugin that honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.

AWS CLI v2 reads these variables by itself only from 2.13 on; Debian 12 ships
2.9. `streamscore dev env` points AWS_CONFIG_FILE at a config that loads this
plugin, so `aws kinesis list-streams` reaches the local stack with any v2 CLI.
An explicit --endpoint-url still wins.
"""
import os

_SERVICE_IDS = {"s3api": "S3", "s3": "S3"}


def awscli_initialize(cli):
    cli.register("top-level-args-parsed", _set_endpoint)


def _set_endpoint(parsed_args=None, **kwargs):
    if parsed_args is None or getattr(parsed_args, "endpoint_url", None):
        return
    command = getattr(parsed_args, "command", None) or ""
    service = _SERVICE_IDS.get(command, command.upper().replace("-", "_"))
    url = os.environ.get("AWS_ENDPOINT_URL_" + service) or os.environ.get("AWS_ENDPOINT_URL")
    if url:
        parsed_args.endpoint_url = url
