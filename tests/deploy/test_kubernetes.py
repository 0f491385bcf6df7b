"""deploy/kubernetes/ against the newest Kubernetes schema that ``kubernetes-validate`` ships,
strictly (an unknown or misspelt field fails), and against tfsoap itself: the ConfigMap holds
real settings, the probes ask real endpoints, the names that tie the objects together agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from soap_server.settings import Settings, from_environment
from tests.conftest import in_ci

try:
    import kubernetes_validate.utils as kubernetes_validate
except ImportError:  # pragma: no cover - a developer without the test extra
    if in_ci():
        raise
    pytest.skip("kubernetes-validate missing: pip install '.[test]'", allow_module_level=True)

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
#: The oldest release the manifests need (policy/v1, autoscaling/v2, preStop ``sleep``).
OLDEST = "1.30.0"


def _kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text()))


def _resources() -> dict[str, dict[str, Any]]:
    """Every object the kustomization lists, by kind."""
    out = {}
    for name in _kustomization()["resources"]:
        for doc in yaml.safe_load_all((MANIFESTS / name).read_text()):
            out[doc["kind"]] = doc
    return out


def test_kustomization_lists_every_manifest() -> None:
    listed = set(_kustomization()["resources"])
    present = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


@pytest.mark.parametrize("version", ["latest", OLDEST])
def test_manifests_validate_strictly(version: str) -> None:
    if version == "latest":
        version = kubernetes_validate.latest_version()
    assert version in kubernetes_validate.all_versions()
    resources = _resources()
    assert len(resources) == 6
    for doc in resources.values():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error


def test_strict_validation_rejects_a_misspelt_field() -> None:
    deployment = _resources()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(),
                                     strict=True)


def test_configmap_holds_valid_tfsoap_settings() -> None:
    data = _resources()["ConfigMap"]["data"]
    settings = from_environment(data)
    assert set(settings) == {k[len("TFSOAP_"):].lower() for k in data}, "unknown TFSOAP_ key"
    configured = Settings().with_overrides(settings)
    assert configured.model_store == "/models" and configured.host == "0.0.0.0"
    assert configured.max_body_bytes == Settings().max_body_bytes


def test_deployment_fits_the_image_and_the_server() -> None:
    objects = _resources()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    settings = Settings().with_overrides(from_environment(objects["ConfigMap"]["data"]))
    assert container["ports"][0]["containerPort"] == settings.port
    assert container["envFrom"][0]["configMapRef"]["name"] == \
        objects["ConfigMap"]["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The grace period covers the preStop pause and a drain as long as a request may wait.
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + settings.request_timeout_s
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    claim = volumes[mounts[settings.model_store]]["persistentVolumeClaim"]["claimName"]
    assert claim == objects["PersistentVolumeClaim"]["metadata"]["name"]
    assert "cpu" in container["resources"]["requests"]  # what the HPA's utilisation is of


def test_service_hpa_and_pdb_point_at_the_deployment() -> None:
    objects = _resources()
    deployment = objects["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = objects[kind]["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), kind
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert objects["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2  # with the PDB
