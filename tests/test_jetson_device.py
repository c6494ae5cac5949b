import shutil
from pathlib import Path

import pytest

from nvila_edge.errors import UnsupportedError
from nvila_edge.jetson.device import (
    GIB,
    DeviceInfo,
    L4tRelease,
    detect_device,
    detect_target,
    is_process_running,
    jetpack_for,
    list_video_devices,
    parse_nv_tegra_release,
    parse_nvpmodel_query,
    read_meminfo,
    read_power_mode,
    read_swaps,
    target_for_device,
)

FIXTURES = Path(__file__).parent / "fixtures" / "jetson"
ROOTS = FIXTURES / "roots"


@pytest.mark.parametrize("root, target, l4t, jetpack, tensorrt", [
    ("orin-nano-8gb-jp62", "orin-nano-8gb", "R36.4.3", "6.2", "10.3"),
    ("orin-nx-16gb-jp621", "orin-nx-16gb", "R36.4.4", "6.2.1", "10.3"),
    ("orin-agx-64gb-jp72", "orin-agx-64gb", "R39.2.0", "7.2", "10.16"),
    ("thor-jp70", "thor", "R38.2.0", "7.0", "10.13"),
])
def test_board_roots_map_to_target_and_jetpack(root, target, l4t, jetpack, tensorrt):
    info = detect_device(ROOTS / root)
    assert info.is_jetson
    assert str(info.l4t) == l4t
    assert (info.jetpack.jetpack, info.jetpack.tensorrt) == (jetpack, tensorrt)
    record, reason = detect_target(ROOTS / root)
    assert record.name == target
    assert info.model in reason and l4t in reason and reason.endswith(f"-> {target}")


def test_orin_nano_root_reads_every_source():
    info = detect_device(ROOTS / "orin-nano-8gb-jp62")
    assert info.model == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"  # NUL stripped
    assert info.compatible == ("nvidia,p3768-0000+p3767-0005-super", "nvidia,p3767-0005", "nvidia,tegra234")
    assert info.memory_total_bytes == 7802736 * 1024
    assert info.l4t_core_version == "36.4.3-20250107174145"
    assert info.tensorrt_version == "10.3.0.30"  # the deinstalled libnvinfer8 is ignored
    assert info.cuda_version == "12.6.68"
    assert info.jetpack.cuda == "12.6" and info.jetpack.python == "3.10"


@pytest.mark.parametrize("name, l4t, jetpack, tensorrt, cuda", [
    ("r36.4.3", L4tRelease(36, 4, 3), "6.2", "10.3", "12.6"),
    ("r36.4.4", L4tRelease(36, 4, 4), "6.2.1", "10.3", "12.6"),
    ("r38.2.0", L4tRelease(38, 2, 0), "7.0", "10.13", "13.0"),
    ("r38.4.0", L4tRelease(38, 4, 0), "7.1", "10.13", "13.0"),
    ("r39.2.0", L4tRelease(39, 2, 0), "7.2", "10.16", "13.2"),
])
def test_nv_tegra_release_lines_map_to_jetpack_and_tensorrt(name, l4t, jetpack, tensorrt, cuda):
    parsed = parse_nv_tegra_release((FIXTURES / "nv_tegra_release" / f"{name}.txt").read_text())
    assert parsed == l4t
    release = jetpack_for(parsed)
    assert (release.jetpack, release.tensorrt, release.cuda, release.supported) == (jetpack, tensorrt, cuda, True)


def test_jetpack_table_edges():
    assert jetpack_for(L4tRelease(36, 4, 0)).jetpack == "6.1"
    assert jetpack_for(L4tRelease(36, 3, 0)).supported is False  # JetPack 6.0 has TensorRT 8.6
    assert jetpack_for(L4tRelease(35, 4, 1)).tensorrt == "8.5"
    assert jetpack_for(L4tRelease(36, 9, 0)) is None  # unknown minors are not guessed
    assert jetpack_for(L4tRelease(40, 0, 0)) is None
    assert parse_nv_tegra_release("not a release file") is None


def test_l4t_falls_back_to_the_core_package_version(tmp_path):
    shutil.copytree(ROOTS / "orin-nx-16gb-jp621", tmp_path / "root")
    (tmp_path / "root" / "etc" / "nv_tegra_release").unlink()
    info = detect_device(tmp_path / "root")
    assert info.l4t == L4tRelease(36, 4, 4) and info.jetpack.jetpack == "6.2.1"


def _device(model=None, gib=None, compatible=(), l4t=L4tRelease(36, 4, 3)) -> DeviceInfo:
    return DeviceInfo(model, compatible, int(gib * GIB) if gib else None, l4t, None,
                      jetpack_for(l4t) if l4t else None, None, None, None)


@pytest.mark.parametrize("model, gib, expected", [
    ("NVIDIA Jetson AGX Orin Developer Kit", 30.4, "orin-agx-32gb"),
    ("NVIDIA Jetson AGX Orin Developer Kit", 61.4, "orin-agx-64gb"),
    ("NVIDIA Jetson Orin Nano Developer Kit", 7.4, "orin-nano-8gb"),
    ("NVIDIA Jetson Orin Nano Developer Kit", 3.3, "orin-nano-4gb"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", 7.4, "orin-nx-8gb"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", 15.3, "orin-nx-16gb"),
])
def test_memory_picks_the_size_within_a_family(model, gib, expected):
    assert target_for_device(_device(model, gib))[0].name == expected


def test_carrier_board_model_falls_back_to_the_module_number():
    info = _device("Custom Carrier Rev B", 7.4, ("vendor,carrier-b+p3767-0001", "nvidia,p3767-0001", "nvidia,tegra234"))
    assert target_for_device(info)[0].name == "orin-nx-8gb"


def test_unknown_memory_assumes_the_smallest_size_and_says_so():
    record, reason = target_for_device(_device("NVIDIA Jetson AGX Orin Developer Kit", None))
    assert record.name == "orin-agx-32gb" and "memory unknown" in reason


def test_pre_orin_jetson_is_refused_with_the_way_out():
    xavier = _device("Jetson-AGX", 30.0, ("nvidia,p2972-0000", "nvidia,tegra194"), L4tRelease(35, 4, 1))
    with pytest.raises(UnsupportedError, match="not an Orin or Thor board.*pass --target"):
        target_for_device(xavier)


def test_off_jetson_targets(tmp_path):
    record, reason = detect_target(ROOTS / "x86-nvidia-driver")
    assert record.name == "x86-gpu" and "550.54.14" in reason and "not a Jetson" in reason
    empty = detect_device(tmp_path)
    assert not empty.is_jetson and empty.model is None and empty.memory_total_bytes is None
    record, reason = detect_target(tmp_path)
    assert record.name == "cpu" and "not a Jetson" in reason


def test_meminfo_and_swaps_agree():
    root = ROOTS / "orin-nano-8gb-jp62"
    swaps = read_swaps(root)
    assert len(swaps) == 6 and all(s.is_zram for s in swaps)
    assert sum(s.size_bytes for s in swaps) == read_meminfo(root)["SwapTotal"]
    agx = read_swaps(ROOTS / "orin-agx-64gb-jp72")
    assert [(s.name, s.is_zram, s.size_bytes) for s in agx] == [("/swapfile", False, 2097148 * 1024)]


def test_cameras_and_argus(tmp_path):
    nano = list_video_devices(ROOTS / "orin-nano-8gb-jp62")
    assert [(c.path, c.name, c.is_csi) for c in nano] == [("/dev/video0", "vi-output, imx219 9-0010", True)]
    assert is_process_running(ROOTS / "orin-nano-8gb-jp62", "nvargus-daemon")
    usb = list_video_devices(ROOTS / "orin-nx-16gb-jp621")
    assert [c.path for c in usb] == ["/dev/video0", "/dev/video1"] and not any(c.is_csi for c in usb)
    assert not is_process_running(ROOTS / "orin-nx-16gb-jp621", "nvargus-daemon")
    (tmp_path / "dev").mkdir()
    for name in ("video10", "video2", "video-meta"):
        (tmp_path / "dev" / name).touch()
    assert [c.path for c in list_video_devices(tmp_path)] == ["/dev/video2", "/dev/video10"]


def test_power_mode_from_status_file_and_from_nvpmodel_query():
    nano = read_power_mode(ROOTS / "orin-nano-8gb-jp62")
    assert (nano.current_id, nano.current_name, nano.max_mode, nano.is_max) == (0, "15W", (2, "MAXN_SUPER"), False)
    agx = read_power_mode(ROOTS / "orin-agx-64gb-jp72")
    assert (agx.current_name, agx.max_mode, agx.is_max) == ("MAXN", (0, "MAXN"), True)
    query = (FIXTURES / "nvpmodel-query-maxn.txt").read_text()
    assert parse_nvpmodel_query(query) == ("MAXN", 0)
    nx = read_power_mode(ROOTS / "orin-nx-16gb-jp621", query)
    assert nx.current_name == "MAXN" and nx.is_max
    assert read_power_mode(ROOTS / "thor-jp70") is None
