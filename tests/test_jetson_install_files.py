"""Static checks of the Jetson install files; none of them can run here (no Jetson, no Docker daemon).

install.sh: shellcheck + ``bash -n`` + its refusal path. The unit: ``systemd-analyze verify`` against a
fake root holding the unit and an executable at its ExecStart path. The Dockerfile: parsed instruction by
instruction (hadolint is not packaged for Debian), RUN bodies through ``bash -n``.
"""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "jetson" / "install.sh"
UNIT = REPO / "jetson" / "nvila-edge-demo.service"
SERVE_UNIT = REPO / "jetson" / "nvila-edge-serve.service"
DOCKERFILE = REPO / "jetson" / "Dockerfile"
DOCKER_KEYWORDS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                   "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed (apt-get install shellcheck)")
def test_install_script_passes_shellcheck():
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_install_script_parses_and_prints_help():
    assert subprocess.run(["bash", "-n", str(INSTALL)]).returncode == 0
    done = subprocess.run(["bash", str(INSTALL), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "usage: jetson/install.sh [--prefix DIR] [--service] [--help]" in done.stdout
    assert "--system-site-packages" in done.stdout
    bad = subprocess.run(["bash", str(INSTALL), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 1 and "unknown option '--bogus'" in bad.stderr


@pytest.mark.skipif(Path("/etc/nv_tegra_release").exists() or importlib.util.find_spec("tensorrt") is not None,
                    reason="with JetPack or TensorRT present the script would really install")
def test_install_script_refuses_without_jetpack_tensorrt(tmp_path):
    prefix = tmp_path / "prefix"
    done = subprocess.run(["bash", str(INSTALL), "--prefix", str(prefix)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=60)
    assert done.returncode == 1 and "cannot import tensorrt" in done.stderr
    assert not prefix.exists()  # refused before touching anything


def test_install_script_never_pip_installs_tensorrt():
    text = INSTALL.read_text()
    pip_lines = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert pip_lines and not any("tensorrt" in line for line in pip_lines)
    assert re.search(r'-m venv --system-site-packages "\$VENV"', text)
    assert '"${SRC}[runtime,jetson,serve]"' in text


def _unit_sections(text: str) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def test_unit_runs_the_headless_demo_with_restart_and_journal():
    sections = _unit_sections(UNIT.read_text())
    service = dict(sections["Service"])
    assert " demo --headless " in service["ExecStart"] and service["ExecStart"].startswith("/opt/nvila-edge/venv/bin/")
    assert service["Restart"] == "on-failure"
    assert service["StandardOutput"] == "journal" and service["StandardError"] == "journal"
    assert dict(sections["Install"])["WantedBy"] == "multi-user.target"


def test_serve_unit_runs_serve_stopped_by_sigterm_with_restart_and_journal():
    sections = _unit_sections(SERVE_UNIT.read_text())
    service = dict(sections["Service"])
    assert service["ExecStart"] == "/opt/nvila-edge/venv/bin/nvila-edge serve $NVILA_EDGE_SERVE_ARGS"
    assert service["KillSignal"] == "SIGTERM" and service["EnvironmentFile"] == "-/etc/nvila-edge/serve.env"
    assert service["Restart"] == "on-failure"
    assert service["StandardOutput"] == "journal" and service["StandardError"] == "journal"
    assert dict(sections["Install"])["WantedBy"] == "multi-user.target"
    installer = INSTALL.read_text()
    assert "nvila-edge-serve" in installer and "NVILA_EDGE_SERVE_ARGS=" in installer


@pytest.mark.skipif(shutil.which("systemd-analyze") is None or not Path("/usr/lib/systemd/system").is_dir(),
                    reason="systemd-analyze and the system unit files are not installed")
@pytest.mark.parametrize("unit", [UNIT, SERVE_UNIT], ids=lambda unit: unit.name)
def test_unit_passes_systemd_analyze_verify(tmp_path, unit):
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(unit, root / "etc/systemd/system" / unit.name)
    executable = dict(_unit_sections(unit.read_text())["Service"])["ExecStart"].split()[0]
    (root / executable.lstrip("/")).parent.mkdir(parents=True)
    (root / executable.lstrip("/")).write_text("#!/bin/sh\n")
    (root / executable.lstrip("/")).chmod(0o755)
    done = subprocess.run(["systemd-analyze", "verify", f"--root={root}", unit.name],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword, arguments.strip()))
        pending = ""
    assert pending == "", f"dangling line continuation: {pending!r}"
    return instructions


def test_dockerfile_structure():
    instructions = dockerfile_instructions(DOCKERFILE.read_text())
    keywords = [k for k, _ in instructions]
    assert set(keywords) <= DOCKER_KEYWORDS and all(k.isupper() for k in keywords)
    assert instructions[0][0] == "ARG" and re.fullmatch(r"BASE_IMAGE=nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+",
                                                         instructions[0][1])
    assert instructions[1] == ("FROM", "${BASE_IMAGE}") and keywords.count("FROM") == 1
    for keyword, arguments in instructions:
        if keyword == "COPY":
            *sources, _ = [a for a in arguments.split() if not a.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"COPY source {source} missing"
        if keyword in ("ENTRYPOINT", "CMD", "VOLUME"):
            assert isinstance(json.loads(arguments), list)
        if keyword == "RUN":
            assert subprocess.run(["bash", "-n", "-c", arguments]).returncode == 0, arguments
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert "jetson/install.sh" in runs and not re.search(r"pip3? install[^&;|]*\btensorrt\b", runs)
    assert json.loads(dict(instructions)["ENTRYPOINT"])[0] == "nvila-edge"


def test_dockerfile_copies_every_package_folder_and_the_native_sources():
    package_dirs = set(re.findall(r'"nvila_edge[/\w]*" = "(\w+)"', (REPO / "pyproject.toml").read_text()))
    copied = {a.split()[0].rstrip("/") for k, a in dockerfile_instructions(DOCKERFILE.read_text()) if k == "COPY"}
    assert len(package_dirs) == 5 and package_dirs <= copied
    assert {"CMakeLists.txt", "native"} <= copied  # pip builds the preprocessing library in the image


def test_jetson_guide_states_the_files_were_not_run_on_a_device():
    guide = (REPO / "docs" / "jetson.md").read_text()
    assert "Not yet run on a device" in guide
    for name in ("jetson/install.sh", "jetson/Dockerfile", "jetson/nvila-edge-demo.service", "shellcheck",
                 "systemd-analyze verify", "jetson_clocks", "swap", "NVILA_EDGE_CACHE", "JetPack upgrade"):
        assert name in guide, name
