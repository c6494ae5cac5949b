"""TensorRT's data types, IO modes and loggers, shared by the emulated runtime and builder."""

from __future__ import annotations

import abc
import enum
import sys

import numpy as np


class DataType(enum.IntEnum):
    FLOAT = 0
    HALF = 1
    INT8 = 2
    INT32 = 3
    BOOL = 4
    UINT8 = 5
    FP8 = 6
    BF16 = 7
    INT64 = 8
    INT4 = 9
    FP4 = 10


NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
         DataType.BOOL: np.bool_, DataType.UINT8: np.uint8, DataType.INT64: np.int64}


def nptype(trt_type):
    """The numpy type of a TensorRT type; types numpy has no equivalent for raise, as in TensorRT."""
    if trt_type not in NUMPY:
        raise TypeError(f"could not resolve TensorRT datatype {DataType(trt_type).name} to an equivalent numpy type")
    return NUMPY[trt_type]


class TensorIOMode(enum.IntEnum):
    NONE = 0
    INPUT = 1
    OUTPUT = 2


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger(abc.ABC):
    """Abstract in TensorRT too: a logger subclasses it and overrides ``log``."""

    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = _Severity

    @abc.abstractmethod
    def log(self, severity, msg) -> None: ...


class Logger(ILogger):
    def __init__(self, min_severity=_Severity.WARNING):
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity, msg):
        if severity <= self.min_severity:
            print(f"[TensorRT emulator] {_Severity(severity).name}: {msg}", file=sys.stderr)
