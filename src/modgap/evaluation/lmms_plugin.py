"""lmms-eval model plugin: a trained ReVision stage folder as the lmms-eval model ``modgap``.

The paper-tier harness ([spec] revision-mllm §8.2) is lmms-eval 0.7.x. Our MLLM reads one L2-normalised
image *embedding* from an encoder (open_clip, or another registered backend such as ``llm2clip``), not
pixels, so this plugin embeds the PIL images a task supplies with the encoder the model was trained on,
then decodes greedily with :func:`modgap.mllm.generate.generate`.

Discovery: lmms-eval 0.7.x loads the ``lmms_eval.models`` entry-point group when ``lmms_eval.models`` is
imported (``ModelRegistryV2.load_entrypoint_manifests``); each entry point names a ``ModelManifest`` or
a callable returning one. pyproject.toml points the group at :func:`lmms_eval_manifest`, so after
``pip install -e '.[eval]'`` the model is requestable by name::

    lmms-eval --model modgap \\
        --model_args stage_dir=<results/mllm/.../stage2>,encoder=<open_clip name>,pretrained=<tag or file> \\
        --tasks modgap_pope_local --include_path <task dir> --log_samples --seed 0 --limit N \\
        --batch_size 16 --device cuda --output_path <dir>

``<task dir>`` comes from :func:`modgap.evaluation.lmms_tasks.write_local_task` (local tasks built from
the held-out split; no network)::

    from modgap.evaluation.lmms_tasks import write_local_task
    write_local_task("resources/datasets/embedded/manifest.parquet", "<task dir>", {"pope_items": 150})

Standard lmms-eval tasks (``pope``, ``mme``, ...) work the same way once their datasets are in the HF
cache. Offline runs: ``HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1`` (honoured by datasets >= 2.19).
lmms-eval's results field ``lmms_eval_version`` is the git describe of the working directory, not the
harness release: take the release from :func:`lmms_eval_version` (also in ``get_model_info``).

Model args (``--model_args``): ``stage_dir`` (required), ``encoder`` (model name, required),
``pretrained`` (open_clip tag or checkpoint file, or the Hub commit of an ``llm2clip`` model; empty =
random init, tests only), ``backend`` (registered encoder backend, default ``open_clip``; the one the
embeddings were extracted with), ``backend_options`` (that backend's settings, config
``encoders.<name>.hf``: a JSON object, or ``b64:`` + URL-safe base64 of one, which is what
:func:`modgap.evaluation.lmms_run.run_lmms_eval` passes because lmms-eval's comma splitting is
confused by quotes inside values), ``precision``
(encoder autocast: fp32/bf16/fp16), ``max_new_tokens`` (used when a task sets none; a task's own value
wins, as in lmms-eval's built-in models), ``blind`` (true: no visual tokens, the image-ablated score of
[spec] §8.1). Batch size and device come from lmms-eval's ``--batch_size`` / ``--device`` (it passes them
to every model, so they cannot also appear in ``--model_args``). One process, one device: no data
parallelism across ranks.

Decoding is greedy whatever the task asks (temperature/sampling requests are logged and ignored); a
task's ``until`` strings cut the answer at their first occurrence. Only the first image of a document is
used (the model was trained with one). ``loglikelihood`` is the teacher-forced sum of log-probabilities
of the continuation's tokens after the prompt (with ``is_greedy``); ``generate_until_multi_round`` is
not supported.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

try:
    from lmms_eval.api.instance import Instance
    from lmms_eval.api.model import lmms
    from lmms_eval.api.registry import register_model
except ImportError as exc:  # the plugin only makes sense inside lmms-eval; modgap itself never imports it
    raise ImportError("modgap.evaluation.lmms_plugin needs lmms-eval: pip install -e '.[eval]'") from exc

import numpy as np
import torch
from PIL import Image

from modgap.errors import ConfigError, ModgapError

log = logging.getLogger(__name__)

MODEL_ID = "modgap"


def lmms_eval_manifest() -> Any:
    """Entry point of the ``lmms_eval.models`` group: where lmms-eval finds the ``modgap`` model class."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=f"{__name__}.{ModgapMLLM.__name__}")


def lmms_eval_version() -> str:
    """The installed lmms-eval release (the harness version every result must carry, [spec] §8.2)."""
    from importlib.metadata import version

    return version("lmms-eval")


def _as_bool(value: object) -> bool:
    # --model_args values arrive as bool/int/float/str (lmms_eval.utils.handle_arg_string).
    if isinstance(value, str):
        if value.strip().lower() in {"1", "true", "yes", "on"}:
            return True
        if value.strip().lower() in {"", "0", "false", "no", "off", "none"}:
            return False
        raise ConfigError(f"not a boolean: {value!r}")
    return bool(value)


def _as_batch_size(value: object, default: int) -> int:
    if value is None or str(value).startswith("auto"):
        return default  # no memory probing: our models are small next to the GPU
    size = int(str(value))
    if size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {value!r}")
    return size


def _resolve_device(device: str | None) -> str:
    device = str(device or "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # accelerate/torchrun launch: one GPU per process
        device = f"cuda:{os.environ['LOCAL_RANK']}"
    return device


def encode_model_arg(options: dict[str, Any]) -> str:
    """Backend options as one lmms-eval model_args value: ``b64:`` + URL-safe base64 of compact JSON
    (no commas, quotes or braces for lmms-eval's argument splitter to misread)."""
    import base64

    data = json.dumps(options, sort_keys=True, separators=(",", ":")).encode()
    return "b64:" + base64.urlsafe_b64encode(data).decode("ascii")


def decode_model_arg(value: object) -> dict[str, Any] | None:
    """The inverse of :func:`encode_model_arg`; a plain JSON object is accepted too (hand-written args)."""
    import base64
    import binascii

    if value is None or value == "":
        return None
    text = str(value)
    try:
        if text.startswith("b64:"):
            text = base64.urlsafe_b64decode(text[4:].encode("ascii")).decode()
        options = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"modgap model: backend_options is neither JSON nor b64: JSON ({exc})") from exc
    if not isinstance(options, dict):
        raise ConfigError("modgap model: backend_options must be a JSON object")
    return options


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any non-empty stop string."""
    cut = min((i for s in until if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


@register_model(MODEL_ID)
class ModgapMLLM(lmms):
    """A stage folder (``load_mllm``) plus the encoder (any registered backend) that turns task images into
    embeddings."""

    is_simple = True

    def __init__(
        self,
        stage_dir: str,
        encoder: str,
        pretrained: str | None = None,
        device: str | None = None,
        batch_size: int | str | None = 16,
        max_batch_size: int | None = None,
        max_new_tokens: int = 32,
        precision: str = "fp32",
        blind: bool | str = False,
        backend: str = "open_clip",
        backend_options: str | None = None,
        **unknown: Any,
    ) -> None:
        super().__init__()
        if unknown:
            raise ConfigError(f"modgap model: unknown model_args {sorted(unknown)}")
        del max_batch_size  # lmms-eval passes it to every model; fixed batches need no ceiling
        from modgap.embed.backends import create_encoder
        from modgap.embed.tiny import TINY_MODEL, register_tiny_model
        from modgap.mllm.generate import load_mllm

        self._device = _resolve_device(device)
        self.batch_size_per_gpu = _as_batch_size(batch_size, 16)
        self.max_new_tokens = int(max_new_tokens)
        self.blind = _as_bool(blind)
        self.backend = str(backend)
        if self.backend == "open_clip" and encoder == TINY_MODEL:
            register_tiny_model()  # the test-only tiny encoder is not in open_clip's registry by default
        self.mllm = load_mllm(stage_dir, device=self._device)
        self.encoder = create_encoder(
            self.backend,
            encoder,
            pretrained or None,
            device=self._device,
            precision=precision,
            options=decode_model_arg(backend_options),
        )
        if self.encoder.embed_dim != self.mllm.meta["embed_dim"]:
            raise ConfigError(
                f"encoder {encoder} embeds in {self.encoder.embed_dim} dims, the stage in {stage_dir} "
                f"was trained on {self.mllm.meta['embed_dim']}: wrong encoder for this model"
            )
        self.stage_dir = str(stage_dir)
        self._warned: set[str] = set()
        log.info(
            "modgap model: %s (template %s, %d visual tokens) on %s, lmms-eval %s",
            stage_dir,
            self.mllm.template,
            self.mllm.num_visual,
            self._device,
            lmms_eval_version(),
        )

    # --- properties lmms-eval reads ------------------------------------------------------------

    @property
    def device(self) -> str:
        return self._device

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def get_model_info(self) -> dict[str, Any]:
        """Provenance for result metadata. lmms-eval's own ``lmms_eval_version`` field is the git describe
        of the working directory (our repository), not the installed harness, so record it from here."""
        return {
            "stage_dir": self.stage_dir,
            "template": self.mllm.template,
            "encoder": self.encoder.identity(),
            "blind": self.blind,
            "embed_dim": self.mllm.meta["embed_dim"],
            "lmms_eval": lmms_eval_version(),
        }

    # --- inputs --------------------------------------------------------------------------------

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message)

    def _image(self, doc_to_visual: Callable[[Any], Any] | None, doc: Any) -> Image.Image | None:
        """The document's first image (None: text-only document, or the blind ablation)."""
        if self.blind or doc_to_visual is None:
            return None
        visuals = doc_to_visual(doc) or []
        if not isinstance(visuals, list | tuple):
            visuals = [visuals]
        if not visuals:
            return None
        if not isinstance(visuals[0], Image.Image):
            raise ModgapError(f"modgap model: only images are supported, got {type(visuals[0]).__name__}")
        if len(visuals) > 1:
            self._warn_once("multi", "modgap model: documents with several images: only the first is used")
        return visuals[0]

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(n, d) float32 unit rows, computed as the embedding stage does for image files."""
        from modgap.embed.encoder import _to_rgb  # alpha onto white, as load_rgb does for the pipeline

        enc = self.encoder
        if self.backend != "open_clip":
            # other backends take decoded images through encode_pil_images (llm2clip: its CLIPImageProcessor)
            if not hasattr(enc, "encode_pil_images"):
                raise ConfigError(f"modgap model: encoder backend {self.backend!r} cannot encode in-memory images")
            return enc.encode_pil_images([_to_rgb(img) for img in images])
        pixels = torch.stack([enc.preprocess(_to_rgb(img)) for img in images]).to(enc.device)
        pixels = pixels.contiguous(memory_format=torch.channels_last)
        with enc._autocast():
            feats = enc.model.encode_image(pixels)
        return torch.nn.functional.normalize(feats.float(), dim=-1).cpu().numpy().astype(np.float32, copy=False)

    def _doc(self, task: str, split: str, doc_id: int) -> Any:
        return self.task_dict[task][split][doc_id]

    # --- lmms API ------------------------------------------------------------------------------

    def generate_until(self, requests: list[Instance]) -> list[str]:
        from tqdm.auto import tqdm

        from modgap.mllm.generate import generate

        # Requests with equal generation settings share batches; each batch splits into its with-image
        # and without-image rows because generate() takes embeddings for all rows or for none.
        groups: dict[str, list[int]] = defaultdict(list)
        for k, req in enumerate(requests):
            groups[json.dumps(req.args[1] or {}, sort_keys=True, default=str)].append(k)
        out: list[str | None] = [None] * len(requests)
        bar = tqdm(total=len(requests), desc="modgap generate", disable=self.rank != 0)
        for indices in groups.values():
            gen_kwargs = dict(requests[indices[0]].args[1] or {})
            until = gen_kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            if gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0) > 0:
                self._warn_once("sampling", "modgap model: sampling requested; decoding greedily (spec §8.2)")
            max_new = int(gen_kwargs.get("max_new_tokens") or self.max_new_tokens)
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                prompts, images = [], []
                for k in chunk:
                    context, _, doc_to_visual, doc_id, task, split = requests[k].args
                    prompts.append(context)
                    images.append(self._image(doc_to_visual, self._doc(task, split, doc_id)))
                with_image = [j for j, img in enumerate(images) if img is not None]
                without = [j for j, img in enumerate(images) if img is None]
                if with_image:
                    emb = self.embed_images([images[j] for j in with_image])
                    texts = generate(
                        self.mllm,
                        emb,
                        [prompts[j] for j in with_image],
                        max_new_tokens=max_new,
                        batch_size=len(with_image),
                    )
                    for j, text in zip(with_image, texts, strict=True):
                        out[chunk[j]] = cut_at_stops(text, until)
                if without:
                    texts = generate(
                        self.mllm, None, [prompts[j] for j in without], max_new_tokens=max_new, batch_size=len(without)
                    )
                    for j, text in zip(without, texts, strict=True):
                        out[chunk[j]] = cut_at_stops(text, until)
                bar.update(len(chunk))
        bar.close()
        return [str(t) for t in out]

    @torch.inference_mode()
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        from modgap.mllm.data import encode_prompt, prompt_text

        mllm, tok = self.mllm, self.mllm.tokenizer
        model = mllm.model
        out: list[tuple[float, bool]] = []
        for start in range(0, len(requests), self.batch_size):
            rows = []
            for req in requests[start : start + self.batch_size]:
                context, target, doc_to_visual, doc_id, task, split = req.args
                doc = self._doc(task, split, doc_id)
                continuation = target if isinstance(target, str) else target(doc)
                image = self._image(doc_to_visual, doc)
                ids, mask = encode_prompt(
                    tok,
                    prompt_text(tok, mllm.template, context, mllm.system_prompt, image is not None),
                    mllm.num_visual,
                )
                if not ids:
                    raise ModgapError("loglikelihood: empty prompt (the plain template needs an image)")
                cont = tok(continuation, add_special_tokens=False)["input_ids"]
                rows.append((ids, mask, cont, image))
            out += self._score(model, rows, tok.pad_token_id)
        return out

    def _score(
        self, model: Any, rows: list[tuple[list[int], list[bool], list[int], Image.Image | None]], pad_id: int
    ) -> list[tuple[float, bool]]:
        """Teacher-forced log-prob of each row's continuation; rows right-padded so positions stay 0-based."""
        width = max(len(ids) + len(cont) for ids, _, cont, _ in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        image_mask = torch.zeros((len(rows), width), dtype=torch.bool)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, mask, cont, _) in enumerate(rows):
            n = len(ids) + len(cont)
            input_ids[r, :n] = torch.tensor(ids + cont)
            image_mask[r, : len(ids)] = torch.tensor(mask)
            attention[r, :n] = 1
        emb = None
        images = [img for *_, img in rows]
        if any(img is not None for img in images):
            dim = self.mllm.meta["embed_dim"]
            found = iter(self.embed_images([img for img in images if img is not None]))
            # embed_inputs uses only the rows that have visual positions; the zero rows are never read.
            emb = torch.from_numpy(
                np.stack([next(found) if img is not None else np.zeros(dim, np.float32) for img in images])
            )
        device = next(model.parameters()).device
        embeds = model.embed_inputs(
            input_ids.to(device), image_mask.to(device), None if emb is None else emb.to(device)
        )
        logits = model.llm(inputs_embeds=embeds, attention_mask=attention.to(device)).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1).cpu()
        out = []
        for r, (ids, _, cont, _) in enumerate(rows):
            if not cont:
                out.append((0.0, True))
                continue
            # Position p predicts token p+1: the continuation's tokens are predicted from len(ids)-1 on.
            span = logprobs[r, len(ids) - 1 : len(ids) - 1 + len(cont)]
            target = torch.tensor(cont)
            total = float(span.gather(1, target[:, None]).sum())
            out.append((total, bool(torch.equal(span.argmax(dim=-1), target))))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("modgap model: multi-round generation is not supported (single-turn MLLM)")
