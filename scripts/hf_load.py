"""Shared by the GPU-machine scripts (check_hf_roundtrip.py, tiny_models_golden.py): load a model
folder in Hugging Face transformers as the oracle runs it, and say what transformers complained of.
"""
import re

import torch
from transformers import AutoModelForCausalLM


def load_causal_lm(d):
    """AutoModelForCausalLM.from_pretrained(d) in fp32 with eager attention, in eval mode.

    Returns (model, problems): problems maps "missing_keys" / "unexpected_keys" /
    "mismatched_keys" to the weights transformers reported, leaving out the MTP modules
    (model.layers.{>= num_hidden_layers}), DeepSeek-V3's extra layers, which transformers does not
    build and reports as unexpected. An empty dict means the folder loaded cleanly."""
    model, info = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                       output_loading_info=True)
    model.eval()
    L = model.config.num_hidden_layers

    def is_mtp(k):
        m = re.match(r"model\.layers\.(\d+)\.", k)
        return m is not None and int(m.group(1)) >= L

    problems = {k: [x for x in v if not (k == "unexpected_keys" and is_mtp(x))]
                for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    return model, {k: v for k, v in problems.items() if v}
