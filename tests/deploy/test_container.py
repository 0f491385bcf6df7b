"""The Dockerfile, built and run for real with podman (see ``podman.py`` for how this machine
runs containers): a store mounted on /models is what the container serves, a Predict through
the Python client answers, the server runs as a non-root user on a read-only root file system,
the HEALTHCHECK passes, and SIGTERM (``podman stop``) ends it cleanly.

The image is built once per test session (the TensorFlow wheel makes a cold build take
minutes; podman's layer cache makes a rebuild of unchanged layers quick). Skipped where podman
or debootstrap is missing, a failure on CI (``CI=true``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from model_store import bundled_store_path
from model_store.demo import load_samples
from tests.conftest import in_ci

from . import podman
from .processes import free_port, http_status, wait_for

TAG = "localhost/tfsoap:test"
#: The demo model, mounted under another name: proves the mounted store is the one served.
MOUNTED_MODEL = "digits_mounted"


@pytest.fixture(scope="module")
def image() -> Iterator[dict[str, float]]:
    """The tfsoap image, built once; yields how long the base and the build took and its size."""
    missing = podman.missing_tools()
    if missing:
        message = (f"container test needs {', '.join(missing)}; install with: apt-get install "
                   f"-y --no-install-recommends {podman.PACKAGES}")
        if in_ci():
            pytest.fail(message + " [CI=true: the container test must run]", pytrace=False)
        pytest.skip(message)
    base_s = podman.ensure_base_image()
    previous = podman.image_id(TAG)
    start = time.monotonic()
    podman.build_image(TAG)
    podman.remove_stale_images(previous, TAG)
    figures = {"base_image_s": base_s, "build_s": time.monotonic() - start,
               "size_mb": podman.image_size_bytes(TAG) / 1e6}
    print(f"\ncontainer image {TAG}: base image {base_s:.0f} s, build {figures['build_s']:.0f} s"
          f" (layer cache kept between sessions), size {figures['size_mb']:.0f} MB")
    yield figures


def _mounted_store(root: Path) -> Path:
    store = root / "store"
    shutil.copytree(Path(bundled_store_path()) / "digits", store / MOUNTED_MODEL)
    # The container's user (uid 10001) reads the store through the bind mount.
    for path in [store, *store.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return store


def _inspect(name: str, template: str) -> str:
    return podman.podman("inspect", "--format", template, name).stdout.strip()


@pytest.mark.timeout(1800)
def test_image_serves_mounted_store_as_non_root_and_stops_on_sigterm(
        image: dict[str, float], tmp_path: Path) -> None:
    store = _mounted_store(tmp_path)
    port = free_port()
    name = f"tfsoap-test-{port}"
    # The image's own CMD (`tfsoap serve --host 0.0.0.0`); the port comes from TFSOAP_PORT as
    # with --network host nothing else can move it. --read-only as Kubernetes'
    # readOnlyRootFilesystem: podman mounts a tmpfs on /tmp, as the manifest's emptyDir does.
    podman.podman("run", "-d", "--name", name, "--network", "host", "--read-only",
                  "-e", f"TFSOAP_PORT={port}", "-v", f"{store}:/models:ro", TAG)
    url = f"http://127.0.0.1:{port}/"
    try:
        try:
            ready_s = wait_for(url + "readyz", 200, timeout=180)
        except TimeoutError:
            raise AssertionError(podman.podman("logs", name, check=False).stderr) from None
        from tfsoap_client import PredictClient

        client = PredictClient(url, timeout=30)
        assert [m.name for m in client.list_models()] == [MOUNTED_MODEL]
        images, labels = load_samples()
        out = client.predict(MOUNTED_MODEL, {"images": images})
        np.testing.assert_array_equal(out["classes"], labels)

        uid = podman.podman("exec", name, "id", "-u").stdout.strip()
        assert uid == "10001", uid
        # PID 1 is tfsoap itself (exec form, no shell): it gets the SIGTERM.
        cmdline = podman.podman("exec", name, "cat", "/proc/1/cmdline").stdout
        assert "tfsoap" in cmdline and "serve" in cmdline, cmdline
        assert podman.podman("exec", name, "touch", "/opt/tfsoap/x", check=False).returncode \
            != 0, "the root file system is writable"
        health = podman.podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr

        start = time.monotonic()
        podman.podman("stop", "--time", "30", name, timeout=60)
        stop_s = time.monotonic() - start
        assert _inspect(name, "{{.State.ExitCode}}") == "0"
        assert stop_s < 25, f"podman stop took {stop_s:.1f} s: SIGTERM did not end the server"
        assert http_status(url + "healthz") is None
        print(f"container: ready after {ready_s:.1f} s, stopped by SIGTERM in {stop_s:.1f} s "
              f"(exit 0), uid {uid}")
    finally:
        podman.podman("rm", "--force", name, check=False)


@pytest.mark.timeout(600)
def test_image_serves_the_demo_model_when_nothing_is_mounted(image: dict[str, float]) -> None:
    port = free_port()
    name = f"tfsoap-test-{port}"
    podman.podman("run", "-d", "--name", name, "--network", "host", "-e",
                  f"TFSOAP_PORT={port}", TAG)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url + "readyz", 200, timeout=180)
        from tfsoap_client import PredictClient

        assert [m.name for m in PredictClient(url, timeout=30).list_models()] == ["digits"]
    finally:
        podman.podman("rm", "--force", "--volumes", name, check=False)
