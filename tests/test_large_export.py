"""A real-size NVILA-Lite-2B checkpoint (random bf16 weights) exports on a 24 GB machine.

Slow (minutes of CPU, about 20 GB of disk under the pytest temp folder), outside the default suite:
``pytest -m slow tests/test_large_export.py -s``. The export runs as the CLI in a child process, so its
peak resident memory is measured on its own (the checkpoint is written by the test process); the figures are
printed.
"""

import resource
import subprocess
import sys
import time

import pytest

# A 24 GB machine minus room for the OS, page cache and a desktop session.
PEAK_RSS_LIMIT = 20 * 2**30
PROTOBUF_LIMIT = 2**31


@pytest.mark.slow
def test_nvila_lite_2b_exports_within_24_gb(tmp_path):
    from nvila_edge.export.onnx.trace import check_graph
    from nvila_edge.export.random_checkpoint import make_random_checkpoint
    from nvila_edge.runtime.manifest import read_manifest

    checkpoint = make_random_checkpoint(tmp_path / "nvila-lite-2b", "nvila-lite-2b")
    out = tmp_path / "export"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import sys; from nvila_edge.cli import main; sys.exit(main())",
                    "export", str(checkpoint), "-o", str(out)], check=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    print(f"\nnvila-lite-2b fp32 export: {seconds:.0f} s wall, peak RSS {peak / 2**30:.2f} GiB")

    manifest = read_manifest(out, "export")
    llm = manifest.graphs["llm"]
    assert llm.external_data == ["llm.onnx.data"]
    assert (out / "llm.onnx").stat().st_size < 2**20
    assert (out / "llm.onnx.data").stat().st_size > PROTOBUF_LIMIT
    assert manifest.token_layout.vocab_size == 151648
    for spec in manifest.graphs.values():
        check_graph(out / spec.file)  # the exporter's gates, again on the files as they landed
    assert peak < PEAK_RSS_LIMIT
