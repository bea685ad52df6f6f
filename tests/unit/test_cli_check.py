"""`callcenterd check`: exit codes and what it prints."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from callcenterd import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "callcenterd.yaml"

GOOD = """\
pbx:
  ast1: {type: asterisk, ami: {username: cc, secret_env: CC_TEST_AMI}}
  fs1: {type: freeswitch, esl: {password_file: /nonexistent/esl.pw}}
queues:
  sales: {}
agents:
  "1001": {device: PJSIP/1001, node: ast1, queues: [sales]}
  "1002": {device: user/1002, node: fs1, queues: [sales]}
"""


@pytest.fixture
def config_dir(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "callcenterd.yaml").write_text(GOOD)
    return tmp_path


def test_example_config_is_ok(capsys):
    assert cli.main(["check", "-c", str(EXAMPLE)]) == 0
    out, err = capsys.readouterr()
    assert out == "OK: 2 queues, 3 agents, 1 pbx nodes, 0 campaigns\n" and err == ""


def test_good_config_with_two_nodes(config_dir, capsys):
    assert cli.main(["check", "--config", str(config_dir / "callcenterd.yaml")]) == 0
    assert capsys.readouterr().out == "OK: 1 queues, 2 agents, 2 pbx nodes, 0 campaigns\n"


def test_bad_config_prints_every_error_with_file_line_key(config_dir, capsys):
    (config_dir / "conf.d" / "10-sales.yaml").write_text(textwrap.dedent("""\
        queues:
          sales:
            strategy: fastest
            ring_time: abc
        agents:
          "1001": {queues: [sales, ghost]}
        """))  # fmt: skip
    main = config_dir / "callcenterd.yaml"
    assert cli.main(["check", "-c", str(main)]) == 2
    out, err = capsys.readouterr()
    override = config_dir / "conf.d" / "10-sales.yaml"
    assert out == ""
    assert err.splitlines() == [
        f"{override}:3: queues.sales.strategy: Input should be 'ring-all', 'longest-idle', 'round-robin', "
        "'fewest-calls', 'least-talk-time', 'linear', 'random', 'weighted-random', 'ring-progressively' or 'skills'",
        f"{override}:4: queues.sales.ring_time: Input should be a valid number",
        f"{override}:6: agents.1001.queues[1]: unknown queue 'ghost'",
        f"{main}: 3 errors",
    ]


def test_missing_file_is_a_config_error(tmp_path, capsys):
    assert cli.main(["check", "-c", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: cannot read: No such file or directory" in capsys.readouterr().err


def test_secrets_flag_resolves_every_secret(config_dir, capsys, monkeypatch):
    monkeypatch.delenv("CC_TEST_AMI", raising=False)
    path = str(config_dir / "callcenterd.yaml")
    assert cli.main(["check", "-c", path]) == 0  # lazily resolved: not needed to check
    capsys.readouterr()
    assert cli.main(["check", "-c", path, "--secrets"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        "pbx.ast1.ami: AMI secret: environment variable CC_TEST_AMI is not set or empty",
        "pbx.fs1.esl: ESL password: cannot read /nonexistent/esl.pw: No such file or directory",
    ]
    monkeypatch.setenv("CC_TEST_AMI", "hunter2-XYZ")
    (config_dir / "esl.pw").write_text("ClueCon\n")
    (config_dir / "callcenterd.yaml").write_text(GOOD.replace("/nonexistent/esl.pw", str(config_dir / "esl.pw")))
    assert cli.main(["check", "-c", path, "--secrets"]) == 0
    assert "hunter2" not in "".join(capsys.readouterr())


def test_no_subcommand_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "check" in capsys.readouterr().err


def test_parser_is_built_from_the_subcommand_table():
    assert "check" in cli.SUBCOMMANDS
    args = cli.build_parser().parse_args(["check"])
    assert args.handler is cli.cmd_check and args.config == cli.DEFAULT_CONFIG


def test_module_entry_point_exit_code(tmp_path):
    bad = tmp_path / "callcenterd.yaml"
    bad.write_text("pbx: {}\nlogging: {level: loud}\n")
    result = subprocess.run(
        [sys.executable, "-m", "callcenterd.cli", "check", "-c", str(bad)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{bad}:2: logging.level: Input should be" in result.stderr
    assert f"{bad}:1: pbx: " in result.stderr


# ------------------------------------------- options refused until supported
def test_check_refuses_store_backend_postgresql_with_file_line_key(config_dir, capsys):
    (config_dir / "conf.d" / "20-store.yaml").write_text("store:\n  backend: postgresql\n  dsn_env: PG_DSN\n")
    assert cli.main(["check", "-c", str(config_dir / "callcenterd.yaml")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"{config_dir / 'conf.d' / '20-store.yaml'}:2: store.backend: "
        "postgresql is not supported yet (nothing would be stored); use sqlite"
    )


def test_run_refuses_store_backend_postgresql_before_serving(config_dir, capsys, monkeypatch):
    served = []

    async def fake_serve(config):
        served.append(config)
        return 0

    monkeypatch.setattr("callcenterd.wiring.serve", fake_serve)
    (config_dir / "conf.d" / "20-store.yaml").write_text("store: {backend: postgresql, dsn: x}\n")
    assert cli.main(["run", "-c", str(config_dir / "callcenterd.yaml")]) == 2
    assert served == []
    assert "store.backend: postgresql is not supported yet" in capsys.readouterr().err
