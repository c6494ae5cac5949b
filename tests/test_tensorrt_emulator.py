"""The emulator is strict: each rule it enforces, broken on purpose through the backend's own classes, is caught
(a shape outside the profile, an unset shape or address, a wrong cache offset, a use after free, a double free,
a misaligned address, a buffer sized for the wrong dtype, a read before synchronisation, a leak)."""

import numpy as np
import pytest
from trt_emulator import Emulator, EmulatorFault

from nvila_edge.errors import DeviceError, EngineMismatchError, InputError
from nvila_edge.runtime.backends import cuda_bindings
from nvila_edge.runtime.backends.cuda_device import DeviceBuffer, PinnedBuffer, Stream
from nvila_edge.runtime.backends.tensorrt import Binding, TrtEngine, TrtGraph, decoder_bindings
from nvila_edge.runtime.pipeline import Pipeline


@pytest.fixture
def vision(trt_engines, emulator):
    with TrtGraph(TrtEngine(trt_engines("fp16") / "vision.engine", "tensorrt")) as graph:
        yield graph


@pytest.fixture
def small_context(trt_engines, emulator):
    """A pipeline whose KV cache holds 64 positions, on engines whose profiles allow 1024."""
    with Pipeline.open(trt_engines("fp16"), max_context=64) as pipeline:
        yield pipeline


def test_an_input_shape_outside_the_active_profile_is_refused(vision):
    assert vision.run({"pixel_values": np.zeros((8, 3, 64, 64), np.float16)})["features"].shape[0] == 8
    with pytest.raises(InputError, match=r"input 'pixel_values' of shape \[9, 3, 64, 64\] is outside the engine's "
                                         "optimization profile"):
        vision.run({"pixel_values": np.zeros((9, 3, 64, 64), np.float16)})


def test_decode_profile_refuses_a_prompt_sized_step(small_context):
    decoder = small_context.decoder
    decoder.reset()
    decoder.step(np.zeros((4, 256), np.float16))
    decoder.engine.set_profile(decoder.profiles["decode"])
    with pytest.raises(InputError, match="inputs_embeds' of shape \\[1, 2, 256\\] is outside"):
        for name, binding in decoder_bindings(decoder.layout, 4, 2).items():
            decoder.engine.bind(name, binding)


def test_shapes_left_unset_after_a_profile_switch_are_caught_at_enqueue(small_context):
    decoder = small_context.decoder
    decoder.reset()
    decoder.step(np.zeros((4, 256), np.float16))
    decoder.engine.set_profile(decoder.profiles["decode"])  # TensorRT forgets the input shapes here
    with pytest.raises(DeviceError, match="TensorRT could not enqueue the engine"):
        decoder.engine.execute()


def test_an_unset_tensor_address_is_caught_at_enqueue(trt_engines, emulator):
    with TrtEngine(trt_engines("fp16") / "vision.engine", "tensorrt") as engine:
        engine.set_profile(0)
        assert engine.context.set_input_shape("pixel_values", (1, 3, 64, 64))
        with pytest.raises(DeviceError, match="could not enqueue"):
            engine.execute()


def test_a_cache_offset_past_the_end_of_its_buffer_faults(small_context):
    decoder = small_context.decoder
    decoder.reset()
    decoder.step(np.zeros((63, 256), np.float16))
    decoder.engine.set_profile(decoder.profiles["decode"])
    for name, binding in decoder_bindings(decoder.layout, past=63, seq=1).items():  # the last position
        decoder.engine.bind(name, binding)
    last = decoder_bindings(decoder.layout, past=63, seq=1)["new_key.0"]
    decoder.engine.bind("new_key.0", Binding(last.address + decoder.layout.row_bytes, last.shape))  # a row too far
    decoder.engine.execute()
    with pytest.raises(EmulatorFault, match=r"output new_key\.0: 256 B at .* start 0 B past the end of the device "
                                            r"allocation of 16384 B"):
        decoder.engine.stream.synchronize()


def test_a_copy_into_freed_device_memory_faults(emulator):
    buffer, host, stream = DeviceBuffer(1024), PinnedBuffer(1024), Stream()
    address = buffer.ptr
    buffer.close()
    with pytest.raises(EmulatorFault, match="use after free of device allocation of 1024 B"):
        stream.upload(address, host.view(np.uint8, (1024,)))
    host.close()
    stream.close()


def test_a_double_free_is_a_device_error(emulator):
    buffer = DeviceBuffer(512)
    address = buffer.ptr
    buffer.close()
    with pytest.raises(DeviceError, match="^CUDA (cudaFree failed: cudaErrorInvalidValue|free failed: 0x[0-9a-f]+ is "
                                          "not a live device allocation)$"):
        cuda_bindings.binding().free(address)


def test_a_misaligned_tensor_address_is_refused(vision):
    engine = vision.engine
    engine.set_profile(0)
    with pytest.raises(DeviceError, match=r"TensorRT refused the address 0x[0-9a-f]+ of 'pixel_values'"):
        engine.bind("pixel_values", Binding(vision.device["pixel_values"].ptr + 8, (1, 3, 64, 64)))


def test_a_buffer_sized_for_the_wrong_dtype_faults(small_context):
    decoder = small_context.decoder
    decoder.reset()
    decoder.step(np.zeros((4, 256), np.float16))
    decoder.engine.set_profile(decoder.profiles["prefill"])
    narrow = DeviceBuffer(8 * 4)  # int32 positions; the engine's position_ids are int64
    try:
        for name, binding in decoder_bindings(decoder.layout, past=0, seq=8).items():
            decoder.engine.bind(name, binding)
        decoder.engine.bind("position_ids", Binding(narrow.ptr, (1, 8)))
        with pytest.raises(EmulatorFault, match="input position_ids: 64 B at .* run 32 B past the end"):
            decoder.engine.execute()
    finally:
        narrow.close()


def test_host_memory_read_before_synchronisation_holds_the_old_bytes(emulator):
    source, target, device, stream = PinnedBuffer(), PinnedBuffer(), DeviceBuffer(4096), Stream()
    sent = source.view(np.float32, (1024,))
    sent[:] = np.arange(1024)
    received = target.view(np.float32, (1024,))
    received[:] = -1
    stream.upload(device.ptr, sent)
    stream.download(received, device.ptr)
    assert (received == -1).all()  # nothing has run yet
    stream.synchronize()
    assert np.array_equal(received, np.arange(1024))
    for resource in (source, target, device, stream):
        resource.close()


def test_a_buffer_never_freed_is_reported_with_where_it_was_made(monkeypatch):
    emulated = Emulator()
    emulated.install(monkeypatch)
    forgotten = DeviceBuffer(1000)
    with pytest.raises(EmulatorFault, match=r"1 device resources were never released:\n  device allocation of 1000 "
                                            r"B at 0x[0-9a-f]+ made at .*test_tensorrt_emulator.py"):
        emulated.check_released()
    forgotten.close()
    emulated.check_released()


def test_a_profile_or_tensor_the_engine_lacks_and_a_missing_feed_are_one_line_errors(vision):
    with pytest.raises(DeviceError, match="vision.engine: TensorRT cannot switch to optimization profile 3"):
        vision.engine.set_profile(3)
    vision.engine.set_profile(0)
    with pytest.raises(EngineMismatchError, match="the engine has no tensor 'pixels'; rebuild it"):
        vision.engine.bind("pixels", Binding(vision.device["pixel_values"].ptr, (1, 3, 64, 64)))
    with pytest.raises(InputError, match=r"vision\.engine: missing input\(s\) pixel_values"):
        vision.run({"pixels": np.zeros((1, 3, 64, 64), np.float16)})
