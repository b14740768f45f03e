"""AWS CLI plugin that honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>.

AWS CLI v2 reads these variables by itself only from 2.13 on (Debian 12 ships
2.9), AWS CLI v1 only from 1.29 on (botocore 1.31). `streamscore dev env`
points AWS_CONFIG_FILE at a config that loads this plugin, so that
`aws kinesis list-streams` reaches the local stack with any v1 or v2 CLI.
An explicit --endpoint-url still wins.

The two CLIs load plugins differently, and one config serves both:

- v2 reads `cli_legacy_plugin_path` from the [plugins] section, appends that
  directory to sys.path and imports every other entry from there.
- v1 has no such key: it imports the value of every [plugins] entry as a
  module name, `cli_legacy_plugin_path` included, from sys.path only. So
  `dev env` also puts this directory on PYTHONPATH and lists this module
  before `cli_legacy_plugin_path`; once imported under v1, the module
  registers a stand-in under the directory's name, so that v1's import of
  the `cli_legacy_plugin_path` value finds it instead of failing with
  ModuleNotFoundError.
"""
import os
import sys
import types

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


def _register_v1_stand_in():
    try:
        import awscli
    except ImportError:
        return
    if not getattr(awscli, "__version__", "").startswith("1."):
        return
    stand_in = types.ModuleType("streamscore_endpoints_path")
    stand_in.awscli_initialize = lambda cli: None
    here = os.path.dirname(__file__)
    for name in {here, os.path.abspath(here), os.path.realpath(here)}:
        sys.modules.setdefault(name, stand_in)


_register_v1_stand_in()
