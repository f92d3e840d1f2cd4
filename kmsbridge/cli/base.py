"""What every command shares: the global options, the context with lazy AWS clients, output."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

from kmsbridge.cli import exit_codes

if TYPE_CHECKING:  # the heavy imports wait until a command runs, so --help stays fast
    from kmsbridge.aws import AwsClients
    from kmsbridge.decryptor.decryptor import Decryptor
    from kmsbridge.keys.kms import KekWrapper
    from kmsbridge.keys.table import KeyStore
    from kmsbridge.services import Services


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as the one line every other failure prints."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: INVALID_REQUEST: {message} (see '{self.prog} --help')\n")
        raise SystemExit(exit_codes.USAGE)


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
    group.add_argument("--debug", action="store_true", default=s, help="tracebacks and logs")
    return common


COMMON = global_options()


def add_command(
    subparsers: Any, name: str, help_text: str, description: str | None = None
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, parents=[COMMON], help=help_text, description=description or help_text
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
        from kmsbridge.aws import AwsSettings
        from kmsbridge.services import Services, Settings

        aws = AwsSettings(
            region=self.option("region"),
            profile=self.option("profile"),
            endpoint_url=self.option("endpoint_url"),
        )
        return Services(Settings.from_env(table=self.option("table"), aws=aws))

    def describe_settings(self) -> str:
        """Where this command looked: profile, region, endpoint and table, for config errors."""
        import os

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

    def emit(self, data: dict[str, Any], text: str) -> None:
        """One result: JSON for machines (``--output json``), a short text for people."""
        if self.output == "json":
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        elif text:
            sys.stdout.write(text.rstrip("\n") + "\n")
