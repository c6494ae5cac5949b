"""nvila-edge: NVILA vision-language models on Jetson (export -> engines -> runtime)."""

__version__ = "0.1.0"
