"""Cluster options and the files that carry them: what Serve is asked for, the Serve config
file and the KubeRay manifest (validated by Serve's own schema and built by the same
builder), and the `ray` command's refusals. No cluster is started here, but for one local
cluster without GPUs that the `ray` command must refuse at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from pydantic import ValidationError
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from server.__main__ import main
from server.cluster import deployment
from server.cluster.cli import missing_gpus
from server.cluster.deployment import ClusterOptions, deployment_options
from server.config import load_settings
from tests.support.live_server import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVE_CONFIG = ROOT / "deploy" / "ray" / "serve-config.yaml"
RAYSERVICE = ROOT / "deploy" / "ray" / "rayservice.yaml"


def test_fixed_replicas_and_what_each_replica_asks_for() -> None:
    options = deployment_options(ClusterOptions(replicas=3), load_settings(max_queue_depth=12, shutdown_grace=20))
    assert options["num_replicas"] == 3 and "autoscaling_config" not in options
    assert options["ray_actor_options"] == {"num_gpus": 1.0, "num_cpus": 1.0}  # one GPU by default
    assert options["max_ongoing_requests"] == options["max_queued_requests"] == 12
    assert options["graceful_shutdown_timeout_s"] == 20
    cpu = deployment_options(ClusterOptions(), load_settings(device="cpu"))
    assert cpu["num_replicas"] == 1 and cpu["ray_actor_options"]["num_gpus"] == 0.0


def test_autoscaling_targets_a_batch_per_replica_by_default() -> None:
    settings = load_settings(max_batch_size=6)
    scaled = deployment_options(ClusterOptions(min_replicas=1, max_replicas=4), settings)["autoscaling_config"]
    assert scaled["min_replicas"] == 1 and scaled["max_replicas"] == 4
    assert scaled["target_ongoing_requests"] == 6
    given = ClusterOptions(max_replicas=2, target_ongoing_requests=2.5, upscale_delay_s=0, downscale_delay_s=5)
    scaled = deployment_options(given, settings)["autoscaling_config"]
    assert scaled["min_replicas"] == 1 and scaled["target_ongoing_requests"] == 2.5
    assert (scaled["upscale_delay_s"], scaled["downscale_delay_s"]) == (0, 5)
    floor_only = deployment_options(ClusterOptions(min_replicas=3), settings)["autoscaling_config"]
    assert (floor_only["min_replicas"], floor_only["max_replicas"]) == (3, 3)


@pytest.mark.parametrize(
    "fields",
    [
        {"replicas": 2, "max_replicas": 3},
        {"min_replicas": 3, "max_replicas": 2},
        {"replicas": 0},
        {"num_gpus": -1},
        {"replicas": 2, "unknown": 1},
    ],
)
def test_contradictory_or_unknown_options_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ClusterOptions(**fields)


def _built_options(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Validate with Serve's schema, build the application with the builder the config
    names on its args (in the replicas' environment), and return what it asks Serve for."""
    [app] = ServeDeploySchema.model_validate(config).applications
    module, _, attribute = app.import_path.partition(":")
    assert module == "server.cluster.deployment"
    for name, value in (app.runtime_env or {}).get("env_vars", {}).items():
        monkeypatch.setenv(name, value)
    assert isinstance(getattr(deployment, attribute)(app.args), Application)
    options = ClusterOptions.model_validate(app.args)
    return deployment_options(options, load_settings(**options.settings))


def test_serve_config_file_builds_a_gpu_autoscaled_app(monkeypatch: pytest.MonkeyPatch) -> None:
    options = _built_options(yaml.safe_load(SERVE_CONFIG.read_text()), monkeypatch)
    assert options["ray_actor_options"]["num_gpus"] == 1
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert options["autoscaling_config"]["target_ongoing_requests"] == 4  # MAX_BATCH_SIZE in its env


def test_rayservice_manifest_shares_the_voice_volume_with_every_replica(monkeypatch: pytest.MonkeyPatch) -> None:
    service, claim = yaml.safe_load_all(RAYSERVICE.read_text())
    assert (service["apiVersion"], service["kind"]) == ("ray.io/v1", "RayService")
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    options = _built_options(config, monkeypatch)
    cluster = service["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    [workers] = cluster["workerGroupSpecs"]
    # One GPU per worker pod and per replica: enough pods for the most replicas.
    assert workers["maxReplicas"] >= options["autoscaling_config"]["max_replicas"]
    voices_dir = config["applications"][0]["runtime_env"]["env_vars"]["VOICES_DIR"]
    assert claim["kind"] == "PersistentVolumeClaim" and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for group in (cluster["headGroupSpec"], workers):
        spec = group["template"]["spec"]
        [volume] = [v for v in spec["volumes"] if v.get("persistentVolumeClaim")]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        [container] = spec["containers"]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[volume["name"]] == voices_dir
        assert spec["securityContext"]["runAsUser"] == 10001  # the image's user owns the volume
    assert workers["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_the_ray_command_refuses_bad_options_and_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["ray", "--replicas", "2", "--max-replicas", "3"]) == 2
    assert "either replicas" in capsys.readouterr().err
    monkeypatch.setenv("MAX_BATCH_SIZE", "0")
    assert main(["ray", "--replicas", "2"]) == 2
    assert "MAX_BATCH_SIZE" in capsys.readouterr().err


def test_replicas_asking_for_more_gpus_than_the_cluster_has_are_refused_with_how_to_run() -> None:
    gpu_settings = load_settings(device="auto")
    problem = missing_gpus(ClusterOptions(), gpu_settings, cluster_gpus=0)
    assert problem is not None and "--num-gpus 0" in problem and "DEVICE=cpu" in problem
    assert missing_gpus(ClusterOptions(), gpu_settings, cluster_gpus=1) is None
    assert missing_gpus(ClusterOptions(replicas=2), gpu_settings, cluster_gpus=1) is not None
    assert missing_gpus(ClusterOptions(num_gpus=0), gpu_settings, cluster_gpus=0) is None
    assert missing_gpus(ClusterOptions(), load_settings(device="cpu"), cluster_gpus=0) is None


@pytest.mark.ray
def test_the_ray_command_on_a_cluster_without_gpus_says_what_is_missing_and_exits(tmp_path: Path) -> None:
    """As a new user would run it: no DEVICE, the default of one GPU per replica, a local
    cluster on a machine without GPUs. It must not wait for GPUs that never come."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DEVICE", "CUDA_VISIBLE_DEVICES")}
    environment["CUDA_VISIBLE_DEVICES"] = ""  # no GPU for Ray to find, whatever the machine has
    environment["PORT"] = str(free_port())  # never bound: the command stops before Serve starts
    done = subprocess.run(
        [sys.executable, "-m", "server", "ray"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0
    assert "the Ray cluster has 0" in done.stderr and "--num-gpus 0" in done.stderr, done.stderr[-2000:]
