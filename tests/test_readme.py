"""README.md stays true: every ```python block runs, in order, in one fresh namespace.

Shell (```bash) and other blocks are not executed; the two set-up commands are checked to
be spelled exactly as the project promises them.
"""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def code_blocks(text, language):
    return [body for lang, body in FENCE.findall(text) if lang == language]


@pytest.fixture
def cpu_default(monkeypatch):
    # The tour reads the default device; run it on the CPU whatever the caller's environment.
    monkeypatch.delenv("TENSORGRAD_DEVICE", raising=False)


def test_readme_python_blocks_run(cpu_default, capsys):
    blocks = code_blocks(README.read_text(), "python")
    assert blocks, "README.md has no ```python block"
    namespace = {"__name__": "__readme__"}
    for i, source in enumerate(blocks):
        exec(compile(source, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "27.0 18.0" in out  # the tour's second-order line printed what it says


def test_readme_names_the_two_commands():
    shell = "\n".join(code_blocks(README.read_text(), "bash"))
    assert "pip install -e .[examples] && python examples/digits_mlp.py" in shell
    assert "pip install -e .[test] && pytest" in shell
    assert (REPO / "examples" / "digits_mlp.py").is_file()


def test_block_extraction():
    text = "x\n```python\na = 1\n```\n```bash\nrm -rf /\n```\n```python\nb = a\n```\n"
    assert code_blocks(text, "python") == ["a = 1\n", "b = a\n"]
    assert code_blocks(text, "bash") == ["rm -rf /\n"]
