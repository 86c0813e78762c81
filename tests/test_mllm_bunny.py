"""Bunny's `llama` template on a tiny Llama-3-style tokenizer built offline, checked against a
re-implementation of Bunny's own labelling (conv_llama.get_prompt + preprocess_bunny_with_bos)."""

from __future__ import annotations

import pytest

from modgap.errors import ConfigError, ModgapError
from modgap.mllm import bunny
from modgap.mllm.config import load_config
from modgap.mllm.data import IGNORE_INDEX, IMAGE_MARKER, answer_text, encode_example, prompt_text

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
QUESTION = "Is there a cat in the image? Answer yes or no."
IMAGE_TOKEN_INDEX = -200  # Bunny's image placeholder id in the reference


@pytest.fixture(scope="module")
def tok():
    """Byte-level BPE with Llama-3's special tokens; eos = <|eot_id|> as in Llama-3-Instruct's tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    corpus = [bunny.SYSTEM, "USER: ASSISTANT: Yes No a red cat next to a dog", QUESTION, "Describe the image."]
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer)
    # Llama-3's tokenizer prepends BOS when asked for special tokens (Bunny's tokenizer(chunk) relies on it)
    bos = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|end_of_text|>"
    )


def test_the_prompt_is_bunny_conv_llama(tok):
    expected = (
        "<|begin_of_text|>A chat between a curious user and an artificial intelligence assistant. The assistant "
        f"gives helpful, detailed, and polite answers to the user's questions. USER: <image>\n{QUESTION} ASSISTANT:"
    )
    assert prompt_text(tok, "llama", QUESTION, None, True) == expected
    assert prompt_text(tok, "llama", QUESTION, None, False).endswith(f"USER: {QUESTION} ASSISTANT:")
    assert prompt_text(tok, "llama", QUESTION, "Be brief.", True).startswith("<|begin_of_text|>Be brief. USER:")
    assert answer_text(tok, "llama", QUESTION, "Yes", None) == " Yes<|end_of_text|>"


def _bunny_reference(tok, question: str, answer: str) -> tuple[list[int], list[int]]:
    """Bunny: render with SeparatorStyle.TWO, tokenise chunks around <image> (tokenizer_image_token, BOS kept
    once), mask BOS and the instruction (its length minus BOS and the trailing-space token)."""
    sys_, (user, assistant), sep, sep2 = bunny.SYSTEM, bunny.ROLES, bunny.SEP, bunny.END
    conversation = f"{sys_}{sep}{user}: <image>\n{question}{sep}{assistant}: {answer}{sep2}"

    def image_tokens(text: str) -> list[int]:
        chunks = [tok(c).input_ids for c in text.split("<image>")]
        ids = list(chunks[0])
        for chunk in chunks[1:]:
            ids += [IMAGE_TOKEN_INDEX] + (chunk[1:] if chunk and chunk[0] == tok.bos_token_id else chunk)
        return ids

    input_ids = image_tokens(conversation)
    labels = list(input_ids)
    labels[0] = IGNORE_INDEX
    cur = 1
    round_sep = f"{sep}{assistant}: "
    for rou in conversation.split(sep2):
        if not rou:
            break
        instruction, _ = rou.split(round_sep)
        round_len = len(image_tokens(rou))
        instruction_len = len(image_tokens(instruction + round_sep)) - 2
        labels[cur : cur + instruction_len] = [IGNORE_INDEX] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE_INDEX] * (len(labels) - cur)
    return input_ids, labels


@pytest.mark.parametrize("answer", ["Yes", "a red cat next to a dog"])
def test_tokens_and_labels_match_bunny_preprocess_with_bos(tok, answer):
    # Bunny splices one image token; ours has N visual positions (the pad id): with N = 1 and the
    # placeholder mapped to the pad id, ids and labels must be the same lists.
    ours = encode_example(tok, "llama", QUESTION, answer, num_visual=1, system_prompt=None, max_length=2048)
    ref_ids, ref_labels = _bunny_reference(tok, QUESTION, answer)
    ref_ids = [tok.pad_token_id if i == IMAGE_TOKEN_INDEX else i for i in ref_ids]
    assert ours.input_ids == ref_ids
    assert ours.labels == ref_labels
    assert tok.decode([t for t in ours.labels if t != IGNORE_INDEX]) == f" {answer}<|end_of_text|>"


def test_paper_preset_repeats_576_visual_tokens_and_uses_plain_then_llama(tok):
    cfg = load_config("paper-8gpu-bunny")
    assert (cfg.visual_tokens, cfg.visual_token_mode) == (576, "repeat")
    assert (cfg.stage1.template, cfg.stage2.template) == ("plain", "llama")
    enc = encode_example(
        tok,
        "llama",
        QUESTION,
        "Yes",
        num_visual=cfg.visual_tokens,
        system_prompt=None,
        max_length=cfg.stage2.max_length,
    )
    assert sum(enc.image_mask) == 576 and enc.input_ids[0] == tok.bos_token_id
    first_visual = enc.image_mask.index(True)
    assert tok.decode(enc.input_ids[:first_visual]).endswith("USER: ")
    # N is ablatable by config, and only known templates pass
    assert load_config({"visual_tokens": 32, "stage2": {"template": "llama"}}).visual_tokens == 32
    with pytest.raises(ConfigError, match=r"stage2\.template must be plain\|chat\|llama"):
        load_config({"stage2": {"template": "bunny"}})


def test_decoding_stops_at_end_of_text_and_eos(tok):
    end = tok.convert_tokens_to_ids("<|end_of_text|>")
    assert bunny.stop_token_ids(tok, "llama") == sorted({tok.eos_token_id, end})
    assert bunny.stop_token_ids(tok, "chat") == tok.eos_token_id


def test_a_tokenizer_without_the_llama3_end_token_is_refused(tmp_path):
    from transformers import AutoTokenizer

    from modgap.mllm.testing import make_tiny_llm

    chatml = AutoTokenizer.from_pretrained(make_tiny_llm(tmp_path / "llm"))
    with pytest.raises(ModgapError, match=r"template 'llama' needs <\|end_of_text\|> as one token"):
        encode_example(chatml, "llama", QUESTION, "Yes", num_visual=2, system_prompt=None, max_length=200)
    assert IMAGE_MARKER in prompt_text(chatml, "chat", QUESTION, None, True)  # other templates unaffected
