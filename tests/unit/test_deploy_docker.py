"""deploy/Dockerfile and .dockerignore, read instruction by instruction."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuations joined."""
    joined = re.sub(r"[ \t]*\\\n\s*", " ", text)
    lines = (line.strip() for line in joined.splitlines())
    found = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def stages(dockerfile: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile:
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def test_the_parser_joins_continuations_and_drops_comments() -> None:
    text = "# c\nFROM a AS b\nRUN x \\\n    && y\n\n# d\nUSER 1\n"
    assert instructions(text) == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]


def test_the_base_image_is_a_pinned_python_311_slim_release(
    dockerfile: list[tuple[str, str]],
) -> None:
    (arg,) = [rest for keyword, rest in dockerfile if keyword == "ARG"]
    name, _, image = arg.partition("=")
    assert name == "PYTHON_IMAGE"
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image)
    bases = [rest.split()[0] for keyword, rest in dockerfile if keyword == "FROM"]
    assert bases == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_dependencies_are_installed_at_the_locked_versions(
    dockerfile: list[tuple[str, str]],
) -> None:
    installs = [r for k, r in dockerfile if k == "RUN" and "pip install" in r]
    assert installs
    assert all("-c requirements.lock" in r for r in installs)


def test_the_final_stage_runs_as_a_numeric_non_root_user(
    dockerfile: list[tuple[str, str]],
) -> None:
    final = stages(dockerfile)[-1]
    users = [rest for keyword, rest in final if keyword == "USER"]
    assert users == ["10001:10001"]
    after_user = final[[k for k, _ in final].index("USER") :]
    assert not [r for k, r in after_user if k == "RUN"]  # nothing runs as root after it


def test_the_healthcheck_asks_healthz_without_curl(dockerfile: list[tuple[str, str]]) -> None:
    (check,) = [rest for keyword, rest in dockerfile if keyword == "HEALTHCHECK"]
    assert "--interval=" in check
    assert "--timeout=" in check
    assert 'CMD ["python", "-c",' in check
    assert "http://127.0.0.1:8080/healthz" in check
    assert "curl" not in check
    assert "wget" not in check


def test_the_healthcheck_one_liner_is_valid_python_that_fails_on_a_refused_connection() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    (code,) = re.findall(r'CMD \["python", "-c", "(.*)"\]', text)
    compile(code, "HEALTHCHECK", "exec")
    unused = code.replace("127.0.0.1:8080", "127.0.0.1:9")  # the discard port: nobody there
    result = subprocess.run(
        [sys.executable, "-c", unused], capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode != 0
    assert "Connection refused" in result.stderr


def test_the_entrypoint_serves_the_config_at_etc_gateway(
    dockerfile: list[tuple[str, str]],
) -> None:
    final = dict(stages(dockerfile)[-1])
    assert final["ENTRYPOINT"] == '["gateway"]'
    assert final["CMD"] == '["serve", "--config", "/etc/gateway/gateway.yaml"]'
    assert final["EXPOSE"] == "8080"


def test_the_dockerignore_sends_only_what_the_image_is_built_from() -> None:
    rules = [
        line
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert rules[0] == "**"
    allowed = {r[1:] for r in rules if r.startswith("!")}
    copied = set()
    for keyword, rest in instructions(DOCKERFILE.read_text(encoding="utf-8")):
        if keyword == "COPY" and "--from=" not in rest:
            copied |= set(rest.split()[:-1])
    for source in copied:
        assert source in allowed or f"{source}/**" in allowed, source
        assert (ROOT / source).exists(), source
    assert not [r for r in allowed if r.startswith(("keys", "tests", ".venv", "deploy/compose"))]
