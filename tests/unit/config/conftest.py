import textwrap
from pathlib import Path

import pytest


@pytest.fixture
def write_config(tmp_path):
    """write_config(main_text, {"10-x.yaml": text, ...}) -> path of the main file."""

    def write(main: str, overrides: dict[str, str] | None = None) -> Path:
        main_path = tmp_path / "callcenterd.yaml"
        main_path.write_text(textwrap.dedent(main))
        if overrides:
            (tmp_path / "conf.d").mkdir(exist_ok=True)
            for name, text in overrides.items():
                (tmp_path / "conf.d" / name).write_text(textwrap.dedent(text))
        return main_path

    return write
