"""The team server (compose.yaml) and the image it runs (Dockerfile), checked on the files: who reaches what, what
waits for what, what is kept, and that the CUDA image can be built without a python3.11 package.

compose.yaml is read by `docker compose config` where Docker Compose is installed (its own reading: interpolation,
merges, profiles), else by PyYAML with the same interpolation of ${VAR:?error} and ${VAR:-default}. The
Dockerfile's Python install runs here in bash against stand-ins for apt-get and python3, as each base has them."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
CUDA_BASE = "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"
PASSWORD = "not-a-real-password"
WORKERS = ("worker-cpu", "worker-gpu")
NEEDS_THE_NOTEBOOK = ("app", *WORKERS)


# --- reading compose.yaml -------------------------------------------------------------------------------------


def docker_compose_works() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0


def compose_config(environment: dict[str, str]) -> dict:
    """The compose model with every profile on, as Docker Compose reads it when it can, else as PyYAML does."""
    if docker_compose_works():
        found = subprocess.run(["docker", "compose", "--file", str(COMPOSE), "--profile", "gpu", "config",
                                "--format", "json"], capture_output=True, text=True, env=environment)
        if found.returncode != 0:
            raise ValueError(found.stderr)
        return json.loads(found.stdout)
    print("docker compose is not installed here: compose.yaml read by PyYAML, interpolated as Compose would")
    return interpolated(yaml.safe_load(COMPOSE.read_text()), environment)


def interpolated(value, environment: dict[str, str]):
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?error} in every string of `value`."""
    if isinstance(value, dict):
        return {key: interpolated(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolated(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match) -> str:
        name, how, word = match.group(1), match.group(2) or "", match.group(3) or ""
        if environment.get(name):
            return environment[name]
        if how == ":?":
            raise ValueError(f"required variable {name} is missing a value: {word}")
        return word if how == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def mounts(service: dict) -> list[dict]:
    """Each volume of a service as Compose's long form: type, source, target, read_only."""
    found = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            kind = "bind" if source.startswith((".", "/")) else "volume"
            volume = {"type": kind, "source": source, "target": target, "read_only": mode == ["ro"]}
        found.append({"read_only": False, **volume})
    return found


def mount_at(service: dict, target: str) -> dict:
    matching = [m for m in mounts(service) if m["target"] == target]
    assert len(matching) == 1, f"one mount at {target}: {mounts(service)}"
    return matching[0]


def published_ports(service: dict) -> set[int]:
    """Host ports a service publishes, from "8501:8501" or {published: "8501", target: 8501}."""
    ports = set()
    for port in service.get("ports", []):
        ports.add(int(str(port).rsplit(":", 2)[-2]) if isinstance(port, (str, int)) else int(port["published"]))
    return ports


@pytest.fixture(scope="module")
def services() -> dict:
    return compose_config({**os.environ, "LAB_DB_PASSWORD": PASSWORD})["services"]


@pytest.fixture(scope="module")
def volumes() -> dict:
    return compose_config({**os.environ, "LAB_DB_PASSWORD": PASSWORD}).get("volumes", {})


# --- compose.yaml ---------------------------------------------------------------------------------------------


def test_the_team_server_is_a_database_an_app_a_cpu_worker_and_a_gpu_worker_behind_a_profile(services):
    assert set(services) == {"db", "app", "worker-cpu", "worker-gpu"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["worker-gpu"]["profiles"] == ["gpu"], "the GPU worker only with --profile gpu"
    assert all(not services[name].get("profiles") for name in ("db", "app", "worker-cpu")), "on by default"
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert services["worker-gpu"]["build"]["args"]["BASE"] == CUDA_BASE


def test_nothing_starts_before_the_database_is_healthy(services):
    check = services["db"]["healthcheck"]
    assert "pg_isready" in " ".join(check["test"]) and not check.get("disable")
    for name in NEEDS_THE_NOTEBOOK:
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy", name


def test_the_database_and_the_artifacts_are_kept_on_named_volumes_the_app_and_workers_share(services, volumes):
    database = mount_at(services["db"], "/var/lib/postgresql/data")
    assert database["type"] == "volume" and database["source"] in volumes
    root = services["app"]["environment"]["LAB_ARTIFACT_ROOT"]
    shared = {mount_at(services[name], root)["source"] for name in NEEDS_THE_NOTEBOOK}
    assert len(shared) == 1 and shared <= set(volumes), "one volume at the artifact root, in the app and every worker"
    assert all(mount_at(services[name], root)["type"] == "volume" for name in NEEDS_THE_NOTEBOOK)


def test_every_service_reaches_the_same_notebook_and_artifact_root(services):
    urls = {services[name]["environment"]["LAB_NOTEBOOK_URL"] for name in NEEDS_THE_NOTEBOOK}
    roots = {services[name]["environment"]["LAB_ARTIFACT_ROOT"] for name in NEEDS_THE_NOTEBOOK}
    assert len(urls) == 1 and roots == {"/artifacts"}
    url = make_url(urls.pop())
    database = services["db"]["environment"]
    assert url.drivername == "postgresql+psycopg" and url.host == "db", "PostgreSQL, by its service name"
    assert url.username == database["POSTGRES_USER"] and url.database == database["POSTGRES_DB"]
    assert url.password == database["POSTGRES_PASSWORD"] == PASSWORD, "the database's password, from LAB_DB_PASSWORD"
    assert not services["db"].get("ports"), "the database is reached on the compose network only"
    hosts = [services[name]["environment"]["LAB_HOST_ID"] for name in WORKERS]
    assert len(set(hosts)) == len(hosts) and all(hosts), "each worker says which host it is"


def test_without_a_database_password_compose_refuses_to_start():
    environment = {key: value for key, value in os.environ.items() if key != "LAB_DB_PASSWORD"}
    with pytest.raises(ValueError, match="LAB_DB_PASSWORD"):
        compose_config(environment)


def test_the_app_listens_on_every_interface_with_sign_in_and_reads_its_secrets_read_only(services):
    app = services["app"]
    command = app["command"]
    assert command[:3] == ["python", "-m", "app"]
    assert command[command.index("--address") + 1] == "0.0.0.0", "inside a container, or the port reaches nothing"
    assert command[command.index("--port") + 1] == "8501" and 8501 in published_ports(app)
    assert "--allow-anonymous" not in command, "a team server signs people in"
    secrets = mount_at(app, f"{dockerfile_workdir()}/.streamlit/secrets.toml")
    assert secrets["type"] == "bind" and secrets["read_only"]
    assert Path(secrets["source"]).name == "secrets.toml" and ".streamlit" in Path(secrets["source"]).parts
    assert secrets.get("bind", {}).get("create_host_path") is False, "a missing file fails, no folder made for it"


@pytest.mark.parametrize("name", WORKERS)
def test_the_worker_commands_are_ones_engine_worker_accepts(services, name):
    command = services[name]["command"]
    assert command[:3] == ["python", "-m", "engine"]
    args = build_parser().parse_args(command[3:])  # argparse exits (SystemExit) on an option it does not know
    assert args.handler.__name__ == "_worker" and args.max_parallel >= 1


# --- Dockerfile -----------------------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip():
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def dockerfile_workdir() -> str:
    return [rest for keyword, rest in instructions() if keyword == "WORKDIR"][-1]


def python_install() -> str:
    """The RUN that installs Python and makes the virtualenv."""
    (run,) = [rest for keyword, rest in instructions() if keyword == "RUN" and "-m venv" in rest]
    return run


STAND_INS = {
    # apt-get: says what it was asked; installing python3 puts a python3 on the PATH, as the package would
    "apt-get": """#!/bin/sh
echo "apt-get $*" >> "$LOG"
case " $* " in *" python3 "*) /bin/cp "$STUBS/python3-installed" "$STUBS/python3";; esac
exit 0
""",
    "rm": '#!/bin/sh\necho "rm $*" >> "$LOG"\n',
    # a python3 with venv (python:3.11-slim, or Ubuntu's once python3-venv is in): makes a virtualenv whose python
    # is this machine's, for the version check that follows
    "python3-installed": """#!/bin/sh
echo "python3 $*" >> "$LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  /bin/mkdir -p "$3/bin" && printf '#!/bin/sh\nPATH=/usr/bin:/bin exec "%s" "$@"\n' "$REAL_PYTHON" > "$3/bin/python"
  /bin/chmod +x "$3/bin/python"
fi
exit 0
""",
    # Ubuntu's python3 without python3-venv: no ensurepip
    "python3-without-venv": """#!/bin/sh
echo "python3 $*" >> "$LOG"
case "$*" in *ensurepip*) exit 1;; esac
exit 0
""",
}


def install_python_on(base_python: str | None, tmp_path: Path) -> list[str]:
    """Run the Dockerfile's Python install in bash where python3 is `base_python` (a stand-in name, or None: the
    base has no python3, as nvidia/cuda's Ubuntu 24.04 images); what it asked of apt-get and python3."""
    stubs, log, venv = tmp_path / "bin", tmp_path / "commands.log", tmp_path / "venv"
    stubs.mkdir()
    for name, text in STAND_INS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    if base_python:
        shutil.copy(stubs / base_python, stubs / "python3")
    script = python_install().replace("/opt/venv", str(venv))
    done = subprocess.run(["/bin/bash", "-euc", script], capture_output=True, text=True,
                          env={"PATH": str(stubs), "LOG": str(log), "STUBS": str(stubs), "REAL_PYTHON": sys.executable})
    assert done.returncode == 0, f"{script}\n{done.stderr}"
    assert (venv / "bin" / "python").exists(), "the virtualenv is made"
    return log.read_text().splitlines()


def installed_packages(commands: list[str]) -> list[str]:
    return [word for line in commands if line.startswith("apt-get install")
            for word in shlex.split(line)[2:] if not word.startswith("-")]


def test_the_cuda_image_gets_ubuntus_python3_and_no_python3_11_package(tmp_path):
    """nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 has no python3 (and Ubuntu 24.04 no python3.11 package)."""
    packages = installed_packages(install_python_on(None, tmp_path))
    assert {"python3", "python3-venv"} <= set(packages)
    assert not any(p.startswith("python3.") for p in packages), packages
    assert not any("python3.11" in rest for keyword, rest in instructions() if keyword == "RUN")


def test_a_python3_without_venv_gets_python3_venv(tmp_path):
    assert {"python3", "python3-venv"} <= set(installed_packages(install_python_on("python3-without-venv", tmp_path)))


def test_the_cpu_image_keeps_the_python_of_its_base(tmp_path):
    packages = installed_packages(install_python_on("python3-installed", tmp_path))
    assert packages and not any(p.startswith("python3") for p in packages), packages


def test_the_image_serves_one_user_on_every_interface_and_keeps_artifacts_under_data():
    found = instructions()
    (cmd,) = [json.loads(rest) for keyword, rest in found if keyword == "CMD"]
    assert cmd == ["python", "-m", "app", "--address", "0.0.0.0", "--port", "8501", "--allow-anonymous"]
    environment = " ".join(rest for keyword, rest in found if keyword == "ENV")
    assert "LAB_ARTIFACT_ROOT=/data/runs" in environment and "LAB_RUNS_DIR" not in environment
    assert [rest for keyword, rest in found if keyword == "ARG"] == ["BASE=python:3.11-slim-bookworm"]
    user = next(rest for keyword, rest in found if keyword == "RUN" and "useradd" in rest)
    # Ubuntu 24.04 has a user `ubuntu` with uid 1000: it must go before the researcher takes that uid
    assert user.index("userdel --remove ubuntu") < user.index("useradd --create-home --uid 1000")
    assert "/artifacts" in user and "chown researcher /data /artifacts" in user, "compose.yaml's mount, writable"


def test_sign_in_secrets_and_the_database_password_never_reach_an_image():
    """The Dockerfile copies .streamlit/ (for config.toml): secrets.toml beside it, and .env with the database's
    password, stay out of the build context, so no image layer holds them; compose mounts the secrets instead."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".streamlit/secrets.toml", ".env"} <= ignored
    assert not any(line.startswith("!") for line in ignored), "nothing ignored is let back in"
    assert any(rest.startswith(".streamlit") for keyword, rest in instructions() if keyword == "COPY")
