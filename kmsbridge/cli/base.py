"""What every command shares: the global options, the context with lazy AWS clients, output."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

if TYPE_CHECKING:  # the heavy imports wait until a command runs, so --help stays fast
    from kmsbridge.aws import AwsClients
    from kmsbridge.decryptor.decryptor import Decryptor
    from kmsbridge.keys.kms import KekWrapper
    from kmsbridge.keys.table import KeyStore
    from kmsbridge.services import Services


class UsageError(Exception):
    """A usage error found by argparse: reported like every other failure (main.fail)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the one line every other failure prints."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def global_options() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand, as the AWS CLI does."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    s = argparse.SUPPRESS
    group.add_argument("--region", default=s, help="AWS region (default: AWS_REGION)")
    group.add_argument("--profile", default=s, help="AWS profile (default: AWS_PROFILE)")
    group.add_argument("--endpoint-url", default=s, help="AWS endpoint (default: AWS_ENDPOINT_URL)")
    group.add_argument(
        "--table", default=s, help="key table (default: KMSBRIDGE_TABLE or kmsbridge-keks)"
    )
    group.add_argument("--output", choices=("text", "json"), default=s, help="output format")
    group.add_argument(
        "--config",
        default=s,
        metavar="FILE",
        help="config file (default: KMSBRIDGE_CONFIG or ~/.config/kmsbridge/config.toml)",
    )
    group.add_argument(
        "--role-arn", default=s, help="IAM role to assume first (default: KMSBRIDGE_ROLE_ARN)"
    )
    group.add_argument(
        "--ca-file",
        default=s,
        metavar="FILE",
        help="the platform CA that encryptors pin (default: KMSBRIDGE_CA_FILE)",
    )
    group.add_argument("--debug", action="store_true", default=s, help="tracebacks and logs")
    return common


COMMON = global_options()


def add_command(
    subparsers: Any,
    name: str,
    help_text: str,
    description: str | None = None,
    examples: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand with the global options; ``examples`` become its --help epilog."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        parents=[COMMON],
        help=help_text,
        description=description or help_text,
        epilog=f"examples:\n{examples}" if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_group(subparsers: Any, name: str, help_text: str) -> Any:
    """A command group (``kek``, ``org`` ...) whose own subcommands are required."""
    parser = add_command(subparsers, name, help_text)
    return parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)


@dataclass
class Context:
    """The parsed arguments plus AWS clients, made on first use and reused."""

    args: argparse.Namespace
    # Under --output json the result is held until the command ends, so that a failure
    # after it (a folder with failed files, revoked access) is one JSON object, not two.
    result: dict[str, Any] | None = None
    # Where results go: stderr when stdout carries a recording ('-').
    result_stream: TextIO | None = None

    def option(self, name: str, default: Any = None) -> Any:
        return getattr(self.args, name, default)

    @property
    def output(self) -> str:
        return str(self.option("output", "text"))

    @property
    def table(self) -> str:
        return self.services.table

    @cached_property
    def services(self) -> Services:
        from kmsbridge.services import CONFIG_KEYS, Services, Settings

        flags = {name: self.option(name) for name in CONFIG_KEYS}
        return Services(Settings.for_cli(flags, config_path=self.option("config")))

    def describe_settings(self) -> str:
        """Where this command looked: profile, region, endpoint and table, for config errors."""
        import os

        from kmsbridge.errors import KmsBridgeError

        try:
            settings = self.services.settings  # flags, environment and config file merged
        except KmsBridgeError:
            settings = None  # the config file itself is wrong: say what the flags and env say
        if settings is not None:
            aws = settings.aws
            where = f"profile {aws.profile or 'default'}, region {aws.region or 'from the profile'}"
            where += f", table {settings.table}"
            where += f", endpoint {aws.endpoint_url}" if aws.endpoint_url else ""
            return where + (f", role {aws.role_arn}" if aws.role_arn else "")
        profile = self.option("profile") or os.environ.get("AWS_PROFILE") or "default"
        region = self.option("region") or os.environ.get("AWS_REGION")
        region = region or os.environ.get("AWS_DEFAULT_REGION") or "from the profile"
        endpoint = self.option("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
        table = self.option("table") or os.environ.get("KMSBRIDGE_TABLE") or "kmsbridge-keks"
        where = f"profile {profile}, region {region}, table {table}"
        return f"{where}, endpoint {endpoint}" if endpoint else where

    @property
    def clients(self) -> AwsClients:
        return self.services.clients

    @property
    def store(self) -> KeyStore:
        return self.services.store

    @property
    def kms(self) -> KekWrapper:
        return self.services.kms

    @property
    def decryptor(self) -> Decryptor:
        return self.services.decryptor

    @property
    def out(self) -> TextIO:
        return self.result_stream or sys.stdout

    def emit(self, data: dict[str, Any], text: str) -> None:
        """One result: JSON for machines (``--output json``), a short text for people."""
        if self.output == "json":
            self.flush()
            self.result = data
        elif text:
            self.out.write(text.rstrip("\n") + "\n")
            self.out.flush()

    def flush(self, extra: dict[str, Any] | None = None) -> None:
        """Write the held JSON result (with ``extra`` fields, such as a failure's error)."""
        if self.result is None and extra is None:
            return
        data = {**(self.result or {}), **(extra or {})}
        self.result = None
        write_json(self.out, data)

    def kek_id(self, org: str, given: str) -> str:
        """A full KEK id from a full id or an unambiguous prefix of one of the org's KEKs."""
        from kmsbridge.lifecycle.inventory import resolve_kek_id

        return resolve_kek_id(self.store, org, given)


def count_bytes(n: int) -> str:
    """``1 byte``, ``2 bytes``: sizes in results read as sentences."""
    return "1 byte" if n == 1 else f"{n} bytes"


def write_json(stream: TextIO, data: dict[str, Any]) -> None:
    stream.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    stream.flush()
