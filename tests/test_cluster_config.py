"""cluster.yaml (AWS) and cluster-local.yaml validated offline by Ray's own validator, and
the promises they make checked: token authentication on every node, no Ray port open to the
world, S3 through instance profiles, installs pinned by the constraints file, the settings
in one place."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parent.parent
FILES = ["cluster.yaml", "cluster-local.yaml"]


def env_file() -> dict[str, str]:
    out = {}
    for line in (ROOT / "deploy" / "cluster.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@pytest.mark.parametrize("name", FILES)
def test_ray_validates_the_cluster_config(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((ROOT / name).read_text())
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)  # raises on anything Ray's schema refuses
    assert prepared["head_node_type"] in prepared["available_node_types"]
    for local in config["file_mounts"].values():  # directories (Ray syncs them reliably)
        assert (ROOT / local).is_dir(), local
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert command.startswith(". ~/talix/deploy/env.sh && "), command  # token auth
    start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in start and "0.0.0.0" not in start
    install = " ".join(config["setup_commands"])
    assert "-c ~/talix/requirements/constraints.txt" in install
    assert "@${CLUSTER_GIT_REF}" in install
    assert "TALIX_S3_SECRET_KEY" not in (ROOT / name).read_text()


def test_aws_cluster_uses_instance_profiles_and_keeps_ray_ports_closed():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    provider = config["provider"]
    assert provider["region"] == env_file()["TALIX_S3_REGION"] == env_file()["AWS_DEFAULT_REGION"]
    for name, node_type in config["available_node_types"].items():
        assert node_type["node_config"]["IamInstanceProfile"]["Arn"], name
    opened = provider["security_group"]["IpPermissions"]
    for rule in opened:
        assert (rule["FromPort"], rule["ToPort"]) == (8000, 8000)  # only Serve's port
        assert all(r["CidrIp"] != "0.0.0.0/0" for r in rule["IpRanges"])
    assert config["available_node_types"]["gpu"]["min_workers"] == 0


def test_settings_and_tokens_reach_every_command(tmp_path):
    """deploy/env.sh, as the nodes source it: the settings of cluster.env, Ray's token auth
    with the token file from deploy/secrets/, the installed tools first on PATH."""
    home = tmp_path / "home"
    (home / "talix").mkdir(parents=True)
    (home / "talix" / "deploy").symlink_to(ROOT / "deploy")
    out = subprocess.run(["bash", "-c", ". ~/talix/deploy/env.sh && env"], env={
        "HOME": str(home), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=30)
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert env["RAY_AUTH_MODE"] == "token"
    assert env["RAY_AUTH_TOKEN_PATH"] == f"{home}/talix/deploy/secrets/ray_token"
    assert env["TALIX_API_KEYS_FILE"] == f"{home}/talix/deploy/secrets/api_keys.json"
    assert env["PATH"].startswith(f"{home}/talix-venv/bin:")
    for key, value in env_file().items():
        assert env[key] == value

    from talix_ray.serve.config import check_settings, split_environment

    check_settings(split_environment(env)[0])  # the replicas accept these settings
