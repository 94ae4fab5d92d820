"""User errors: one line on stderr, the exit code of their kind (simulator.errors), never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from moto import mock_aws
from typer.testing import CliRunner, Result

from simulator import errors
from simulator.cli import app

runner = CliRunner()


def one_line_error(result: Result, code: int, alone: bool = True) -> str:
    """The single stderr line of a user error, after checking the exit code and that no traceback was printed.

    ``alone``: nothing else on stderr; otherwise (a command that reported progress first) the error is the last line.
    """
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], result.stderr
    if alone:
        assert len(lines) == 1, result.stderr
    return lines[-1]


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    """No region and no credentials anywhere botocore looks (env, config files, instance metadata)."""
    for var in (
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SECURITY_TOKEN",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for var in (
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    # boto3's default session caches the credentials an earlier test in this process resolved: start without one.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    yield monkeypatch


def test_feedback_on_a_table_that_does_not_exist() -> None:
    with mock_aws():
        result = runner.invoke(app, ["feedback", "--table", "no-such-table", "--list", "--region", "eu-west-1"])
    line = one_line_error(result, errors.EXIT_NOT_FOUND)
    assert "'no-such-table' does not exist in region eu-west-1" in line


def test_feedback_without_a_table_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANOMALY_TABLE", raising=False)
    line = one_line_error(runner.invoke(app, ["feedback", "--list"]), errors.EXIT_USAGE)
    assert "which anomaly table?" in line


def test_feedback_with_unreadable_stack_outputs(tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("{not json")
    line = one_line_error(runner.invoke(app, ["feedback", "--list", "--stack-outputs", str(bad)]), errors.EXIT_USAGE)
    assert "--stack-outputs" in line and str(bad) in line


def test_feedback_without_a_region(no_aws_config: pytest.MonkeyPatch) -> None:
    line = one_line_error(runner.invoke(app, ["feedback", "--table", "t", "--list"]), errors.EXIT_USAGE)
    assert "no AWS region" in line and "AWS_REGION" in line


def test_feedback_without_credentials(no_aws_config: pytest.MonkeyPatch) -> None:
    no_aws_config.setenv("AWS_REGION", "eu-west-1")
    line = one_line_error(runner.invoke(app, ["feedback", "--table", "t", "--list"]), errors.EXIT_AWS_ACCESS)
    assert "no AWS credentials" in line


def test_feedback_takes_the_region_from_aws_region(no_aws_config: pytest.MonkeyPatch) -> None:
    """AWS_REGION alone (what Lambda, CloudShell and most SDKs set) is enough; boto3 by itself reads only the other."""
    no_aws_config.setenv("AWS_REGION", "ap-southeast-2")
    no_aws_config.setenv("AWS_ACCESS_KEY_ID", "testing")
    no_aws_config.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        result = runner.invoke(app, ["feedback", "--table", "absent", "--list"])
    assert "in region ap-southeast-2" in one_line_error(result, errors.EXIT_NOT_FOUND)


def test_provision_takes_the_region_from_aws_region(no_aws_config: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_aws_config.setenv("AWS_REGION", "eu-central-1")
    no_aws_config.setenv("AWS_ACCESS_KEY_ID", "testing")
    no_aws_config.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    certs = tmp_path / "dev"
    with mock_aws():
        result = runner.invoke(app, ["provision", "--thing", "dev-1", "--certs-dir", str(certs)])
    assert result.exit_code == 0, result.output
    assert json.loads((certs / "config.json").read_text())["region"] == "eu-central-1"


def test_provision_without_a_region(no_aws_config: pytest.MonkeyPatch, tmp_path: Path) -> None:
    result = runner.invoke(app, ["provision", "--thing", "dev-1", "--certs-dir", str(tmp_path / "dev")])
    assert "no AWS region" in one_line_error(result, errors.EXIT_FAILED)
    assert not (tmp_path / "dev").exists()


def test_backtest_of_a_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = runner.invoke(app, ["backtest", str(missing), "--out", str(tmp_path / "out.csv")])
    line = one_line_error(result, errors.EXIT_NOT_FOUND)
    assert str(missing) in line and "does not exist" in line
    assert not (tmp_path / "out.csv").exists()


def test_backtest_with_a_bad_interval(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n2024-01-01 00:00,1\n")
    result = runner.invoke(app, ["backtest", str(src), "--out", str(tmp_path / "o.csv"), "--interval", "P1Y"])
    assert "--interval" in one_line_error(result, errors.EXIT_USAGE)


def test_stream_without_a_stream_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_STREAM_NAME", raising=False)
    result = runner.invoke(app, ["stream", "--minutes", "5", "--no-drop", "--labels", "/dev/null"])
    assert "--stream-name" in one_line_error(result, errors.EXIT_USAGE)


def test_stream_to_a_stream_that_does_not_exist(tmp_path: Path) -> None:
    args = ["stream", "--stream-name", "absent", "--minutes", "5", "--no-drop", "--labels", str(tmp_path / "l.csv")]
    with mock_aws():
        result = runner.invoke(app, [*args, "--region", "eu-west-1"])
    line = one_line_error(result, errors.EXIT_NOT_FOUND, alone=False)  # after its progress bar
    assert "'absent'" in line and "ResourceNotFoundException" in line


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} happened"}}, "AnyOperation")


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (NoRegionError(), errors.UsageError, errors.EXIT_USAGE),
        (NoCredentialsError(), errors.AwsAccessError, errors.EXIT_AWS_ACCESS),
        (client_error("ResourceNotFoundException"), errors.NotFoundError, errors.EXIT_NOT_FOUND),
        (client_error("AccessDeniedException"), errors.AwsAccessError, errors.EXIT_AWS_ACCESS),
        (client_error("ProvisionedThroughputExceededException"), errors.OperationError, errors.EXIT_FAILED),
    ],
)
def test_aws_exceptions_map_to_their_kind(exc: Exception, kind: type[errors.SentinelCliError], code: int) -> None:
    mapped = errors.as_cli_error(exc)
    assert isinstance(mapped, kind) and mapped.exit_code == code
    assert "\n" not in mapped.message


def test_a_bug_is_not_a_user_error() -> None:
    assert errors.as_cli_error(KeyError("x")) is None
    assert errors.as_cli_error(ValueError("x")) is None


def test_messages_are_one_line() -> None:
    assert errors.UsageError("first\n  second\tthird").message == "first second third"
