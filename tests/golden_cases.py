"""The golden cases of ../shared/golden (see its README): where they are and what each holds."""

import json
import os

import numpy as np

# ../shared/golden beside the repository, as CI lays it out.
DEFAULT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "golden")


def case_dirs(golden_dir):
    """The tiny-* checkpoints, sorted by name."""
    return sorted(d for d in (os.path.join(golden_dir, n) for n in os.listdir(golden_dir))
                  if os.path.basename(d).startswith("tiny-") and os.path.isdir(d))


def load_case(case_dir):
    """(prompt ids, reference prefill logits [prompt, vocab], reference greedy continuation)."""
    ids = json.load(open(os.path.join(case_dir, "input_ids.json")))
    logits = np.load(os.path.join(case_dir, "logits.npy"))
    greedy = json.load(open(os.path.join(case_dir, "greedy.json")))
    return ids, logits, greedy
