"""``nvila-edge demo``: a live camera (or the synthetic ``test://shapes`` one) answered by the model, tokens
streaming to the terminal and onto an overlay (window or recording), one record per answer.

    options = DemoOptions(source="test://shapes", max_answers=3, jsonl=Path("answers.jsonl"))
    result = run_demo(options, model_folder=lambda report: Path("out/engines"))
    result.records[0].frame_to_first_token_ms, result.answers_per_minute
"""

from .options import DEFAULT_PROMPT, DEFAULT_SOURCE, DemoOptions
from .records import AnswerRecord, JsonlWriter, read_records
from .session import DemoResult, run_demo

__all__ = ["AnswerRecord", "DEFAULT_PROMPT", "DEFAULT_SOURCE", "DemoOptions", "DemoResult", "JsonlWriter",
           "read_records", "run_demo"]
