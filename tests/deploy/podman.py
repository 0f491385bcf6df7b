"""podman for the container test: the settings this kind of machine needs, a base image made
from Debian's packages (no image registry is reachable), and the tfsoap image built on it.

See ``/work/shared/notes/containers.md`` for where each setting comes from: podman's defaults
trip over sandbox limits (no ulimits, no systemd cgroup manager), crun fails on hybrid cgroups
so runc runs the containers, and pip inside a build needs the host's CA bundle.

The base image (``localhost/debian-python:bookworm``) takes about half a minute and is built
once per machine: it is kept in podman's image store under that name, and a lock file keeps two
test sessions from building it at once. Run this module to build it ahead of the tests::

    python -m tests.deploy.podman
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = "localhost/debian-python:bookworm"
#: Where the containers.conf and the base image's lock live: the same folder for every session.
WORK_DIR = Path(tempfile.gettempdir()) / "tfsoap-podman"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
RUNC = "/usr/sbin/runc"
PACKAGES = "podman runc debootstrap"
CONTAINERS_CONF = ('[containers]\ndefault_ulimits = []\n'
                   '[engine]\ncgroup_manager = "cgroupfs"\n')
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def missing_tools() -> list[str]:
    """The commands the container test needs that are not on PATH."""
    return [t for t in ("podman", "debootstrap") if shutil.which(t) is None]


def environment() -> dict[str, str]:
    """The environment for podman: ours plus a ``CONTAINERS_CONF`` this machine can run with
    (one set by the developer is kept)."""
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF"):
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        conf = WORK_DIR / "containers.conf"
        if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
            tmp = conf.with_suffix(f".{os.getpid()}")
            tmp.write_text(CONTAINERS_CONF)
            tmp.replace(conf)
        env["CONTAINERS_CONF"] = str(conf)
    return env


def podman_command() -> list[str]:
    """``podman`` with runc as the runtime where Debian's runc is installed."""
    cmd = ["podman"]
    if os.path.exists(RUNC):
        cmd += ["--runtime", RUNC]
    return cmd


def podman(*args: str, timeout: float = 120, check: bool = True,
           capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one podman command; on failure raise with its output."""
    result = subprocess.run(podman_command() + list(args), env=environment(), text=True,
                            capture_output=capture, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"$ podman {' '.join(args)}\nexit {result.returncode}\n"
                           f"{result.stdout or ''}\n{result.stderr or ''}")
    return result


def image_exists(name: str) -> bool:
    return podman("image", "exists", name, check=False).returncode == 0


def debian_mirror() -> str:
    """The Debian mirror apt uses on this machine (debootstrap must reach the same one)."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[1]
    return DEFAULT_MIRROR


def ensure_base_image(name: str = BASE_IMAGE) -> float:
    """Make ``name`` (Debian bookworm with Python 3.11) unless it exists; the seconds spent."""
    start = time.monotonic()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    with open(WORK_DIR / "base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_exists(name):
            return time.monotonic() - start
        with tempfile.TemporaryDirectory(dir=WORK_DIR) as tmp:
            root, tar = Path(tmp) / "root", Path(tmp) / "base.tar"
            _run(["debootstrap", "--variant=minbase",
                  "--include=python3,python3-venv,ca-certificates", "bookworm", str(root),
                  debian_mirror()], timeout=900)
            _run(["tar", "-C", str(root), "-cf", str(tar), "."], timeout=300)
            podman("import", str(tar), name, timeout=300)
    return time.monotonic() - start


def build_image(tag: str, base: str = BASE_IMAGE, context: Path = REPO,
                timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    """``podman build`` the repository's Dockerfile on ``base`` with the host network and CA
    bundle (this environment's, not part of the Dockerfile)."""
    # docker format: the OCI image format has no HEALTHCHECK, and podman would drop it
    args = ["build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base}",
            "-t", tag, "-f", str(context / "Dockerfile")]
    if os.path.exists(CA_BUNDLE):
        args += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro"]
    return podman(*args, str(context), timeout=timeout)


def image_id(name: str) -> str | None:
    result = podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def remove_stale_images(previous_id: str | None, tag: str) -> None:
    """Free what earlier builds left: the image ``tag`` named before (now untagged) and every
    untagged builder-stage image but the newest (which the next build's cache starts from).
    Each is over 1.8 GB (TensorFlow)."""
    stale = [previous_id] if previous_id and previous_id != image_id(tag) else []
    listed = podman("images", "--filter", "dangling=true", "--filter",
                    "label=org.tfsoap.stage=builder", "--format", "{{.CreatedAt}}\t{{.ID}}",
                    check=False).stdout.splitlines()
    builders = sorted(line.split("\t") for line in listed if "\t" in line)  # oldest first
    stale += [image for _created, image in builders[:-1]]
    for image in stale:
        podman("rmi", image, check=False)


def image_size_bytes(tag: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())


def _run(cmd: Sequence[str], timeout: float) -> None:
    result = subprocess.run(list(cmd), text=True, capture_output=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"$ {' '.join(cmd)}\nexit {result.returncode}\n"
                           f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


if __name__ == "__main__":
    print(f"{BASE_IMAGE}: ready after {ensure_base_image():.1f} s")
