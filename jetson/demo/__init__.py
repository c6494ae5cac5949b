"""``nvila-edge demo``: a live camera (or the synthetic ``test://shapes`` one) answered by the model, tokens
streaming to the terminal and onto an overlay (window or recording), one record per answer.

    options = DemoOptions(source="test://shapes", max_answers=3, jsonl=Path("answers.jsonl"))
    result = run_demo(options, model_folder=lambda report: Path("out/engines"))
    result.answers, result.frame_to_first_token_ms.quantile(0.9), result.answers_per_minute, result.recent[-1]
"""

from .options import DEFAULT_PROMPT, DEFAULT_SOURCE, DemoOptions
from .records import AnswerRecord, JsonlWriter, read_records
from .result import DemoResult
from .session import run_demo

__all__ = ["DEFAULT_PROMPT", "DEFAULT_SOURCE", "AnswerRecord", "DemoOptions", "DemoResult", "JsonlWriter",
           "read_records", "run_demo"]
