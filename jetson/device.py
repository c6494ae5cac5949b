"""What board this is: Jetson model and memory, L4T / JetPack release, TensorRT and CUDA, cameras, power mode.

Everything is read from files under a root folder (``/`` on a device), so a copied or fake ``/proc``,
``/etc``, ``/dev`` and ``/var`` tree gives the same answers as the board it came from. Nothing here
imports TensorRT or CUDA; the doctor probes those separately.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nvila_edge.engines.targets import GIB, TARGETS, TargetRecord
from nvila_edge.errors import UnsupportedError

MODEL_FILES = ("proc/device-tree/model", "sys/firmware/devicetree/base/model")
COMPATIBLE_FILE = "proc/device-tree/compatible"
TENSORRT_PACKAGES = ("tensorrt", "libnvinfer10", "libnvinfer-bin", "python3-libnvinfer")


@dataclass(frozen=True, order=True)
class L4tRelease:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"R{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class JetPackRelease:
    jetpack: str
    tensorrt: str  # major.minor that JetPack ships; engines are tied to it
    cuda: str
    python: str  # the system Python that JetPack's TensorRT bindings are built for
    supported: bool = True  # TensorRT 10 or newer (INT4 weight-only needs it)


# (L4T major, minor or None for the whole line, first patch) -> release, oldest first. From the JetPack
# release table: R36.4 -> 6.1 / 6.2 (TRT 10.3), R38.2 -> 7.0, R38.4 -> 7.1 (TRT 10.13), R39.2 -> 7.2 (TRT 10.16).
JETPACK_RELEASES: tuple[tuple[tuple[int, int | None, int], JetPackRelease], ...] = (
    ((35, None, 0), JetPackRelease("5.1", "8.5", "11.4", "3.8", supported=False)),
    ((36, 3, 0), JetPackRelease("6.0", "8.6", "12.2", "3.10", supported=False)),
    ((36, 4, 0), JetPackRelease("6.1", "10.3", "12.6", "3.10")),
    ((36, 4, 3), JetPackRelease("6.2", "10.3", "12.6", "3.10")),
    ((36, 4, 4), JetPackRelease("6.2.1", "10.3", "12.6", "3.10")),
    ((36, 5, 0), JetPackRelease("6.2.2", "10.3", "12.6", "3.10")),
    ((38, 2, 0), JetPackRelease("7.0", "10.13", "13.0", "3.12")),
    ((38, 4, 0), JetPackRelease("7.1", "10.13", "13.0", "3.12")),
    ((39, 2, 0), JetPackRelease("7.2", "10.16", "13.2", "3.12")),
)


@dataclass(frozen=True)
class DeviceInfo:
    model: str | None  # device-tree model string; None off Jetson
    compatible: tuple[str, ...]
    memory_total_bytes: int | None
    l4t: L4tRelease | None
    l4t_core_version: str | None  # the nvidia-l4t-core package version
    jetpack: JetPackRelease | None
    tensorrt_version: str | None  # from the installed packages, e.g. "10.3.0.30"
    cuda_version: str | None  # from /usr/local/cuda/version.json, e.g. "12.6.68"
    nvidia_driver: str | None  # first line of /proc/driver/nvidia/version (discrete GPUs)

    @property
    def is_jetson(self) -> bool:
        return self.l4t is not None or "jetson" in (self.model or "").lower() or any(
            c.startswith("nvidia,tegra") for c in self.compatible)

    @property
    def memory_gib(self) -> float | None:
        return None if self.memory_total_bytes is None else self.memory_total_bytes / GIB


def _read_text(root: Path, relative: str) -> str | None:
    try:
        return (root / relative).read_text(errors="replace")
    except OSError:
        return None


def read_device_model(root: Path) -> str | None:
    """The device-tree model, e.g. ``NVIDIA Jetson Orin Nano Developer Kit`` (NUL terminator removed)."""
    for relative in MODEL_FILES:
        text = _read_text(root, relative)
        if text and text.strip("\x00\n "):
            return text.strip("\x00\n ")
    return None


def read_compatible(root: Path) -> tuple[str, ...]:
    """Device-tree compatible strings, e.g. ``nvidia,p3768-0000+p3767-0005``, ``nvidia,tegra234``."""
    text = _read_text(root, COMPATIBLE_FILE) or ""
    return tuple(part for part in text.split("\x00") if part.strip())


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per field (``kB`` lines are scaled, plain counts kept)."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"(\S+):\s+(\d+)(\s+kB)?", line)
        if match:
            values[match.group(1)] = int(match.group(2)) * (1024 if match.group(3) else 1)
    return values


def read_meminfo(root: Path) -> dict[str, int]:
    return parse_meminfo(_read_text(root, "proc/meminfo") or "")


@dataclass(frozen=True)
class SwapArea:
    name: str
    size_bytes: int
    used_bytes: int

    @property
    def is_zram(self) -> bool:
        return "/zram" in self.name


def read_swaps(root: Path) -> list[SwapArea]:
    """Active swap areas from ``/proc/swaps`` (sizes there are KiB)."""
    areas = []
    for line in (_read_text(root, "proc/swaps") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 4 and fields[2].isdigit() and fields[3].isdigit():
            areas.append(SwapArea(fields[0], int(fields[2]) * 1024, int(fields[3]) * 1024))
    return areas


def parse_nv_tegra_release(text: str) -> L4tRelease | None:
    """``# R36 (release), REVISION: 4.3, GCID: ...`` -> R36.4.3."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", text)
    return L4tRelease(*map(int, match.groups())) if match else None


def parse_l4t_core_version(version: str) -> L4tRelease | None:
    """``36.4.3-20250107174145`` (the nvidia-l4t-core package) -> R36.4.3."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return L4tRelease(*map(int, match.groups())) if match else None


def jetpack_for(l4t: L4tRelease) -> JetPackRelease | None:
    """The JetPack release an L4T version belongs to; None for lines this table does not know."""
    found = None
    for (major, minor, first_patch), release in JETPACK_RELEASES:
        if major == l4t.major and minor in (None, l4t.minor) and l4t.patch >= first_patch:
            found = release
    return found


def read_dpkg_versions(root: Path, packages: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``packages`` from the dpkg status database (no dpkg binary needed)."""
    versions: dict[str, str] = {}
    for stanza in (_read_text(root, "var/lib/dpkg/status") or "").split("\n\n"):
        stanza = stanza.strip("\n")
        if stanza.partition("\n")[0].removeprefix("Package: ") not in packages:
            continue  # the status file lists thousands of packages; parse only the ones asked for
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, flags=re.MULTILINE))
        if fields.get("Status", "").endswith(" installed"):
            versions[fields["Package"]] = fields.get("Version", "")
    return versions


def read_cuda_version(root: Path) -> str | None:
    text = _read_text(root, "usr/local/cuda/version.json")
    try:
        return json.loads(text)["cuda"]["version"] if text else None
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def detect_device(root: Path = Path("/")) -> DeviceInfo:
    root = Path(root)
    l4t = parse_nv_tegra_release(_read_text(root, "etc/nv_tegra_release") or "")
    packages = read_dpkg_versions(root, ("nvidia-l4t-core",) + TENSORRT_PACKAGES)
    core = packages.get("nvidia-l4t-core")
    if l4t is None and core:
        l4t = parse_l4t_core_version(core)
    trt = next((packages[p] for p in TENSORRT_PACKAGES if p in packages), None)
    driver = (_read_text(root, "proc/driver/nvidia/version") or "").strip().splitlines()
    return DeviceInfo(
        model=read_device_model(root),
        compatible=read_compatible(root),
        memory_total_bytes=read_meminfo(root).get("MemTotal"),
        l4t=l4t,
        l4t_core_version=core,
        jetpack=jetpack_for(l4t) if l4t else None,
        tensorrt_version=trt.split("-")[0] if trt else None,
        cuda_version=read_cuda_version(root),
        nvidia_driver=driver[0] if driver else None,
    )


@dataclass(frozen=True)
class VideoDevice:
    path: str  # as seen on the device, e.g. /dev/video0
    name: str | None  # V4L2 card name; Jetson CSI capture nodes are called "vi-output, <sensor> <bus>"
    accessible: bool

    @property
    def is_csi(self) -> bool:
        return (self.name or "").startswith("vi-output")


def list_video_devices(root: Path) -> list[VideoDevice]:
    nodes = [p for p in (root / "dev").glob("video*") if p.name[5:].isdigit()]
    devices = []
    for node in sorted(nodes, key=lambda p: int(p.name[5:])):
        name = _read_text(root, f"sys/class/video4linux/{node.name}/name")
        devices.append(VideoDevice(f"/dev/{node.name}", name.strip() if name else None,
                                   os.access(node, os.R_OK | os.W_OK)))
    return devices


def is_process_running(root: Path, comm: str) -> bool:
    """True when a process named ``comm`` (e.g. ``nvargus-daemon``) is listed under ``/proc``."""
    return any((_read_text(root, f"proc/{p.name}/comm") or "").strip() == comm
               for p in (root / "proc").glob("[0-9]*"))


@dataclass(frozen=True)
class PowerMode:
    current_id: int | None
    current_name: str | None
    modes: dict[int, str]  # from /etc/nvpmodel.conf

    @property
    def max_mode(self) -> tuple[int, str] | None:
        """The unconstrained mode: MAXN_SUPER on Orin Nano/NX Super, MAXN elsewhere."""
        ranked = sorted((not name.startswith("MAXN_SUPER"), mode_id, name)
                        for mode_id, name in self.modes.items() if name.startswith("MAXN"))
        return (ranked[0][1], ranked[0][2]) if ranked else None

    @property
    def is_max(self) -> bool:
        best = self.max_mode
        if best is not None and self.current_id is not None:
            return self.current_id == best[0]
        return (self.current_name or "").startswith("MAXN")


def parse_nvpmodel_conf(text: str) -> dict[int, str]:
    """``< POWER_MODEL ID=2 NAME=MAXN_SUPER >`` lines -> {2: "MAXN_SUPER"}."""
    return {int(i): name for i, name in re.findall(r"^<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", text, re.MULTILINE)}


def parse_nvpmodel_query(text: str) -> tuple[str | None, int | None]:
    """``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the id on its own line) -> (name, id)."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    mode_id = re.search(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return (name.group(1) if name else None), (int(mode_id.group(1)) if mode_id else None)


def read_power_mode(root: Path, query_output: str | None = None) -> PowerMode | None:
    """Current power mode from ``nvpmodel -q`` output when given, else ``/var/lib/nvpmodel/status``."""
    modes = parse_nvpmodel_conf(_read_text(root, "etc/nvpmodel.conf") or "")
    if query_output:
        name, mode_id = parse_nvpmodel_query(query_output)
    else:
        status = re.search(r"pmode:(\d+)", _read_text(root, "var/lib/nvpmodel/status") or "")
        mode_id = int(status.group(1)) if status else None
        name = modes.get(mode_id) if mode_id is not None else None
    if name is None and mode_id is None:
        return None
    return PowerMode(mode_id, name or modes.get(mode_id), modes)


# Module part numbers (and Thor's SoC) in the device-tree compatible list, for carrier boards that set their
# own model string.
MODULE_FAMILIES = {
    "p3767-0000": "orin-nx", "p3767-0001": "orin-nx",
    "p3767-0003": "orin-nano", "p3767-0004": "orin-nano", "p3767-0005": "orin-nano",
    "p3701": "orin-agx", "p3834": "thor", "tegra264": "thor",
}
MODEL_FAMILIES = (("thor", "thor"), ("agx orin", "orin-agx"), ("orin nx", "orin-nx"), ("orin nano", "orin-nano"))


def jetson_family(info: DeviceInfo) -> str | None:
    """``orin-nano``, ``orin-nx``, ``orin-agx`` or ``thor`` from the model string, else the module number."""
    model = (info.model or "").lower()
    for needle, family in MODEL_FAMILIES:
        if needle in model:
            return family
    for compatible in info.compatible:
        for part, family in MODULE_FAMILIES.items():
            if part in compatible:
                return family
    return None


def _sized_target(family: str, info: DeviceInfo) -> tuple[TargetRecord, str]:
    """The family's record whose nominal size covers MemTotal (Linux always sees a little less)."""
    candidates = sorted((t for t in TARGETS.values() if t.name.startswith(family)), key=lambda t: t.total_memory_gb)
    gib = info.memory_gib
    if gib is None:
        return candidates[0], "memory unknown (no /proc/meminfo), so the smallest size was assumed"
    fitting = [t for t in candidates if t.total_memory_gb >= gib]
    chosen = fitting[0] if fitting else candidates[-1]
    return chosen, f"{gib:.1f} GiB visible to Linux"


def target_for_device(info: DeviceInfo) -> tuple[TargetRecord, str]:
    """Map detected facts to a target record, with the reason in words."""
    if info.is_jetson:
        family = jetson_family(info)
        where = f"'{info.model}'" if info.model else "this Jetson"
        if family is None:
            raise UnsupportedError(f"{where} is not an Orin or Thor board (compatible: {', '.join(info.compatible)}); "
                                   f"NVILA engines need Orin or Thor; pass --target explicitly if this is wrong")
        target, memory = _sized_target(family, info)
        release = f", L4T {info.l4t}" if info.l4t else ""
        return target, f"{where}{release}, {memory} -> {target.name}"
    if info.nvidia_driver:
        return TARGETS["x86-gpu"], (f"not a Jetson; NVIDIA driver found ({info.nvidia_driver[:60]}) -> x86-gpu "
                                    f"(assumes an Ada-class GPU; use --target rtx for TensorRT-RTX)")
    return TARGETS["cpu"], "not a Jetson and no NVIDIA driver -> cpu (ONNX Runtime)"


def detect_target(root: Path = Path("/")) -> tuple[TargetRecord, str]:
    """The target record for the machine under ``root`` and a one-line reason (for ``--target auto``)."""
    return target_for_device(detect_device(root))
